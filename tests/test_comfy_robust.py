"""Inside real ComfyUI sampling (tiny models from ComfyUI's classes): L2P Calibrate keeps one Gram per batch row in
the file, a file calibrated now records the schedule's error-growth model, and L2P Cache's safety net computes the
extra steps it reports (cond and uncond batched in one call, or in two).

Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import os

import pytest

import comfy_host
import comfy_sampling
import pass_counter
import tiny_models

pytestmark = pytest.mark.comfy

STEPS = 10


def calibrated(pack, l2p_dir, tiny, cfg, name):
    (patched,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name=name,
                                     ridge_lambda=1e-6, mode="teacher-forced", on_policy_speedup=2.5)
    for seed in range(2):
        comfy_sampling.sample(patched, steps=STEPS, cfg=cfg, seed=seed, batch=2)
    return os.path.join(l2p_dir, name)


def cache_with_net(pack, tiny, path, margin):
    nodes = pack.module.nodes
    holder = nodes.l2p_setup.l2p_cache_holder(
        path, speedup=2.5, placement="optimized", warmup=1, compute_last=False, residual_budget=0.05,
        history_device="model device", mode="direct", grid_policy="refuse",
        options=nodes.setups.FitOptions(safety_net=pack.module.predictors.schedules.safety_net.SafetyNet(
            margin=margin, max_extra=2)))
    return nodes.cache_nodes.install(tiny.patcher, holder)


@pytest.mark.parametrize("negative_len", [None, 7])  # None: cond and uncond batched in one call; 7: two calls
def test_the_safety_net_computes_what_it_reports(pack, l2p_dir, negative_len):
    tiny = tiny_models.tiny_flux(seed=31)
    path = calibrated(pack, l2p_dir, tiny, 3.0, f"net{negative_len}.safetensors")
    pf = pack.module.predictors.load_predictor_file(path)
    assert pf.sample_count == 4 and pf.trajectories["trajectory_keys"].shape == (4,)  # one Gram per batch row
    growth = pack.module.predictors.schedules.error_growth
    assert growth.for_guidance(True, pf.extra) == growth.DEFAULT_CFG
    runs = {}
    for margin in (1e6, 1e-9):  # never / always above the margin
        patched = cache_with_net(pack, tiny, path, margin)
        with pass_counter.count_passes(tiny) as counter:
            comfy_sampling.sample(patched, steps=STEPS, cfg=3.0, seed=5, negative_text_len=negative_len)
        report = patched.model_options["transformer_options"]["l2p"].reports[-1]
        runs[margin] = (counter.forwards, report)
    (quiet_passes, quiet), (eager_passes, eager) = runs[1e6], runs[1e-9]
    calls_per_step = 1 if negative_len is None else 2
    assert quiet.safety_net_passes == 0 and quiet_passes == calls_per_step * len(quiet.planned_computed)
    assert eager.planned_computed == quiet.planned_computed and eager.safety_net_passes == 2
    assert eager_passes == quiet_passes + 2 * calls_per_step
    assert sum("safety net" in n for n in eager.notes) == 2
