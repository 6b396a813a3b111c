"""The example workflows' own model chain, run: between the loader and the sampler (ModelSampling*, then the L2P
node) applied with the workflow's widget values to a tiny model of the workflow's family and sampled with the
workflow's steps, cfg, sampler, scheduler and guidance. L2P Cache first gets the predictor file its widget names,
written by the calibration workflow that names it or, where there is none, by L2P Calibrate in its place (as the
notes tell the user). Skipped, with the reason, when COMFYUI_PATH is unset."""
from __future__ import annotations

import os

import pytest
import torch

import comfy_families
import comfy_sampling
import pass_counter
import tiny_models
from tiny_specs import Family
from comfyui_l2p.nodes.learn_setup import AUTO_FILE, LEARNING_TRAJECTORIES
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_cases import CALIBRATION_SEEDS, FILE_FAMILY, TWO_SAMPLER, Run, by_name, registry, run_of  # noqa: F401
from workflow_graph import FILES, Graph, load

comfy_only = pytest.mark.comfy


# ------------------------------------------------------------------------------------- the graph, as run


def tiny_for(run: Run):
    if isinstance(run.family, Family):
        return tiny_models.tiny_model(run.family, seed=5)
    return comfy_families.build(comfy_families.spec(run.family), seed=5)


def sample(model, tiny, run: Run, seed: int) -> torch.Tensor:
    if isinstance(tiny, comfy_families.FamilyModel):
        assert run.denoise == 1.0 and run.guidance is None
        return comfy_families.sample(tiny, patched=model, steps=run.steps, cfg=run.cfg, seed=seed,
                                     sampler_name=run.sampler_name, scheduler=run.scheduler)
    positive = comfy_sampling.make_conditioning(tiny, seed=seed + 1, guidance=run.guidance)
    shape = tiny.latent_shape(1, frames=3) if tiny.family is Family.HUNYUAN_VIDEO else None
    return comfy_sampling.sample(model, steps=run.steps, cfg=run.cfg, seed=seed, sampler_name=run.sampler_name,
                             scheduler=run.scheduler, denoise=run.denoise, positive=positive, latent_shape=shape)


def our_node(graph: Graph, run: Run, pack) -> dict:
    ours = [n for n in run.chain if n["type"] in pack.nodes]
    assert len(ours) == 1 and ours[0] is run.chain[-1], "our node must be the last model patch before the sampler"
    return ours[0]


def writer_of(predictor_file: str, registry) -> Graph | None:
    """The calibration workflow whose L2P Calibrate writes ``predictor_file``, if one ships."""
    for path in FILES:
        graph = Graph(load(path), registry)
        if any(graph.widgets(n)["file_name"] == predictor_file for n in graph.of_type("L2PCalibrate")):
            return graph
    return None


@comfy_only
@by_name
def test_our_node_runs_on_a_tiny_model_with_the_workflows_settings(path, registry, pack, l2p_dir):
    graph = Graph(load(path), registry)
    if graph.of_type(TWO_SAMPLER):
        pytest.skip("two experts, two samplers: test_workflows_wan22.py runs this workflow")
    run = run_of(graph)
    ours = our_node(graph, run, pack)
    values = graph.widgets(ours)
    tiny = tiny_for(run)
    load_file = pack.module.predictors.load_predictor_file

    patched = graph.apply_chain(run.chain, tiny.patcher)
    if ours["type"] == "L2PCache" and values["predictor_file"] == AUTO_FILE:  # queued as the note says: it learns
        for seed in range(values.get("learning_images", LEARNING_TRAJECTORIES)):
            with pass_counter.count_passes(tiny) as counter:
                sample(patched, tiny, run, seed=10 + seed)
            assert counter.forwards == run.steps
        (learned,) = l2p_dir.glob("auto-*.safetensors")
        assert load_file(str(learned)).sample_count == values.get("learning_images", LEARNING_TRAJECTORIES)
    elif ours["type"] == "L2PCache":
        writer = writer_of(values["predictor_file"], registry)
        if writer is not None:  # the shipped calibration workflow, run as the user runs it
            writer_run = run_of(writer)
            assert writer_run.settings() == run.settings() and writer_run.family == run.family
            calibrating = writer.apply_chain(writer_run.chain, tiny.patcher)
        else:
            calibrating = graph.apply_chain(run.chain, tiny.patcher, replace_cache_by_calibrate=True)
        for seed in CALIBRATION_SEEDS:
            sample(calibrating, tiny, run, seed)
        assert (l2p_dir / values["predictor_file"]).is_file()

    with pass_counter.count_passes(tiny) as counter:
        out = sample(patched, tiny, run, seed=3)
    report = patched.model_options["transformer_options"]["l2p"].reports[-1]
    assert torch.isfinite(out).all() and report.status == "finished" and report.num_steps == run.steps
    rows = 2 if run.cfg != 1.0 else 1  # cfg 1 drops the uncond; otherwise cond and uncond share one call
    if ours["type"] == "L2PCalibrate":
        pf = load_file(os.path.join(l2p_dir, values["file_name"]))
        assert counter.forwards == run.steps and pf.steps == run.steps and pf.sample_count == 1
        assert pf.model_family == FILE_FAMILY[run.family]
    else:
        k = computed_count(run.steps, values["speedup"])
        assert len(report.planned_computed) == k == counter.forwards and counter.forward_rows == rows * k
        assert report.forecast_calls == run.steps - k
