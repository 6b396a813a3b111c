"""L2P Cache's learning mode without ComfyUI: the setup's file name and key, finding the file again (also at another
precision), starting over, what each run does, the report text shown on the node, and the quality plot.

The same inside real ComfyUI sampling: test_comfy_learning.py (learning) and test_comfy_node_report.py (the UI)."""
from __future__ import annotations

import dataclasses
import io
import os
import re
import sys
import types

import numpy as np
import pytest
from PIL import Image

from comfyui_l2p.nodes import node_report
from comfyui_l2p.nodes.learn_setup import Learning, LearningPolicy, learning_holder
from comfyui_l2p.nodes.report import ForcedReason, LearningAction, LearningStatus, RunReport
from comfyui_l2p.nodes.report_plot import SIZE, quality_plot
from comfyui_l2p.predictors.files.learned import (
    SETUP_KEY, Setup, archive_learned_file, find_learned_file, guidance_token,
)
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError
from comfyui_l2p.predictors.files.storage import save_predictor_file
from file_cases import GRID, WEIGHTS, identity, read_only, run_file

SIGMAS = tuple(GRID.array.tolist())


def setup(**changes) -> Setup:
    base = dict(family="flux", identity=identity(), sigmas=SIGMAS, guidance="cfg1", scheduler="simple")
    return Setup(**{**base, **changes})


def save(folder, s: Setup, name: str | None = None, seed: int = 0) -> str:
    pf = run_file(seed, model=s.identity)
    pf = dataclasses.replace(pf, extra={**pf.extra, **s.metadata()})
    path = os.path.join(folder, name or s.file_name())
    save_predictor_file(path, pf)
    return path


# ---------------------------------------------------------------------------------------------- the setup
def test_a_setup_names_its_file_readably_and_every_part_changes_the_name():
    s = setup()
    assert re.fullmatch(r"auto-flux-6steps-simple-cfg1-[0-9a-f]{8}\.safetensors", s.file_name())
    assert s.file_name() == setup().file_name()  # deterministic: two processes pick one name
    other = [setup(guidance="cfg3.5"), setup(sigmas=tuple(np.linspace(1, 0, 8))), setup(family="qwen_image"),
             setup(identity=identity(patches="1 key 0123")), setup(identity=identity(config={"depth": 2})),
             setup(identity=identity(weights={k: v * 1.01 for k, v in WEIGHTS.items()}))]
    assert len({s.file_name()} | {o.file_name() for o in other}) == 7
    assert setup(scheduler="karras or exponential").file_name().startswith("auto-flux-6steps-karras+exponential-")
    assert setup(sigmas=tuple(v + 1e-9 for v in SIGMAS[:-1]) + (0.0,)).key() == s.key()  # 6 digits decide
    # the key without the weights ignores the fingerprint only
    assert setup(identity=identity(dtype="float16")).key(weights=False) == s.key(weights=False) != s.key()
    assert guidance_token(None) == "guider" and guidance_token(3.5) == "cfg3.5" and guidance_token(1) == "cfg1"
    with pytest.raises(ValueError, match="at least one step"):
        setup(sigmas=(1.0,))


def test_find_learned_file_by_name_then_by_setup_at_another_precision(tmp_path):
    s = setup()
    assert find_learned_file(str(tmp_path / "missing"), s).file is None
    empty = find_learned_file(str(tmp_path), s)
    assert empty.path == str(tmp_path / s.file_name()) and empty.file is None and empty.trajectories == 0
    path = save(tmp_path, s)
    found = find_learned_file(str(tmp_path), s)
    assert found.path == path and found.trajectories == 1 and found.file.extra[SETUP_KEY] == s.key(weights=False)

    rounded = {k: (v * 1.001).astype(np.float32) for k, v in WEIGHTS.items()}  # fp16 rounding of the same weights
    half = setup(identity=identity(weights=rounded, dtype="float16"))
    found = find_learned_file(str(tmp_path), half)
    assert found.path == path and any("the same weights at another precision" in n for n in found.notes)
    tuned = setup(identity=identity(weights={k: v * 1.5 for k, v in WEIGHTS.items()}, dtype="float16"))
    assert find_learned_file(str(tmp_path), tuned).file is None  # a fine-tune learns its own file
    (tmp_path / "auto-garbage.safetensors").write_bytes(b"garbage")
    found = find_learned_file(str(tmp_path), tuned)
    assert any(n.startswith("skipped auto-garbage.safetensors") for n in found.notes)


def test_a_bad_file_under_the_setups_name_is_refused_and_left_alone(tmp_path):
    s = setup()
    bad = tmp_path / s.file_name()
    bad.write_bytes(b"\x80\x04 pickle")
    with pytest.raises(PredictorFileError, match=re.escape(str(bad)) + r".*pickle.*left as it is"):
        find_learned_file(str(tmp_path), s)
    assert bad.read_bytes() == b"\x80\x04 pickle"


def test_start_over_moves_the_file_into_the_archive_and_never_deletes(tmp_path):
    s = setup()
    path = save(tmp_path, s)
    data = open(path, "rb").read()
    first = archive_learned_file(path, now=0.0)
    assert first == str(tmp_path / "archive" / (s.file_name().removesuffix(".safetensors") + "-19700101T000000Z"
                                                ".safetensors"))
    assert not os.path.exists(path) and open(first, "rb").read() == data
    save(tmp_path, s, seed=1)
    second = archive_learned_file(path, now=0.0)  # the same second: a numbered name, nothing overwritten
    assert second.endswith("-19700101T000000Z-2.safetensors") and open(first, "rb").read() == data
    assert archive_learned_file(path) is None  # nothing to move
    save(tmp_path, s, seed=2)
    with read_only(tmp_path):
        with pytest.raises(OSError):
            archive_learned_file(path)
    assert os.path.exists(path)


# ---------------------------------------------------------------------------------------------- the policy
@pytest.mark.parametrize("learning, trajectories, past, expected", [
    (Learning.LEARN, 0, 0, LearningAction.RECORD),
    (Learning.LEARN, 3, 0, LearningAction.RECORD),
    (Learning.LEARN, 4, 0, LearningAction.FORECAST),
    (Learning.LEARN, 9, 6, LearningAction.FORECAST),
    (Learning.LEARN, 9, 7, LearningAction.KEEP_LEARNING),  # the default tops the file up to 16, one run in 8
    (Learning.LEARN, 15, 15, LearningAction.KEEP_LEARNING),
    (Learning.LEARN, 16, 7, LearningAction.FORECAST),  # topped up: forecasts only
    (Learning.LEARN, 40, 15, LearningAction.FORECAST),
    (Learning.KEEP, 4, 6, LearningAction.FORECAST),
    (Learning.KEEP, 4, 7, LearningAction.KEEP_LEARNING),
    (Learning.KEEP, 5, 15, LearningAction.KEEP_LEARNING),
    (Learning.KEEP, 40, 15, LearningAction.KEEP_LEARNING),  # keep learning never stops
    (Learning.KEEP, 2, 7, LearningAction.RECORD),
    (Learning.STOP, 0, 0, LearningAction.UNLEARNED),
    (Learning.STOP, 2, 0, LearningAction.FORECAST_FEW),
    (Learning.STOP, 4, 7, LearningAction.FORECAST),
    (Learning.START_OVER, 1, 0, LearningAction.RECORD),
])
def test_what_a_run_does(learning, trajectories, past, expected):
    assert LearningPolicy(learning, needed=4, keep_every=8, top_up_until=16).action(trajectories, past) is expected


def test_the_policy_and_the_settings_refuse_nonsense_when_the_node_runs(tmp_path):
    with pytest.raises(ValueError, match="learning_images must be a whole number >= 1, got 0"):
        LearningPolicy(needed=0)
    with pytest.raises(ValueError, match="learning must be one of"):
        LearningPolicy("learn")
    settings = dict(speedup=5.0, placement="optimized", warmup=1, compute_last=False, residual_budget=0.05,
                    history_device="model device", mode="direct", grid_policy="refuse")
    assert learning_holder(str(tmp_path), LearningPolicy(), settings).feature == "L2P Cache"
    with pytest.raises(ValueError, match="nowhere"):  # not at the first forecast, runs later
        learning_holder(str(tmp_path), LearningPolicy(), {**settings, "placement": "nowhere"})


# ---------------------------------------------------------------------------------------------- on the node
def report(**changes) -> RunReport:
    r = RunReport(feature="L2P Cache", predictor="L2P direct", num_steps=10, status="finished")
    r.transformer_calls, r.forecast_calls = 4, 6
    s = r.stream("cond")
    s.computed, s.forecast, s.residuals = [0, 3, 6, 9], [1, 2, 4, 5, 7, 8], {3: 0.02, 6: 0.031, 9: 0.01}
    r.force(0, 1.0, ForcedReason.WARMUP)
    for k, v in changes.items():
        setattr(r, k, v)
    return r


def test_the_node_text_says_what_the_run_did_first_then_the_details():
    text = node_report.node_text(report(notes=["a note"], learning=LearningStatus(
        "auto-x.safetensors", 2, 4, LearningAction.RECORD, saved=True)))
    assert text.splitlines() == [
        "L2P Cache: learning 2 of 4 images", "forecasting after 2 more", "4 real passes, 6 forecast, 10 steps",
        "worst forecast residual 0.031 (step 6, cond)", "forced 1x: warm-up guard",
        "learning: 2 of 4 images in auto-x.safetensors; 2 more, each computing every step", "a note"]
    first_two = lambda r: node_report.node_text(r).splitlines()[:2]  # noqa: E731  (what the node shows unscrolled)
    assert first_two(report()) == ["L2P Cache: 2.50x (4/10 passes)", "worst residual 0.031 (step 6)"]
    calibrated = report(feature="L2P Calibrate", recorded=6, forecast_calls=0,
                        quality=((2.0, 60.1), (3.03, 55.2), (4.55, 49.3), (5.56, 44.1), (7.14, 38.5), (10.0, 30.2)))
    assert first_two(calibrated) == ["L2P Calibrate: 6 images recorded", "expected 3.0x 55 dB, 5.6x 44 dB, 10.0x 30 dB"]
    assert "residual" not in node_report.node_text(calibrated)
    lost = report(feature="L2P Calibrate", recording_lost="calibration NOT saved: ...", forecast_calls=0,
                  notes=["calibration NOT saved: ..."])
    assert first_two(lost) == ["L2P Calibrate: recording NOT saved", "calibration NOT saved: ..."]
    assert "residual" not in node_report.node_text(lost)  # nothing was forecast: no forecast residual to speak of
    learning_lost = report(learning=LearningStatus("f", 0, 4, LearningAction.RECORD, saved=False), forecast_calls=0)
    assert node_report.headline(learning_lost) == "NOT saved (0 of 4 images)"
    assert node_report.headline(report(forecast_calls=0)) == "all 10 steps computed"
    assert node_report.headline(report(status="failed: InterruptProcessingException: ")) == "cancelled"
    assert node_report.headline(report(status="failed: ValueError: bad")) == "failed: ValueError: bad"
    last = report(learning=LearningStatus("f", 4, 4, LearningAction.RECORD, saved=True))
    assert node_report.second_line(last) == "forecasting from the next run"

    line = lambda action, n=4, saved=True, status="finished": node_report.learning_line(report(  # noqa: E731
        status=status, learning=LearningStatus("f", n, 4, action, saved)))
    assert line(LearningAction.RECORD) == "learning: 4 of 4 images in f; forecasting from the next run"
    assert line(LearningAction.RECORD, 1, False).startswith("learning: nothing recorded, its recording was lost")
    assert "the run did not finish" in line(LearningAction.RECORD, 1, False, "failed: InterruptProcessingException")
    assert line(LearningAction.FORECAST) == "learned from 4 images (f)"
    assert line(LearningAction.KEEP_LEARNING, 5) == "keep learning: this run computed every step, recorded; 5 images in f"
    assert line(LearningAction.FORECAST_FEW, 2) == ("learning stopped at 2 of 4 images (f): forecasts from fewer"
                                                    " images may be worse")
    assert "every step computed" in line(LearningAction.UNLEARNED, 0)


def test_the_quality_plot_is_a_small_picture_of_the_curve():
    image = quality_plot([(2.0, 60.0), (4.55, 49.3), (7.14, 38.5), (10.0, 30.2)])
    assert image.size == SIZE and image.mode == "RGB"
    blue = np.argwhere(np.all(np.asarray(image) == (31, 119, 180), axis=-1))
    assert len(blue) > 100  # the line and its dots are drawn...
    rows_at = lambda col: blue[np.abs(blue[:, 1] - col) <= 1][:, 0]  # noqa: E731
    assert rows_at(blue[:, 1].min() + 3).mean() < rows_at(blue[:, 1].max() - 3).mean()  # ...falling to the right
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    assert buffer.tell() < 20_000
    with pytest.raises(ValueError, match="at least one"):
        quality_plot([])


class _Server:
    """A PromptServer stand-in (the real one is exercised in test_comfy_node_report.py)."""

    def __init__(self, client_id):
        self.client_id, self.texts, self.synced = client_id, [], []

    def send_progress_text(self, text, node_id, sid=None):
        self.texts.append((text, node_id, sid))

    def send_sync(self, event, data, sid=None):
        self.synced.append((event, data, sid))


def test_show_on_node_sends_the_text_and_the_plot_and_never_fails_the_run(monkeypatch, tmp_path):
    r = report(quality=((2.0, 60.0), (5.0, 45.0)))
    assert node_report.show_on_node("7", r) is False  # no ComfyUI server: the log only
    fake_server = types.ModuleType("server")
    fake_server.PromptServer = type("PromptServer", (), {"instance": _Server("c1")})
    fake_folders = types.ModuleType("folder_paths")
    fake_folders.get_temp_directory = lambda: str(tmp_path)
    monkeypatch.setitem(sys.modules, "server", fake_server)
    monkeypatch.setitem(sys.modules, "folder_paths", fake_folders)
    assert node_report.show_on_node(None, r) is False
    assert node_report.show_on_node("7", r) is True
    ui = fake_server.PromptServer.instance
    assert ui.texts == [(node_report.node_text(r), "7", "c1")]
    (event, data, sid), = ui.synced
    assert (event, sid, data["node"], data["output"]) == ("executed", "c1", "7", {"images": [
        {"filename": "l2p-report-7.png", "subfolder": "", "type": "temp"}]})
    assert Image.open(tmp_path / "l2p-report-7.png").size == SIZE
    fake_server.PromptServer.instance = _Server(None)  # no client: the text is broadcast, no image
    assert node_report.show_on_node("7", r) and fake_server.PromptServer.instance.synced == []

    def broken(*args):
        raise RuntimeError("socket gone")

    fake_server.PromptServer.instance.send_progress_text = broken
    assert node_report.show_on_node("7", r) is False  # logged, never raised
