"""L2P Calibrate and L2P Cache end to end inside real ComfyUI sampling (tiny models from ComfyUI's classes).

Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import comfy_node_cases as node_cases
import comfy_sampling
import pass_counter
import tiny_models
from comfy_node_cases import calibrate, reports

pytestmark = pytest.mark.comfy



def l2p_cache(pack, model, name="cal.safetensors", **overrides):
    """L2P Cache on the optimized placement, its default (comfy_node_cases.CACHE spreads the steps evenly)."""
    return node_cases.l2p_cache(pack, model, name, **{"placement": "optimized", **overrides})


def psnr(a, b):
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    peak = float(b.abs().max()) or 1.0
    return 10 * np.log10(peak**2 / mse) if mse else float("inf")


def load_file(pack, path):
    return pack.module.predictors.load_predictor_file(path)


def test_calibrate_then_cache_end_to_end(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=21)
    cal = calibrate(pack, tiny)
    for seed in range(3):  # queued prompts accumulate into one file
        comfy_sampling.sample(cal, steps=10, cfg=1.0, seed=seed, batch=2)
    pf = load_file(pack, os.path.join(l2p_dir, "cal.safetensors"))
    assert pf.sample_count == 6 and pf.roles == ("cond",) and pf.steps == 10 and pf.model_family == "flux"
    assert pf.lesa == {}  # LESA's trajectory sample only with lesa_sample on (test_comfy_lesa.py)
    assert "trajectories" in " ".join(reports(cal)[-1].notes)

    cached = l2p_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(cached, steps=10, cfg=1.0, seed=7)
    report = reports(cached)[-1]
    assert counter.forwards == 4 == len(report.planned_computed) and report.planned_computed[:2] == (0, 1)
    full = comfy_sampling.sample(tiny, steps=10, cfg=1.0, seed=7)
    fora = comfy_sampling.sample(l2p_cache(pack, tiny, placement="even", predictor="published rollout"), steps=10,
                                 cfg=1.0, seed=7)
    assert torch.isfinite(out).all() and psnr(out, full) > 10
    assert psnr(out, full) != psnr(fora, full)


def test_speedup_one_is_bit_identical(pack, l2p_dir):
    tiny = tiny_models.tiny_qwen_image(seed=22)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=6, cfg=1.0, seed=1)
    ref = comfy_sampling.sample(tiny, steps=6, cfg=1.0, seed=3)
    assert torch.equal(ref, comfy_sampling.sample(l2p_cache(pack, tiny, speedup=1.0), steps=6, cfg=1.0, seed=3))


def test_cfg_calibration_records_both_roles_in_one_or_two_calls(pack, l2p_dir):
    tiny = tiny_models.tiny_qwen_image(seed=23)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=8, cfg=3.0, seed=1)
    comfy_sampling.sample(cal, steps=8, cfg=3.0, seed=2, negative_text_len=6)  # cond and uncond in two calls
    pf = load_file(pack, os.path.join(l2p_dir, "cal.safetensors"))
    assert pf.roles == ("cond", "uncond") and pf.sample_count == 2
    assert pf.cfg_mode == "cfg 3"  # the scale the guider ran at reached the file
    cached = l2p_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(cached, steps=8, cfg=3.0, seed=5, negative_text_len=6)
    assert counter.forwards == 2 * 3  # K = round(8 / 2.5) = 3, two calls per computed step
    assert not any("calibrated at CFG" in n for n in reports(cached)[-1].notes)
    comfy_sampling.sample(cached, steps=8, cfg=4.5, seed=5)  # another scale: allowed, and said in the report
    assert any("calibrated at CFG 3, sampling at CFG 4.5" in n for n in reports(cached)[-1].notes)


def test_video_latents(pack, l2p_dir):
    tiny = tiny_models.tiny_hunyuan_video(seed=24)
    shape = tiny.latent_shape(1, frames=3)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=8, cfg=1.0, seed=1, latent_shape=shape)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(l2p_cache(pack, tiny), steps=8, cfg=1.0, seed=2, latent_shape=shape)
    assert out.ndim == 5 and counter.forwards == 3 and torch.isfinite(out).all()


def test_grid_mismatch_refused_with_a_clear_error_or_resampled_when_allowed(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=25)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=10, cfg=1.0, seed=1)
    path = os.path.join(l2p_dir, "cal.safetensors")
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match=r"cal\.safetensors.*10-step grid.*8 steps.*resample"):
        comfy_sampling.sample(l2p_cache(pack, tiny), steps=8, cfg=1.0, seed=1)
    out = comfy_sampling.sample(l2p_cache(pack, tiny, step_grid_mismatch="resample"), steps=8, cfg=1.0, seed=1)
    assert torch.isfinite(out).all()
    assert open(path, "rb").read() == before  # loading never writes


def test_family_mismatch_and_corrupted_file(pack, l2p_dir):
    flux = tiny_models.tiny_flux(seed=26)
    comfy_sampling.sample(calibrate(pack, flux), steps=6, cfg=1.0, seed=1)
    qwen = tiny_models.tiny_qwen_image(seed=26)
    with pytest.raises(ValueError, match=r"cal\.safetensors.*'flux'.*'qwen_image'"):
        comfy_sampling.sample(l2p_cache(pack, qwen), steps=6, cfg=1.0, seed=1)
    bad = l2p_dir / "broken.safetensors"
    bad.write_bytes(b"\x80\x04this is a pickle")
    with pytest.raises(ValueError, match="broken.safetensors"):
        l2p_cache(pack, flux, name="broken.safetensors")


def test_calibrating_into_a_file_of_another_grid_is_refused_and_leaves_it_untouched(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=27)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=10, cfg=1.0, seed=1)
    path = os.path.join(l2p_dir, "cal.safetensors")
    before = open(path, "rb").read()
    with pytest.raises(ValueError, match="cal.safetensors"):
        comfy_sampling.sample(cal, steps=7, cfg=1.0, seed=1)
    assert open(path, "rb").read() == before


def test_on_policy_calibration_follows_forecasts_and_records_truth(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=28)
    comfy_sampling.sample(calibrate(pack, tiny), steps=10, cfg=1.0, seed=1)
    on_policy = calibrate(pack, tiny, mode="on-policy")
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(on_policy, steps=10, cfg=1.0, seed=2)
    report = reports(on_policy)[-1]
    assert counter.forwards == 10 and report.forecast_calls == 6  # truth computed, forecasts returned
    assert load_file(pack, os.path.join(l2p_dir, "cal.safetensors")).sample_count == 2


def test_cancelled_calibration_never_reaches_the_file(pack, l2p_dir, comfy):
    tiny = tiny_models.tiny_flux(seed=29)
    cal = calibrate(pack, tiny)
    comfy_sampling.sample(cal, steps=6, cfg=1.0, seed=1)
    cancelling = comfy_sampling.cancelled_at_call(cal, 3)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        comfy_sampling.sample(cancelling, steps=6, cfg=1.0, seed=2)
    assert load_file(pack, os.path.join(l2p_dir, "cal.safetensors")).sample_count == 1


@pytest.mark.parametrize("placement", ["even", "progressive", "adaptive", "published"])
def test_placements_and_rollout(pack, l2p_dir, placement):
    tiny = tiny_models.tiny_flux(seed=30)
    steps = 50 if placement == "published" else 10
    comfy_sampling.sample(calibrate(pack, tiny), steps=steps, cfg=1.0, seed=1)
    for predictor in ("direct", "published rollout"):
        speedup = 50 / 9 if placement == "published" else 2.5
        patched = l2p_cache(pack, tiny, placement=placement, predictor=predictor, speedup=speedup)
        out = comfy_sampling.sample(patched, steps=steps, cfg=1.0, seed=2)
        assert torch.isfinite(out).all() and reports(patched)[-1].status == "finished"
