"""L2P Cache's learning mode inside real ComfyUI sampling (tiny models from ComfyUI's classes): the default node on an
empty models/l2p/ computes every step of its first runs and records them, then forecasts at the requested speedup;
one file per setup, found again by a fresh node; pin, stop learning, keep learning, start over; cancelled runs,
a read-only folder, a bad file; two ComfyUI processes learning one setup.

Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import comfy_host
import comfy_sampling
import pass_counter
import tiny_models
from file_cases import read_only

pytestmark = pytest.mark.comfy

HERE = Path(__file__).resolve().parent
STEPS, SPEEDUP, PASSES = 10, 2.5, 4  # 10 steps at 2.5x: 4 real passes
NODE = dict(speedup=SPEEDUP, placement="optimized", warmup_steps=1, compute_last_step=False, residual_budget=0.05,
            history_device="model device", predictor="direct", step_grid_mismatch="refuse")
NAME = re.compile(r"auto-flux-10steps-simple-cfg1-[0-9a-f]{8}\.safetensors")


def module(pack, name):
    return importlib.import_module(f"{pack.module.__name__}.{name}")


def cache(pack, model, **overrides):
    """L2P Cache with the node's defaults (predictor_file auto, learning as the node defaults it) at 2.5x."""
    inputs = {"predictor_file": module(pack, "nodes.learn_setup").AUTO_FILE, **NODE, **overrides}
    (patched,) = comfy_host.run_node(pack.nodes["L2PCache"], model=tiny_models.as_tiny(model).patcher, **inputs)
    return patched


def run(patched, tiny, seed, steps=STEPS, **kwargs):
    """(output latent, the run's report, real transformer forwards)."""
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(patched, steps=steps, cfg=kwargs.pop("cfg", 1.0), seed=seed, **kwargs)
    return out, patched.model_options["transformer_options"]["l2p"].reports[-1], counter.forwards


def learned(folder):
    return sorted(p.name for p in Path(folder).glob("*.safetensors"))


def load(pack, path):
    return pack.module.predictors.load_predictor_file(str(path))


def test_default_l2p_cache_learns_on_an_empty_folder_then_forecasts(pack, l2p_dir):
    learn_setup, action = module(pack, "nodes.learn_setup"), module(pack, "nodes.report").LearningAction
    widget = next(i for i in pack.nodes["L2PCache"].define_schema().inputs if i.id == "predictor_file")
    assert widget.options[0] == widget.default == learn_setup.AUTO_FILE  # never 'undefined' on an empty folder
    assert learn_setup.LEARNING_TRAJECTORIES == 4
    tiny = tiny_models.tiny_flux(seed=60)
    patched = cache(pack, tiny)
    trajectories = 0
    for seed, batch in enumerate((1, 2, 1)):  # batch rows count: 1, 3, 4 trajectories
        out, report, forwards = run(patched, tiny, seed, batch=batch)
        trajectories += batch
        assert forwards == STEPS and report.forecast_calls == 0  # every step computed...
        assert torch.equal(out, comfy_sampling.sample(tiny, steps=STEPS, cfg=1.0, seed=seed, batch=batch))  # ...as is
        assert (report.learning.action, report.learning.saved, report.learning.trajectories) == \
            (action.RECORD, True, trajectories)
        (name,) = learned(l2p_dir)
        assert NAME.fullmatch(name) and report.learning.file == name
        assert load(pack, l2p_dir / name).sample_count == trajectories
    assert "forecasting from the next run" in module(pack, "nodes.node_report").learning_line(report)
    before = (l2p_dir / name).read_bytes()
    for seed in (10, 11):
        out, report, forwards = run(patched, tiny, seed)
        assert forwards == PASSES and report.achieved_speedup == pytest.approx(SPEEDUP)
        assert report.learning.action is action.FORECAST and torch.isfinite(out).all()
    assert (l2p_dir / name).read_bytes() == before  # forecasting runs never write

    _, report, forwards = run(cache(pack, tiny), tiny, 12)  # a fresh node (a restart) finds the learned file
    assert forwards == PASSES and report.learning.action is action.FORECAST
    assert name in module(pack, "nodes.files").list_predictor_files()  # in the dropdown, pinnable
    _, report, forwards = run(cache(pack, tiny, predictor_file=name), tiny, 13)
    assert forwards == PASSES and report.learning is None and (l2p_dir / name).read_bytes() == before


def test_each_setup_learns_into_its_own_file(pack, l2p_dir):
    action = module(pack, "nodes.report").LearningAction
    tiny = tiny_models.tiny_flux(seed=61)
    patched = cache(pack, tiny, learning_images=1)
    runs = [(dict(), action.RECORD), (dict(steps=8), action.RECORD), (dict(cfg=3.0), action.RECORD),
            (dict(scheduler="beta"), action.RECORD), (dict(steps=8, sampler_name="dpmpp_2m"), action.FORECAST)]
    names = []
    for seed, (kwargs, expected) in enumerate(runs):
        _, report, _ = run(patched, tiny, seed, **kwargs)
        names.append(report.learning.file)
        assert report.learning.action is expected, (kwargs, report.learning)
    assert NAME.fullmatch(names[0]) and names[1].startswith("auto-flux-8steps-simple-cfg1-")
    assert names[2].startswith("auto-flux-10steps-simple-cfg3-") and names[3].startswith("auto-flux-10steps-beta-cfg1-")
    assert names[4] == names[1]  # another sampler on the same sigmas is the same setup: it forecasts
    other = tiny_models.tiny_flux(seed=62)  # another model: same class and config, other weights
    _, report, _ = run(cache(pack, other, learning_images=1), other, 9)
    names.append(report.learning.file)
    assert len(set(names)) == 5 and learned(l2p_dir) == sorted(set(names))
    assert load(pack, l2p_dir / names[2]).roles == ("cond", "uncond")
    _, report, forwards = run(patched, tiny, 20, cfg=3.0)
    assert report.learning.action is action.FORECAST and forwards == PASSES  # cond and uncond batched per call


def test_a_cancelled_learning_run_adds_nothing(pack, l2p_dir, comfy):
    tiny = tiny_models.tiny_flux(seed=63)
    patched = cache(pack, tiny)
    run(patched, tiny, 0)
    (name,) = learned(l2p_dir)
    before = (l2p_dir / name).read_bytes()
    cancelling = comfy_sampling.cancelled_at_call(patched, 3)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        comfy_sampling.sample(cancelling, steps=STEPS, cfg=1.0, seed=1)
    report = cancelling.model_options["transformer_options"]["l2p"].reports[-1]
    assert report.learning.saved is False and (l2p_dir / name).read_bytes() == before
    node_report = module(pack, "nodes.node_report")
    assert node_report.node_text(report).startswith("L2P Cache: cancelled\n")
    assert "nothing recorded, the run did not finish" in node_report.learning_line(report)


def test_stop_learning_keep_learning_and_start_over(pack, l2p_dir):
    action = module(pack, "nodes.report").LearningAction
    keep_every = module(pack, "nodes.learn_setup").KEEP_LEARNING_EVERY
    tiny = tiny_models.tiny_flux(seed=64)
    _, report, forwards = run(cache(pack, tiny, learning="stop learning"), tiny, 0)
    assert forwards == STEPS and report.learning.action is action.UNLEARNED and learned(l2p_dir) == []

    learning = cache(pack, tiny, learning_images=3)
    run(learning, tiny, 1), run(learning, tiny, 2)
    (name,) = learned(l2p_dir)
    before = (l2p_dir / name).read_bytes()
    _, report, forwards = run(cache(pack, tiny, learning="stop learning", learning_images=3), tiny, 3)
    assert forwards == PASSES and report.learning.action is action.FORECAST_FEW and report.learning.trajectories == 2
    assert (l2p_dir / name).read_bytes() == before

    keep = cache(pack, tiny, learning="keep learning", learning_images=2)
    seen = [run(keep, tiny, 10 + i)[1:] for i in range(keep_every + 1)]
    assert [(r.learning.action, f) for r, f in seen] == [(action.FORECAST, PASSES)] * (keep_every - 1) + [
        (action.KEEP_LEARNING, STEPS), (action.FORECAST, PASSES)]
    assert seen[keep_every - 1][0].learning.saved and load(pack, l2p_dir / name).sample_count == 3

    kept = (l2p_dir / name).read_bytes()
    over = cache(pack, tiny, learning="start over", learning_images=2)
    _, report, forwards = run(over, tiny, 30)
    (archived,) = (l2p_dir / "archive").iterdir()
    assert re.fullmatch(name.removesuffix(".safetensors") + r"-\d{8}T\d{6}Z\.safetensors", archived.name)
    assert archived.read_bytes() == kept and any("start over: the learned file moved to" in n for n in report.notes)
    assert forwards == STEPS and report.learning.action is action.RECORD and report.learning.trajectories == 1
    assert f"archive/{archived.name}" in module(pack, "nodes.files").list_predictor_files()  # still pinnable
    _, report, forwards = run(over, tiny, 31)  # once per node: the second run of the setup learns on
    assert report.learning.trajectories == 2 and len(list((l2p_dir / "archive").iterdir())) == 1
    _, report, forwards = run(over, tiny, 32)
    assert report.learning.action is action.FORECAST and forwards == PASSES


def test_a_read_only_models_folder_loses_only_the_recording(pack, l2p_dir):
    action = module(pack, "nodes.report").LearningAction
    tiny = tiny_models.tiny_flux(seed=65)
    patched = cache(pack, tiny)
    plain = comfy_sampling.sample(tiny, steps=STEPS, cfg=1.0, seed=1)
    with read_only(l2p_dir):
        for _ in range(2):  # nothing is learned, so the next run learns again
            out, report, forwards = run(patched, tiny, 1)
            assert torch.equal(out, plain) and report.status == "finished" and forwards == STEPS
            assert (report.learning.action, report.learning.saved) == (action.RECORD, False)
            assert any("calibration NOT saved" in n and "cannot be written" in n for n in report.notes)
            node_report = module(pack, "nodes.node_report")
            assert node_report.headline(report) == "NOT saved (0 of 4 images)"
            assert node_report.learning_line(report).startswith(
                "learning: nothing recorded, its recording was lost (see below); still 0 of 4 images")
    assert learned(l2p_dir) == []


def test_a_bad_file_under_the_learned_name_is_named_and_never_modified(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=66)
    patched = cache(pack, tiny)
    run(patched, tiny, 0)
    (name,) = learned(l2p_dir)
    (l2p_dir / name).write_bytes(b"\x80\x04 not ours")
    with pytest.raises(ValueError, match=re.escape(name) + r".*pickle.*left as it is: move it out of"):
        run(patched, tiny, 1)
    assert (l2p_dir / name).read_bytes() == b"\x80\x04 not ours"
    (l2p_dir / "auto-dropped-in.safetensors").write_bytes(b"garbage")  # another name: skipped, said, untouched
    _, report, _ = run(patched, tiny, 2, steps=8)
    assert any("skipped auto-dropped-in.safetensors" in n for n in report.notes)
    assert (l2p_dir / "auto-dropped-in.safetensors").read_bytes() == b"garbage"


def test_two_comfyui_processes_learning_one_setup_lose_nothing(pack, l2p_dir):
    go, runs = l2p_dir / "go", 15
    env = {**os.environ, comfy_host.ENV_VAR: str(comfy_host.comfyui_path())}
    workers = [subprocess.Popen([sys.executable, str(HERE / "comfy_calibrate_worker.py"), str(l2p_dir), str(w),
                                 str(runs), str(go), "learn"], env=env, stderr=subprocess.PIPE, text=True)
               for w in (1, 2)]
    time.sleep(0.5)
    go.touch()
    results = [(w.wait(timeout=600), w.stderr.read()) for w in workers]
    assert [rc for rc, _ in results] == [0, 0], results
    (shared,) = [n for n in learned(l2p_dir) if n.startswith("auto-")]
    shared, own = load(pack, l2p_dir / shared), [load(pack, l2p_dir / f"own{w}.safetensors") for w in (1, 2)]
    assert shared.sample_count == 2 * runs == sum(pf.sample_count for pf in own)
    np.testing.assert_allclose(shared.gram, own[0].gram + own[1].gram, rtol=1e-12, atol=0)


def test_a_learning_run_whose_model_outputs_nan_returns_the_image_and_learns_nothing(pack, l2p_dir):
    """A learning run is the user's image first: NaN from the model at one step gives the run the model's own
    output (as without L2P), records nothing, and the report says so; the next healthy run learns."""
    tiny = tiny_models.tiny_flux(seed=46)
    patched = cache(pack, tiny)
    with pass_counter.nan_from_call(tiny, first_bad_call=3):
        out, report, forwards = run(patched, tiny, seed=3)
    assert report.status == "finished" and torch.isnan(out).all() and forwards == STEPS
    assert report.learning.saved is False and learned(l2p_dir) == []
    assert any("step 3 " in note and "NaN" in note for note in report.notes)
    out, report, forwards = run(patched, tiny, seed=4)
    assert torch.isfinite(out).all() and report.learning.saved and report.learning.trajectories == 1
    assert len(learned(l2p_dir)) == 1
