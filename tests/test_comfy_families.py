"""Every family ComfyUI drives through DIFFUSION_MODEL, in real ComfyUI sampling on a tiny model of its own classes
(tests/comfy_families.py), on whichever host COMFYUI_PATH names; a family the host does not have is skipped with the
host named. Per family: the family table names it exactly; real passes equal the schedule (no CFG, and CFG with
cond and uncond in one call); speedup 1 is bit-identical; L2P Calibrate then L2P Cache run end to end."""
from __future__ import annotations

import os

import pytest
import torch

import comfy_families
import pass_counter
from comfy_families import SPECS, apply_node, reports

pytestmark = pytest.mark.comfy

STEPS = 12
SPEEDUP = 4.0  # the setting: Forecast Cache with its defaults at speedup 4


@pytest.fixture(scope="module")
def built(comfy):
    """One model per family for this module: the nodes clone it and sampling never mutates it. Released at the
    module's end (a ModelPatcher left to interpreter shutdown logs errors from its __del__)."""
    models: dict[str, comfy_families.FamilyModel] = {}
    yield models
    models.clear()


@pytest.fixture(params=SPECS, ids=[s.key for s in SPECS])
def tiny(request, built):
    spec = request.param
    reason = comfy_families.host_has(spec)
    if reason is not None:
        pytest.skip(reason)
    if spec.key not in built:
        built[spec.key] = comfy_families.build(spec, seed=0)
    return built[spec.key]


def test_the_family_table_names_the_model_exactly(tiny):
    from comfyui_l2p.nodes.architectures import FAMILIES, family_of, model_config_of, qualified_name

    assert family_of(tiny.diffusion_model, model_config_of(tiny.patcher)) == tiny.spec.family
    table = next(f for f in FAMILIES if f.name == tiny.spec.family)
    assert (table.config, table.model_class) == (type(tiny.patcher.model.model_config).__name__,
                                                  qualified_name(type(tiny.diffusion_model)))


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_forecast_cache_real_passes_equal_the_schedule(pack, tiny, cfg):
    patched = apply_node(pack.nodes["L2PForecastCache"], tiny, speedup=SPEEDUP)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_families.sample(tiny, patched=patched, steps=STEPS, cfg=cfg, seed=3)
    report = reports(patched)[-1]
    planned = report.planned_computed
    assert report.status == "finished" and len(planned) == round(STEPS / SPEEDUP) and planned[:2] == (0, 1)
    assert counter.dm_calls == STEPS and counter.forwards == len(planned)  # cfg 3: cond and uncond in one call
    assert report.computed_steps == list(planned)
    assert set(report.streams) == ({"cond"} if cfg == 1.0 else {"cond", "uncond"})
    assert torch.isfinite(out).all() and out.shape == tiny.latent_shape()


def test_speedup_one_is_bit_identical(pack, tiny):
    full = comfy_families.sample(tiny, steps=6, cfg=2.0, seed=5)
    patched = apply_node(pack.nodes["L2PForecastCache"], tiny, speedup=1.0)
    assert torch.equal(full, comfy_families.sample(tiny, patched=patched, steps=6, cfg=2.0, seed=5))


def test_calibrate_then_l2p_cache_end_to_end(pack, tiny, l2p_dir):
    name = f"{tiny.spec.key}.safetensors"
    calibrating = apply_node(pack.nodes["L2PCalibrate"], tiny, file_name=name)
    for seed in range(2):
        comfy_families.sample(tiny, patched=calibrating, steps=STEPS, cfg=1.0, seed=seed)
    pf = pack.module.predictors.load_predictor_file(os.path.join(l2p_dir, name))
    assert (pf.model_family, pf.sample_count, pf.steps) == (tiny.spec.family, 2, STEPS)

    cached = apply_node(pack.nodes["L2PCache"], tiny, predictor_file=name, speedup=SPEEDUP)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_families.sample(tiny, patched=cached, steps=STEPS, cfg=1.0, seed=9)
    report = reports(cached)[-1]
    assert report.status == "finished" and report.predictor.startswith("L2P direct")
    assert counter.forwards == len(report.planned_computed) == round(STEPS / SPEEDUP)
    assert torch.isfinite(out).all()


def test_every_table_family_the_host_has_is_a_driven_class(comfy):
    """The table's classes exist where the host has the config, and each calls the DIFFUSION_MODEL wrapper."""
    import importlib

    from comfyui_l2p.nodes.architectures import FAMILIES, calls_diffusion_model_wrapper

    present = [f for f in FAMILIES if getattr(comfy.supported_models, f.config, None) is not None]
    assert len(present) >= 30
    for family in present:
        module, _, name = family.model_class.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert calls_diffusion_model_wrapper(cls), family


@pytest.mark.parametrize("steps, computed, note", [(4, 2, "computed the 2 guard steps"), (2, 2, "computed every step")])
def test_a_few_step_model_never_fails_and_says_what_it_computed(pack, built, steps, computed, note):
    """FLUX.1-schnell's 4 steps (or fewer) at speedup 4: one computed step is fewer than the warm-up's two."""
    spec = comfy_families.spec("flux-schnell")
    if spec.key not in built:
        built[spec.key] = comfy_families.build(spec, seed=0)
    tiny = built[spec.key]
    patched = apply_node(pack.nodes["L2PForecastCache"], tiny, speedup=4.0)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_families.sample(tiny, patched=patched, steps=steps, cfg=1.0, seed=1)
    report = reports(patched)[-1]
    assert report.status == "finished" and counter.forwards == computed and torch.isfinite(out).all()
    assert any(note in line for line in report.notes), report.notes
