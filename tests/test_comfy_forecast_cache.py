"""Forecast Cache inside real ComfyUI sampling, on tiny FLUX, Qwen-Image and HunyuanVideo built from ComfyUI's
own classes. Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import comfy_host
import comfy_sampling
import pass_counter
import tiny_models
from comfy_node_cases import forecast_cache, last_report
from tiny_specs import Family

pytestmark = pytest.mark.comfy


def test_pack_registers_three_nodes_with_permanent_ids(pack):
    assert {"L2PCache", "L2PCalibrate", "L2PForecastCache"} <= set(pack.nodes)


@pytest.mark.parametrize("family", list(Family))
def test_real_passes_equal_the_schedule(pack, family):
    tiny = tiny_models.tiny_model(family, seed=1)
    patched = forecast_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=3)
    report = last_report(patched)
    assert report.status == "finished"
    assert report.planned_computed == (0, 1, 4, 7)  # K = 10 / 2.5 = 4: warm-up 0, 1, then equal gaps
    assert counter.forwards == 4 and counter.dm_calls == 10
    assert report.computed_steps == [0, 1, 4, 7]
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("family", list(Family))
def test_speedup_one_is_bit_identical(pack, family):
    tiny = tiny_models.tiny_model(family, seed=2)
    ref = comfy_sampling.sample(tiny, steps=6, cfg=1.0, seed=5)
    out = comfy_sampling.sample(forecast_cache(pack, tiny, speedup=1.0), steps=6, cfg=1.0, seed=5)
    assert torch.equal(ref, out)


def test_loading_the_pack_changes_nothing_for_unpatched_models(comfy):
    # A fresh interpreter: sample, load the pack the way ComfyUI does, sample again, compare bit for bit.
    code = textwrap.dedent("""
        import sys, torch
        sys.path.insert(0, sys.argv[1])
        import comfy_host, comfy_sampling, tiny_models
        tiny = tiny_models.tiny_flux(seed=4)
        before = comfy_sampling.sample(tiny, steps=5, cfg=3.0, seed=9)
        comfy_host.load_pack_in_comfyui()
        after = comfy_sampling.sample(tiny, steps=5, cfg=3.0, seed=9)
        print("IDENTICAL" if torch.equal(before, after) else "DIFFERENT")
    """)
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(comfy_host.__file__)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "IDENTICAL"


@pytest.mark.parametrize("negative_text_len", [None, 7], ids=["one-call", "two-calls"])
def test_cfg_cond_and_uncond_follow_one_schedule(pack, negative_text_len):
    tiny = tiny_models.tiny_qwen_image(seed=3)
    patched = forecast_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(patched, steps=10, cfg=3.0, seed=1, negative_text_len=negative_text_len)
    report = last_report(patched)
    calls_per_step = 1 if negative_text_len is None else 2
    assert counter.forwards == 4 * calls_per_step
    assert set(report.streams) == {"cond", "uncond"}
    assert report.streams["cond"].computed == report.streams["uncond"].computed == [0, 1, 4, 7]
    assert torch.isfinite(out).all()


def test_batch_rows_are_forecast_independently(pack):
    tiny = tiny_models.tiny_flux(seed=5)
    patched = forecast_cache(pack, tiny, speedup=1.0)
    full = comfy_sampling.sample(patched, steps=8, cfg=1.0, seed=2, batch=3)
    cached = comfy_sampling.sample(forecast_cache(pack, tiny), steps=8, cfg=1.0, seed=2, batch=3)
    singles = [comfy_sampling.sample(forecast_cache(pack, tiny), steps=8, cfg=1.0, seed=2, batch=3)[i] for i in (0,)]
    assert cached.shape == full.shape and torch.isfinite(cached).all()
    torch.testing.assert_close(singles[0], cached[0])  # deterministic across runs
    assert not torch.equal(cached[0], cached[1])  # rows are not collapsed onto one history


def test_second_sampler_with_partial_denoise_gets_its_own_run(pack):
    tiny = tiny_models.tiny_flux(seed=6)
    patched = forecast_cache(pack, tiny)
    first = comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=1)
    second = comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=1, latent=first, denoise=0.5)
    reports = patched.model_options["transformer_options"]["l2p"].reports
    assert [r.status for r in reports[-2:]] == ["finished", "finished"]
    assert reports[-1].num_steps == 10 and reports[-1].computed_steps[:2] == [0, 1]
    assert torch.isfinite(second).all()


def test_cancelled_run_then_a_new_run_matches_a_clean_run(pack, comfy):
    tiny = tiny_models.tiny_flux(seed=7)
    patched = forecast_cache(pack, tiny)
    clean = comfy_sampling.sample(patched, steps=8, cfg=1.0, seed=4)
    cancelling = comfy_sampling.cancelled_at_call(patched, 3)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        comfy_sampling.sample(cancelling, steps=8, cfg=1.0, seed=4)
    assert last_report(cancelling).status.startswith("failed")
    again = comfy_sampling.sample(patched, steps=8, cfg=1.0, seed=4)
    assert torch.equal(clean, again)


def test_resolution_change_between_runs(pack):
    tiny = tiny_models.tiny_flux(seed=8)
    patched = forecast_cache(pack, tiny)
    small = comfy_sampling.sample(patched, steps=6, cfg=1.0, seed=1, latent_shape=(1, 16, 8, 8))
    large = comfy_sampling.sample(patched, steps=6, cfg=1.0, seed=1, latent_shape=(1, 16, 12, 16))
    assert small.shape[-2:] == (8, 8) and large.shape[-2:] == (12, 16)
    assert torch.isfinite(large).all()


def test_heun_repeats_are_computed_and_reported(pack):
    tiny = tiny_models.tiny_flux(seed=9)
    patched = forecast_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(patched, steps=8, cfg=1.0, seed=1, sampler_name="heun")
    report = last_report(patched)
    reasons = {reason for _, _, reason in report.forced}
    assert any("multi-evaluation" in r for r in reasons)
    assert counter.forwards < counter.dm_calls  # some evaluations were still forecast
    assert torch.isfinite(out).all()


def test_dpmpp_2m_follows_the_schedule(pack):
    tiny = tiny_models.tiny_flux(seed=10)
    patched = forecast_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=1, sampler_name="dpmpp_2m")
    assert counter.forwards == 4 and not last_report(patched).forced[2:]


def test_lora_patched_model(pack, comfy):
    tiny = tiny_models.tiny_flux(seed=11)
    lora = tiny.patcher.clone()
    sd = lora.model.diffusion_model.state_dict()
    key = next(k for k in sd if k.endswith("img_in.weight"))
    lora.add_patches({f"diffusion_model.{key}": (0.1 * torch.randn_like(sd[key]),)}, strength_patch=1.0)
    plain = comfy_sampling.sample(forecast_cache(pack, tiny, speedup=1.0), steps=6, cfg=1.0, seed=1)
    patched = forecast_cache(pack, lora, speedup=1.0)
    with_lora = comfy_sampling.sample(patched, steps=6, cfg=1.0, seed=1)
    assert not torch.equal(plain, with_lora)  # the LoRA patch is active under our node
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(forecast_cache(pack, lora), steps=10, cfg=1.0, seed=1)
    assert counter.forwards == 4


def test_applying_twice_replaces_and_input_is_not_mutated(pack, comfy):
    tiny = tiny_models.tiny_flux(seed=12)
    before_options = repr(sorted(tiny.patcher.model_options.get("transformer_options", {}).keys()))
    before_wrappers = {k: {kk: list(vv) for kk, vv in v.items()} for k, v in tiny.patcher.wrappers.items()}
    once = forecast_cache(pack, tiny, speedup=5.0)
    twice = forecast_cache(pack, once, speedup=2.5)
    assert repr(sorted(tiny.patcher.model_options.get("transformer_options", {}).keys())) == before_options
    assert {k: {kk: list(vv) for kk, vv in v.items()} for k, v in tiny.patcher.wrappers.items()} == before_wrappers
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(twice, steps=10, cfg=1.0, seed=1)
    assert counter.forwards == 4  # the second install's schedule, applied once
    dm_wrappers = twice.wrappers[comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL]
    assert sum(len(v) for v in dm_wrappers.values()) == 1


def test_other_packs_wrappers_keep_working(pack, comfy):
    tiny = tiny_models.tiny_flux(seed=13)
    other = tiny.patcher.clone()
    seen = []

    def other_pack(executor, *args, **kwargs):
        seen.append(1)
        return executor(*args, **kwargs)

    other.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "other-pack", other_pack)
    patched = forecast_cache(pack, other)
    comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=1)
    assert len(seen) in (4, 10)  # runs on computed steps (inside ours) or every call (outside ours)


def test_history_on_cpu_gives_the_same_result(pack):
    tiny = tiny_models.tiny_hunyuan_video(seed=14)
    shape = tiny.latent_shape(1, frames=3)
    a = comfy_sampling.sample(forecast_cache(pack, tiny), steps=8, cfg=1.0, seed=1, latent_shape=shape)
    b = comfy_sampling.sample(forecast_cache(pack, tiny, history_device="cpu"), steps=8, cfg=1.0, seed=1,
                              latent_shape=shape)
    assert a.ndim == 5 and torch.equal(a, b)


@pytest.mark.parametrize("method", ["FORA (reuse)", "TaylorSeer order 2", "Spectrum", "FoCa"])
def test_every_method_and_placement_runs(pack, method):
    tiny = tiny_models.tiny_flux(seed=15)
    for placement in ("even", "progressive", "adaptive"):
        patched = forecast_cache(pack, tiny, method=method, placement=placement, time_axis="sigma")
        out = comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=1)
        assert torch.isfinite(out).all() and last_report(patched).status == "finished"
