"""Wan 2.2 in real ComfyUI on tiny Wan models: the 14B pair of experts (high-noise and low-noise models, each
sampled by a KSamplerAdvanced over its part of the steps, each with its own CFG, its own L2P Calibrate and file,
its own L2P Cache), short expert runs, a file of one expert refused on the other, and the 5B TI2V single model."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import comfy_families
import comfy_sampling
import pass_counter
from comfy_families import apply_node, reports

pytestmark = pytest.mark.comfy

STEPS, SPLIT = 8, 4  # the experts hand over at step 4 (the high-noise expert denoises sigma 1 .. sigmas[4])
CFG_HIGH, CFG_LOW = 3.0, 1.0  # e.g. a low-noise expert with a distilled (cfg 1) LoRA


@pytest.fixture(scope="module")
def experts(comfy):
    """Two WAN21_T2V models with different weights: Wan 2.2 14B's experts share config and class."""
    spec = comfy_families.spec("wan2.1-t2v")
    pair = comfy_families.build(spec, seed=0), comfy_families.build(spec, seed=1)
    yield pair
    del pair


def split_run(experts, seed, high=None, low=None):
    """The two-sampler graph: high-noise expert over steps 0..SPLIT with leftover noise, low-noise expert over
    SPLIT..STEPS without adding noise (KSamplerAdvanced, as Wan 2.2's template workflows do)."""
    high_model, low_model = experts
    mid = comfy_families.sample_advanced(high_model, patched=high, steps=STEPS, cfg=CFG_HIGH, seed=seed, start=0,
                                         end=SPLIT, return_with_leftover_noise=True)
    return comfy_families.sample_advanced(low_model, patched=low, steps=STEPS, cfg=CFG_LOW, seed=seed, start=SPLIT,
                                          end=STEPS, add_noise=False, latent=mid)


def full_sigmas(model) -> np.ndarray:
    return comfy_sampling.scheduler_sigmas(model.patcher, steps=STEPS).double().numpy()


def test_each_expert_calibrates_its_own_range_in_one_graph_then_caches(pack, experts, l2p_dir):
    high_model, low_model = experts
    high_cal = apply_node(pack.nodes["L2PCalibrate"], high_model, file_name="wan22-high.safetensors")
    low_cal = apply_node(pack.nodes["L2PCalibrate"], low_model, file_name="wan22-low.safetensors")
    for seed in range(3):  # one queued graph per prompt: both experts' files grow together
        split_run(experts, seed, high_cal, low_cal)
    load = pack.module.predictors.load_predictor_file
    high_pf, low_pf = (load(os.path.join(l2p_dir, f"wan22-{n}.safetensors")) for n in ("high", "low"))
    sigmas = full_sigmas(high_model)
    np.testing.assert_allclose(high_pf.sigmas, sigmas[:SPLIT + 1], rtol=1e-6)  # ends at the hand-over sigma
    np.testing.assert_allclose(low_pf.sigmas, sigmas[SPLIT:], rtol=1e-6, atol=1e-7)
    assert (high_pf.roles, low_pf.roles) == (("cond", "uncond"), ("cond",))  # each expert's own CFG setup
    assert high_pf.sample_count == low_pf.sample_count == 3 and high_pf.model_family == low_pf.model_family == "wan"

    high = apply_node(pack.nodes["L2PCache"], high_model, predictor_file="wan22-high.safetensors", speedup=2.0)
    low = apply_node(pack.nodes["L2PCache"], low_model, predictor_file="wan22-low.safetensors", speedup=2.0)
    with pass_counter.count_passes(high_model) as high_count, pass_counter.count_passes(low_model) as low_count:
        out = split_run(experts, 11, high, low)
    high_report, low_report = reports(high)[-1], reports(low)[-1]
    assert (high_report.num_steps, low_report.num_steps) == (SPLIT, STEPS - SPLIT)
    assert high_count.forwards == len(high_report.planned_computed) == 2  # cond + uncond in one call per step
    assert low_count.forwards == len(low_report.planned_computed) == 2
    assert high_count.dm_calls == low_count.dm_calls == 4
    assert set(high_report.streams) == {"cond", "uncond"} and set(low_report.streams) == {"cond"}
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("policy", ["refuse", "resample"])
def test_a_file_of_one_expert_is_refused_on_the_other(pack, experts, l2p_dir, policy):
    high_model, low_model = experts
    high_cal = apply_node(pack.nodes["L2PCalibrate"], high_model, file_name="high.safetensors")
    low_cal = apply_node(pack.nodes["L2PCalibrate"], low_model, file_name="low.safetensors")
    split_run(experts, 0, high_cal, low_cal)
    sigmas = full_sigmas(high_model)
    swapped_low = apply_node(pack.nodes["L2PCache"], low_model, predictor_file="high.safetensors",
                             step_grid_mismatch=policy)
    with pytest.raises(Exception) as err:
        split_run(experts, 1, None, swapped_low)
    text = str(err.value)
    model = "comfy.ldm.wan.model.WanModel (WAN21_T2V)"
    assert f"calibrated on sigmas {sigmas[0]:.4g} .. {sigmas[SPLIT]:.4g} of model 'wan' {model}" in text
    assert f"this run samples sigmas {sigmas[SPLIT]:.4g} .. 0 with model 'wan' {model} (other weights" in text
    assert "each part's L2P Cache its own file" in text and "other_model" not in text
    swapped_high = apply_node(pack.nodes["L2PCache"], high_model, predictor_file="low.safetensors",
                              step_grid_mismatch=policy)
    with pytest.raises(Exception, match=f"calibrated on sigmas {sigmas[SPLIT]:.4g} .. 0 of model 'wan'"):
        split_run(experts, 1, swapped_high, None)


def test_short_expert_runs_compute_their_guards_and_say_so(pack, experts):
    """8 steps as 4 + 4 at speedup 4: one computed step per expert is fewer than Forecast Cache's warm-up (2)."""
    high_model, low_model = experts
    high, low = (apply_node(pack.nodes["L2PForecastCache"], m, speedup=4.0) for m in experts)
    with pass_counter.count_passes(high_model) as high_count, pass_counter.count_passes(low_model) as low_count:
        out = split_run(experts, 2, high, low)
    for report, count in ((reports(high)[-1], high_count), (reports(low)[-1], low_count)):
        assert report.status == "finished" and report.planned_computed == (0, 1) and count.forwards == 2
        assert any("computed the 2 guard steps and forecast the other 2" in note for note in report.notes)
    assert torch.isfinite(out).all()


def test_wan22_5b_ti2v_keeps_the_start_frame(pack, comfy):
    """The 5B TI2V model: one model; image-to-video is a start-frame latent with a noise mask (per-frame
    timesteps in WAN22.process_timestep). The forecast steps must leave the masked frame as given."""
    spec = comfy_families.spec("wan2.2-5b")
    if comfy_families.host_has(spec):
        pytest.skip(comfy_families.host_has(spec))
    model = comfy_families.build(spec, seed=0)
    latent = torch.zeros(model.latent_shape())
    latent[:, :, :1] = torch.randn(latent[:, :, :1].shape, generator=torch.Generator().manual_seed(0))
    mask = torch.ones((1, 1) + tuple(latent.shape[2:]))
    mask[:, :, :1] = 0.0
    patched = apply_node(pack.nodes["L2PForecastCache"], model, speedup=3.0)
    with pass_counter.count_passes(model) as count:
        out = comfy_families.sample_advanced(model, patched=patched, steps=12, cfg=3.0, seed=4, latent=latent,
                                             noise_mask=mask)
    report = reports(patched)[-1]
    assert count.forwards == len(report.planned_computed) == 4 and count.dm_calls == 12
    torch.testing.assert_close(out[:, :, :1], latent[:, :, :1])
    assert torch.isfinite(out).all() and not torch.equal(out[:, :, 1:], latent[:, :, 1:])
