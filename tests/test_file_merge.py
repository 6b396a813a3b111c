"""Merging predictor files: statistics add exactly, LESA samples and provenance merge by their rules, mismatched
files are refused with the reason, and the inputs are never changed. Also the merge command's refusals."""
import dataclasses
import json
import os

import numpy as np
import pytest

from comfyui_l2p.predictors.calibration.fit import fit_paper_matrix
from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.files import __main__ as cli
from comfyui_l2p.predictors.files.identity import IDENTITY_KEY, identity_of
from comfyui_l2p.predictors.files.merge import MergeRefused, merge_predictor_files
from comfyui_l2p.predictors.files.predictor_file import PredictorFile
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file

from file_cases import GRID, WEIGHTS, identity, int_stats, run_file


def test_statistics_add_exactly_and_the_fit_is_refitted():
    a, b = run_file(1, samples=2), run_file(2, samples=3)
    merged = merge_predictor_files(a, b).file
    expected = int_stats(1).gram + int_stats(2).gram
    assert np.array_equal(merged.gram, expected)
    assert merged.sample_count == 5 and merged.element_count == (2 + 3) * 64
    np.testing.assert_array_equal(merged.paper_matrix, fit_paper_matrix(expected, 1e-3))
    assert merged.extra["trajectory_count"] == "5"


def test_provenance_merges_by_its_rules():
    a = run_file(1, samples=2, sampler="euler", cfg_mode="cfg 3", roles=("cond", "uncond"), machine="aaaaaaaa",
                 created="2026-03-01T10:00:00Z")
    b = run_file(2, samples=3, sampler="dpmpp_2m", cfg_mode="cfg 1.5,3", roles=("cond", "uncond"),
                 machine="bbbbbbbb", created="2026-02-01T10:00:00Z", fit_mode="on-policy")
    c = run_file(3, samples=1, sampler="euler", cfg_mode="cfg 7", roles=("cond", "uncond"), machine="aaaaaaaa",
                 created="2026-04-01T10:00:00Z")
    merged = merge_predictor_files(merge_predictor_files(a, b).file, c).file
    assert merged.sampler == "dpmpp_2m,euler" and merged.scheduler == "simple"
    assert merged.cfg_mode == "cfg 1.5,3,7" and merged.fit_mode == "on-policy,teacher-forced"
    assert merged.extra["created"] == "2026-02-01T10:00:00Z" and merged.extra["updated"] == "2026-04-01T10:00:00Z"
    assert json.loads(merged.extra["contributors"]) == {"aaaaaaaa": 3, "bbbbbbbb": 3}
    assert merged.extra["trajectory_count"] == "6" and merged.sample_count == 6
    assert merged.extra[IDENTITY_KEY] == a.extra[IDENTITY_KEY]


def test_merging_is_pure_and_reproducible():
    a, b = run_file(1, lesa_rows=40), run_file(2, lesa_rows=30)
    before = [(pf.gram.copy(), dict(pf.extra), {k: v.copy() for k, v in pf.lesa.items()}) for pf in (a, b)]
    one = merge_predictor_files(a, b, sample_capacity=50).file
    two = merge_predictor_files(a, b, sample_capacity=50).file
    for pf, (gram, extra, lesa) in zip((a, b), before):
        assert np.array_equal(pf.gram, gram) and pf.extra == extra
        assert all(np.array_equal(pf.lesa[k], v) for k, v in lesa.items())
    assert one.lesa["traj_values"].shape == (50, 1, GRID.num_steps)
    assert np.array_equal(one.lesa["traj_values"], two.lesa["traj_values"])


def test_lesa_samples_merge_and_derived_models_are_dropped():
    a = run_file(1, lesa_rows=10)
    a = dataclasses.replace(a, lesa={**a.lesa, "expert0.w": np.ones((2, 2), np.float32)})
    result = merge_predictor_files(a, run_file(2, lesa_rows=5))  # the sample changes: what was trained on it goes
    assert set(result.file.lesa) == {"traj_values", "traj_sigmas", "traj_seen"}
    assert any("dropped 1 LESA tensors trained on the former samples" in n for n in result.notes)
    result = merge_predictor_files(run_file(3), run_file(4, lesa_rows=5))
    assert any("holds no LESA trajectory sample" in n for n in result.notes)


def test_a_run_without_a_sample_keeps_the_files_sample_and_what_was_trained_on_it():
    a = run_file(1, lesa_rows=10)
    a = dataclasses.replace(a, lesa={**a.lesa, "expert0.w": np.ones((2, 2), np.float32)})
    result = merge_predictor_files(a, run_file(2))  # calibrated with L2P Calibrate's lesa_sample off
    assert result.file.lesa.keys() == a.lesa.keys() and not result.notes
    assert all(np.array_equal(result.file.lesa[k], v) for k, v in a.lesa.items())


@pytest.mark.parametrize("change, reason", [
    (dict(model_family="qwen_image"), "model family 'flux' vs 'qwen_image'"),
    (dict(model_class="Chroma"), "model class 'Flux' vs 'Chroma'"),
    (dict(latent_channels=64), "16 vs 64 latent channels"),
])
def test_another_model_is_refused(change, reason):
    with pytest.raises(MergeRefused, match=reason):
        merge_predictor_files(run_file(1), run_file(2, **change), base_name="a.safetensors",
                              incoming_name="b.safetensors")


def test_another_setup_is_refused_with_the_reason():
    a = run_file(1)
    with pytest.raises(MergeRefused, match="'b' into 'a'.*different stream roles"):
        merge_predictor_files(a, run_file(2, roles=("cond", "uncond")), base_name="a", incoming_name="b")
    with pytest.raises(MergeRefused, match="different step counts: 6 vs 8"):
        merge_predictor_files(a, run_file(2, grid=StepGrid.uniform(8)))
    shifted = StepGrid(tuple((np.linspace(1.0, 0.0, 7) ** 0.7).tolist()))
    with pytest.raises(MergeRefused, match="different sigma grids"):
        merge_predictor_files(a, run_file(2, grid=shifted))
    weights_only = PredictorFile(steps=6, model_family="flux", model_class="Flux", paper_matrix=np.eye(6))
    with pytest.raises(MergeRefused, match="holds no calibration statistics"):
        merge_predictor_files(a, weights_only)


@pytest.mark.parametrize("other, allowed", [
    (identity(weights={k: v + 0.01 for k, v in WEIGHTS.items()}), True),  # a fine-tune
    (identity(patches="12 keys 0123456789abcdef"), True),  # a LoRA on the same base
    (identity(config={"guidance_embed": False, "depth": 1}), False),  # FLUX.1-schnell against dev
    (identity(model_class="comfy.ldm.flux2.model.Flux2"), False),  # FLUX.2
])
def test_other_weights_merge_only_when_allowed_and_other_models_never(other, allowed):
    a, b = run_file(1), run_file(2, model=other)
    with pytest.raises(MergeRefused, match="calibrated on"):
        merge_predictor_files(a, b)
    if allowed:
        result = merge_predictor_files(a, b, allow_other_weights=True)
        assert result.file.sample_count == 2 and any("keeps" in n for n in result.notes)
        assert result.file.extra[IDENTITY_KEY] == a.extra[IDENTITY_KEY]
    else:
        with pytest.raises(MergeRefused, match="never merged"):
            merge_predictor_files(a, b, allow_other_weights=True)


def test_the_same_weights_at_another_precision_merge_with_a_note():
    rounded = {k: np.round(v * 512) / np.float32(512) for k, v in WEIGHTS.items()}  # a few % RMS, like fp8
    result = merge_predictor_files(run_file(1), run_file(2, model=identity(weights=rounded, dtype="float8_e4m3fn")))
    assert result.file.sample_count == 2
    assert any("another precision (sampled weights differ by" in n and "bfloat16 -> float8_e4m3fn" in n
               for n in result.notes), result.notes


def test_an_older_file_without_identity_takes_the_other_files():
    old = run_file(1)
    old = dataclasses.replace(old, extra={k: v for k, v in old.extra.items() if k != IDENTITY_KEY})
    result = merge_predictor_files(old, run_file(2), base_name="old")
    assert identity_of(result.file.extra, "merged").to_metadata() == identity().to_metadata()
    assert any("'old' records no model identity" in n for n in result.notes)


# ---------------------------------------------------------------------------------------------- the command
def test_merge_command_writes_the_sum_and_leaves_the_inputs_alone(tmp_path, capsys):
    paths = []
    for i in range(3):
        path = tmp_path / f"machine{i}.safetensors"
        save_predictor_file(path, run_file(i + 1, samples=i + 1, lesa_rows=8, machine=f"{i}" * 8))
        paths.append(str(path))
    before = [open(p, "rb").read() for p in paths]
    out = str(tmp_path / "all.safetensors")
    assert cli.main(["merge", out, *paths]) == 0
    merged = load_predictor_file(out)
    assert merged.sample_count == 6 and np.array_equal(merged.gram, sum(int_stats(i + 1).gram for i in range(3)))
    assert json.loads(merged.extra["contributors"]) == {"00000000": 1, "11111111": 2, "22222222": 3}
    assert merged.lesa["traj_values"].shape[0] == 24
    assert [open(p, "rb").read() for p in paths] == before
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["info", out]) == 0
    shown = capsys.readouterr().out
    assert "6 trajectories" in shown and "contributors: 00000000: 1, 11111111: 2, 22222222: 3" in shown


def test_merge_command_refuses_with_the_reason_and_writes_nothing(tmp_path, capsys):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_predictor_file(a, run_file(1))
    save_predictor_file(b, run_file(2, roles=("cond", "uncond"), cfg_mode="cfg 3"))
    out = tmp_path / "out.safetensors"
    assert cli.main(["merge", str(out), str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "b.safetensors" in err and "a.safetensors" in err and "different stream roles" in err
    assert not out.exists()
    assert cli.main(["merge", str(a), str(a), str(b)]) == 2  # the output is an input
    assert "inputs are never modified" in capsys.readouterr().err
    save_predictor_file(b, run_file(1))
    assert cli.main(["merge", str(out), str(a), str(b)]) == 2  # a copy would count its runs twice
    assert "the same calibration" in capsys.readouterr().err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x80\x04 a pickle")
    assert cli.main(["merge", str(out), str(a), str(broken)]) == 2
    assert "broken.safetensors" in capsys.readouterr().err and not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors", "b.safetensors", "broken.safetensors"]


def test_the_later_ridge_wins_and_the_change_is_noted():
    result = merge_predictor_files(run_file(1), run_file(2, ridge_lambda=1e-2), base_name="a", incoming_name="b")
    assert result.file.ridge_lambda == 1e-2
    np.testing.assert_array_equal(result.file.paper_matrix, fit_paper_matrix(result.file.gram, 1e-2))
    assert any("ridge_lambda: now 0.01 of 'b' ('a' had 0.001)" in n for n in result.notes)
