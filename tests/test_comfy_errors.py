"""What a user sees when something goes wrong, through ComfyUI's own server path (validate_prompt, then
PromptExecutor): the node the error is shown on, the exception type string ComfyUI builds, and the message.

Every L2P error reads ``l2p.<Type>`` (not the pack's folder path) and its message starts with the L2P node's
name, also when ComfyUI shows it at the sampler. Bad model output (NaN) is found at the step where it appears.
Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import os

import pytest
import torch

import comfy_host
import comfy_sampling
import pass_counter
import tiny_models
from comfy_node_cases import CACHE, CALIBRATE
from comfy_prompt import run_graph, sampler_graph, sampler_sources

pytestmark = pytest.mark.comfy



def calibrate(pack, tiny, name: str, steps: int, cfg: float = 1.0, runs: int = 2):
    (patched,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name=name, **CALIBRATE)
    for seed in range(runs):
        comfy_sampling.sample(patched, steps=steps, cfg=cfg, seed=seed)
    return patched


def cache_node(name: str, **overrides) -> dict:
    return {"class_type": "L2PCache", "inputs": {"predictor_file": name, **CACHE, **overrides}}


@pytest.mark.parametrize("steps,cfg,expected", [
    (6, 1.0, "calibrated on a 8-step grid"),
    (8, 3.0, "calibrated without CFG"),
], ids=["step grid", "cfg"])
def test_a_file_that_does_not_fit_the_run_is_an_l2p_error_at_the_sampler(pack, l2p_dir, steps, cfg, expected):
    tiny = tiny_models.tiny_flux(seed=41)
    calibrate(pack, tiny, "fit.safetensors", steps=8)
    result = run_graph(sampler_graph(cache_node("fit.safetensors"), steps=steps, cfg=cfg), sampler_sources(tiny))
    error = result.error
    assert error is not None and not result.succeeded
    assert error["node_type"] == "KSampler"  # ComfyUI shows it where sampling failed ...
    assert error["exception_type"] == "l2p.PredictorFileError"  # ... as our type, not a path
    assert error["exception_message"].startswith("L2P Cache: ")  # ... and says which node refused
    assert expected in error["exception_message"]


def test_a_broken_file_is_an_l2p_error_at_the_cache_node(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=42)
    (l2p_dir / "broken.safetensors").write_bytes(b"\x80\x04 a pickle, not a predictor file")
    error = run_graph(sampler_graph(cache_node("broken.safetensors"), steps=6), sampler_sources(tiny)).error
    assert error["node_type"] == "L2PCache" and error["exception_type"] == "l2p.PredictorFileError"
    assert error["exception_message"].startswith("L2P Cache: predictor file ")
    assert "pickle" in error["exception_message"]


def test_a_file_name_outside_models_l2p_is_an_l2p_error_at_calibrate(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=43)
    node = {"class_type": "L2PCalibrate", "inputs": {"file_name": "../escape.safetensors", **CALIBRATE}}
    error = run_graph(sampler_graph(node, steps=4), sampler_sources(tiny)).error
    assert error["node_type"] == "L2PCalibrate" and error["exception_type"] == "l2p.NodeInputError"
    assert error["exception_message"].startswith("L2P Calibrate: file_name must be a relative name")


def test_nan_output_stops_calibration_at_that_step_and_leaves_the_file_untouched(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=44)
    calibrate(pack, tiny, "nan.safetensors", steps=8)  # an existing file with two good runs
    path = l2p_dir / "nan.safetensors"
    before = path.read_bytes()
    node = {"class_type": "L2PCalibrate", "inputs": {"file_name": "nan.safetensors", **CALIBRATE}}
    with pass_counter.nan_from_call(tiny, first_bad_call=3) as calls:
        error = run_graph(sampler_graph(node, steps=8), sampler_sources(tiny)).error
    assert error["node_type"] == "KSampler" and error["exception_type"] == "l2p.ModelOutputError"
    message = error["exception_message"]
    assert message.startswith("L2P Calibrate: the model's output at step 3 (of steps 0-7")
    assert "stream cond" in message and "left unchanged" in message
    assert len(calls) == 4  # stopped at the bad step, not at the end of the run
    assert path.read_bytes() == before
    assert not [n for n in os.listdir(l2p_dir) if n.endswith(".tmp")]  # no temporary file left behind


def test_nan_output_under_a_cache_keeps_the_run_going_without_forecasts(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=45)
    calibrate(pack, tiny, "cache-nan.safetensors", steps=10)
    (patched,) = comfy_host.run_node(pack.nodes["L2PCache"], model=tiny.patcher,
                                     predictor_file="cache-nan.safetensors", **CACHE)
    with pass_counter.nan_from_call(tiny, first_bad_call=3) as calls, pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=3)
    report = patched.model_options["transformer_options"]["l2p"].reports[-1]
    assert report.status == "finished" and torch.isnan(out).all()  # what the model gives without the cache
    planned = report.planned_computed  # even at 2.5x with warm-up 2: (0, 1, 5, 8)
    bad_step = planned[3]
    assert counter.forwards == len(calls) == 3 + (10 - bad_step)  # every step after the bad one computed
    assert any(f"step {bad_step} " in n and "NaN" in n for n in report.notes)
