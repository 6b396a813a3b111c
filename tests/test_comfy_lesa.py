"""LESA inside real ComfyUI: L2P Calibrate records its sample only when asked, L2P Cache trains once per file with
ComfyUI's progress bar on the L2P Cache node, stores the experts in the file and loads them afterwards, and
retrains when calibration changes the sample. Graphs run through ComfyUI's server path (comfy_prompt.py).

The training recipe is shortened here (``lesa_setup.LESA_TRAINING``, 30 iterations instead of 450): the code path
is the node's own; the full recipe's time and quality are measured by python3 -m benchmark.lesa_cost and
python3 -m benchmark. Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest
import torch

import comfy_host
import comfy_sampling
import tiny_models
from comfy_node_cases import CALIBRATE
from comfy_prompt import run_graph, sampler_graph, sampler_sources

pytestmark = pytest.mark.comfy

LESA = "LESA (non-linear, stage-aware)"
CACHE = dict(speedup=2.5, placement="even", warmup_steps=2, compute_last_step=False, residual_budget=0.05,
             history_device="model device", predictor=LESA, step_grid_mismatch="refuse")


@pytest.fixture()
def short_training(pack, monkeypatch):
    lesa_setup = sys.modules[f"{pack.module.__name__}.nodes.lesa_setup"]
    train = sys.modules[f"{pack.module.__name__}.predictors.forecasters.lesa.train"]
    monkeypatch.setattr(lesa_setup, "LESA_TRAINING", train.LesaTrainConfig(phase1_iters=20, phase2_iters=10))
    return lesa_setup


@contextlib.contextmanager
def progress_updates():
    """What ComfyUI's progress bar sends the frontend (value, max, node id), through its global hook; the node is
    resolved as the server's hook does (main.py hijack_progress: the executing node when none is given)."""
    import comfy.utils
    from comfy_execution.utils import get_executing_context

    updates = []
    before = comfy.utils.PROGRESS_BAR_HOOK

    def hook(value, total, preview, prompt_id=None, node_id=None):
        context = get_executing_context()
        updates.append((value, total, node_id or (context.node_id if context is not None else None)))

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        yield updates
    finally:
        comfy.utils.set_progress_bar_global_hook(before)


def calibrate(pack, tiny, name, lesa_sample, seeds=(0, 1), steps=10):
    (patched,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name=name,
                                     lesa_sample=lesa_sample, **CALIBRATE)
    for seed in seeds:
        comfy_sampling.sample(patched, steps=steps, cfg=1.0, seed=seed)


def cache_graph(name, **overrides):
    return sampler_graph({"class_type": "L2PCache", "inputs": {"predictor_file": name, **CACHE, **overrides}},
                         steps=10)


def test_without_lesa_sample_the_file_stays_small_and_lesa_says_what_to_do(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=51)
    calibrate(pack, tiny, "small.safetensors", lesa_sample=False)
    assert (l2p_dir / "small.safetensors").stat().st_size < 8 * 1024  # Gram, counts, sigmas, paper matrix
    error = run_graph(cache_graph("small.safetensors"), sampler_sources(tiny)).error
    assert error["node_type"] == "L2PCache" and error["exception_type"] == "l2p.PredictorFileError"
    assert error["exception_message"].startswith("L2P Cache: ") and "lesa_sample on" in error["exception_message"]


def test_lesa_trains_once_per_file_with_a_progress_bar_and_retrains_when_the_sample_changes(pack, l2p_dir,
                                                                                         short_training, caplog):
    tiny = tiny_models.tiny_flux(seed=52)
    calibrate(pack, tiny, "lesa.safetensors", lesa_sample=True)
    path = l2p_dir / "lesa.safetensors"
    load = pack.module.predictors.load_predictor_file
    assert load(str(path)).lesa["traj_values"].shape == (2 * 1024, 1, 10)  # every element of both runs

    with progress_updates() as updates, caplog.at_level("INFO"):
        run = run_graph(cache_graph("lesa.safetensors"), sampler_sources(tiny))
    assert run.succeeded and torch.isfinite(run.sink_latents[0]).all()
    training = [u for u in updates if u[2] == "l2p"]  # the bar of the L2P Cache node (graph id "l2p")
    assert training and training[-1][:2] == (30, 30)
    assert any("training LESA on 2048 sampled trajectories" in r.getMessage() for r in caplog.records)
    stored = load(str(path)).lesa
    assert "model.trained_from" in stored and "model.expert0.layer0.spline" in stored

    with progress_updates() as updates, caplog.at_level("INFO"):
        caplog.clear()
        run = run_graph(cache_graph("lesa.safetensors", speedup=3.0), sampler_sources(tiny))  # node runs again
    assert run.succeeded and not [u for u in updates if u[2] == "l2p"]  # loaded, not trained
    assert any("using the LESA experts stored in lesa.safetensors" in r.getMessage() for r in caplog.records)

    calibrate(pack, tiny, "lesa.safetensors", lesa_sample=True, seeds=(2,))  # the sample changes
    with progress_updates() as updates:
        assert run_graph(cache_graph("lesa.safetensors", speedup=3.5), sampler_sources(tiny)).succeeded
    assert [u for u in updates if u[2] == "l2p"][-1][:2] == (30, 30)  # trained again
    retrained = load(str(path)).lesa
    assert not np.array_equal(retrained["model.trained_from"], stored["model.trained_from"])


def test_a_file_in_the_pack_folder_is_used_but_never_rewritten(pack, l2p_dir, short_training, tmp_path,
                                                               monkeypatch):
    tiny = tiny_models.tiny_flux(seed=53)
    calibrate(pack, tiny, "packed.safetensors", lesa_sample=True)
    path = l2p_dir / "packed.safetensors"
    before = path.read_bytes()
    monkeypatch.setattr(short_training, "PACK_ROOT", str(l2p_dir))  # as if the file shipped in the pack's weights/
    (patched,) = comfy_host.run_node(pack.nodes["L2PCache"], model=tiny.patcher, predictor_file="packed.safetensors",
                                     **CACHE)
    assert torch.isfinite(comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=4)).all()
    assert path.read_bytes() == before


def test_cancelling_during_training_stops_it_and_leaves_the_file_untouched(pack, l2p_dir, short_training):
    """ComfyUI's progress hook is where a queued cancel lands (main.py's hook calls
    throw_exception_if_processing_interrupted): the training stops there and nothing is written. The cancel comes at
    the first update, which every host sends (0.33 throttles the later ones)."""
    import comfy.model_management
    import comfy.utils

    tiny = tiny_models.tiny_flux(seed=54)
    calibrate(pack, tiny, "cancel.safetensors", lesa_sample=True)
    path = l2p_dir / "cancel.safetensors"
    before = path.read_bytes()
    seen = []

    def hook(value, total, preview, prompt_id=None, node_id=None):
        seen.append((value, total))
        comfy.model_management.interrupt_current_processing(True)
        comfy.model_management.throw_exception_if_processing_interrupted()

    saved = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        run = run_graph(cache_graph("cancel.safetensors"), sampler_sources(tiny))
    finally:
        comfy.utils.set_progress_bar_global_hook(saved)
        comfy.model_management.interrupt_current_processing(False)
    assert any(event == "execution_interrupted" for event, _ in run.messages) and not run.succeeded, run.messages
    assert seen == [(1, 30)] and path.read_bytes() == before  # stopped after its first of 30 iterations
