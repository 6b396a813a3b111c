"""The Wan 2.2 14B example workflows (two experts, two KSamplerAdvanced): run on tiny Wan models with the workflows'
own settings, the calibration workflow writing both files the cache workflow loads. The checks every workflow gets
(structure, widget values, notes, served by ComfyUI, no drift) are in test_workflows.py."""
from __future__ import annotations

import contextlib

import pytest
import torch

import comfy_families
import pass_counter
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_cases import registry  # noqa: F401  (the fixture)
from workflow_graph import FOLDER, Graph, load, make_workflows

pytestmark = pytest.mark.comfy

EXPERT_SEED = {"wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": 0,  # tiny stand-ins: same config, other weights
               "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": 1}


@pytest.fixture(scope="module")
def experts(comfy):
    spec = comfy_families.spec("wan2.1-t2v")
    models = {name: comfy_families.build(spec, seed=seed) for name, seed in EXPERT_SEED.items()}
    yield models
    models.clear()


def graph_of(kind: str, registry) -> Graph:
    return Graph(load(FOLDER / f"{make_workflows.workflow_catalog.file_stem('wan2.2-14b-t2v-l2p-' + kind)}.json"),
                 registry)


def samplers(graph: Graph) -> list[dict]:
    """The two KSamplerAdvanced, in the order the latent flows through them."""
    nodes = graph.of_type("KSamplerAdvanced")
    first = next(n for n in nodes if graph.source(n, "latent_image")["type"] != "KSamplerAdvanced")
    return [first, next(n for n in nodes if n is not first)]


def run_graph(graph: Graph, experts, seed: int) -> tuple[torch.Tensor, list]:
    """Both experts' model chains applied with the workflow's widgets, then both samplers as the graph runs them;
    returns the final latent and, per sampler, (its tiny model, its patched MODEL)."""
    latent, used = None, []
    for sampler in samplers(graph):
        w = graph.widgets(sampler)
        model_file, chain = graph.model_chain(graph.source(sampler, "model"))
        tiny = experts[model_file]
        patched = graph.apply_chain(chain, tiny.patcher)
        latent = comfy_families.sample_advanced(
            tiny, patched=patched, steps=w["steps"], cfg=w["cfg"], seed=seed, start=w["start_at_step"],
            end=w["end_at_step"], add_noise=w["add_noise"] == "enable",
            return_with_leftover_noise=w["return_with_leftover_noise"] == "enable", latent=latent,
            sampler_name=w["sampler_name"], scheduler=w["scheduler"])
        used.append((tiny, patched))
    return latent, used


def test_the_pair_shares_one_setting_and_names_each_experts_file(registry):
    cache, calibrate = graph_of("cache", registry), graph_of("calibrate", registry)
    for cached, calibrated in zip(samplers(cache), samplers(calibrate)):
        settings = {k: v for k, v in cache.widgets(cached).items() if k != "noise_seed"}
        assert settings == {k: v for k, v in calibrate.widgets(calibrated).items() if k != "noise_seed"}
        cache_file, cache_chain = cache.model_chain(cache.source(cached, "model"))
        calibrate_file, calibrate_chain = calibrate.model_chain(calibrate.source(calibrated, "model"))
        assert cache_file == calibrate_file and [n["type"] for n in cache_chain][-1] == "L2PCache"
        assert cache.widgets(cache_chain[-1])["predictor_file"] == calibrate.widgets(calibrate_chain[-1])["file_name"]
    high, low = (cache.widgets(n) for n in samplers(cache))
    assert (high["start_at_step"], high["end_at_step"], low["start_at_step"]) == (0, 10, 10)
    assert high["return_with_leftover_noise"] == "enable" and low["add_noise"] == "disable"


def test_calibrate_then_cache_both_experts_with_the_workflows_settings(registry, experts, l2p_dir):
    calibrate, cache = graph_of("calibrate", registry), graph_of("cache", registry)
    for seed in (11, 12):
        run_graph(calibrate, experts, seed)
    files = [calibrate.widgets(calibrate.model_chain(calibrate.source(s, "model"))[1][-1])["file_name"]
             for s in samplers(calibrate)]
    assert len(set(files)) == 2 and all((l2p_dir / name).is_file() for name in files)

    with contextlib.ExitStack() as stack:
        counts = {name: stack.enter_context(pass_counter.count_passes(tiny)) for name, tiny in experts.items()}
        out, used = run_graph(cache, experts, 3)
    assert torch.isfinite(out).all()
    for sampler, (tiny, patched) in zip(samplers(cache), used):
        w = cache.widgets(sampler)
        steps = min(w["end_at_step"], w["steps"]) - w["start_at_step"]
        speedup = cache.widgets(cache.model_chain(cache.source(sampler, "model"))[1][-1])["speedup"]
        report = comfy_families.reports(patched)[-1]
        count = counts[next(name for name, model in experts.items() if model is tiny)]
        assert report.status == "finished" and report.num_steps == steps
        assert count.forwards == len(report.planned_computed) == computed_count(steps, speedup)
        assert set(report.streams) == {"cond", "uncond"}  # cfg 3.5: cond and uncond, one call per step
