"""Where L2P hooks, inside real ComfyUI sampling on tiny models built from ComfyUI's own classes: models that reach
it only through APPLY_MODEL (SD3, PixArt, a Nunchaku-like replacement of diffusion_model), the LTX models
(transformer_options sixth of seven arguments; LTX-2's list latents, where the host has it), the two hooks against
each other, what other packs' wrappers see, and the runs and models no hook reaches (torch.compile:
test_comfy_compile.py; shared helpers: comfy_node_cases.py).
Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import os

import pytest
import torch

import comfy_host
import comfy_sampling
import hook_models
import pass_counter
import tiny_models
from comfy_node_cases import PLANNED, forecast_cache, glue, last_report
from script_modules import load_script
from tiny_specs import HookModel

pytestmark = pytest.mark.comfy


def wrapper_types(patched) -> set[str]:
    """The wrapper types our key is registered for on a patched model."""
    key = "comfyui_l2p"
    return {t for t, entries in patched.wrappers.items() if key in entries}


def sample(model, tiny, **kwargs):
    latent = hook_models.hook_model_latent(tiny) if tiny.family in HookModel else None
    return comfy_sampling.sample(model, latent=latent, **kwargs)


def equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(hook_models.latent_parts(a), hook_models.latent_parts(b), strict=True))


# ------------------------------------------------------------------ models reached through APPLY_MODEL, LTX


def build(kind: str, seed: int) -> tiny_models.TinyModel:
    if kind == "nunchaku-like FLUX":
        return hook_models.nunchaku_like_flux(seed=seed)
    model = HookModel[kind]
    if not hook_models.host_has(model):
        pytest.skip(f"ComfyUI {comfy_host.comfyui_version(comfy_host.comfyui_path())} has no {model.value}")
    return hook_models.tiny_hook_model(model, seed=seed)


# the hook each model's runs take by default: APPLY_MODEL where the transformer never calls DIFFUSION_MODEL
KINDS = {"SD3": "apply_model", "PIXART": "apply_model", "nunchaku-like FLUX": "apply_model",
         "LTXV": "diffusion_model", "LTXAV": "diffusion_model"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_real_passes_equal_the_schedule_under_cfg(pack, kind):
    tiny = build(kind, seed=1)
    patched = forecast_cache(pack, tiny)
    with pass_counter.count_passes(tiny) as counter:
        out = sample(patched, tiny, steps=10, cfg=3.0, seed=3)
    report = last_report(patched)
    assert report.status == "finished" and report.reached_hook and report.notes == []
    assert report.hook.split()[0] == KINDS[kind]
    assert counter.dm_calls == 10 and counter.forwards == 4  # cond and uncond in one call per step
    assert report.streams["cond"].computed == report.streams["uncond"].computed == PLANNED
    assert all(torch.isfinite(part).all() for part in hook_models.latent_parts(out))


@pytest.mark.parametrize("kind", list(KINDS))
def test_speedup_one_is_bit_identical(pack, kind):
    tiny = build(kind, seed=2)
    ref = sample(tiny.patcher, tiny, steps=6, cfg=1.0, seed=5)
    out = sample(forecast_cache(pack, tiny, speedup=1.0), tiny, steps=6, cfg=1.0, seed=5)
    assert equal(ref, out)


@pytest.mark.parametrize("hook", ["APPLY_MODEL", "DIFFUSION_MODEL"])
def test_ltx2_forecasts_each_part_of_the_list_from_its_own_history(pack, hook):
    """TaylorSeer order 1 on the step axis with steps 0 and 1 computed: step 2's output is 2 F1 - F0, for the
    video and the audio part alike, and ComfyUI packs it like a computed output."""
    import comfy.utils

    tiny = build("LTXAV", seed=3)
    raw, seen = [], []

    def record_raw(executor, *args, **kwargs):  # DIFFUSION_MODEL, outside ours: the list the transformer returns
        out = executor(*args, **kwargs)
        raw.append([part.clone() for part in out])
        return out

    def record_apply(executor, *args, **kwargs):  # APPLY_MODEL, outside ours: packed x, sigma, denoised
        denoised = executor(*args, **kwargs)
        seen.append((args[0], args[1], denoised))
        return denoised

    patched = forecast_cache(pack, tiny, hook=hook, speedup=3.0).clone()  # 6 steps, K = 2: steps 0 and 1 computed
    patched.add_wrapper_with_key("diffusion_model", "test.raw", record_raw)
    patched.add_wrapper_with_key("apply_model", "test.apply", record_apply)
    sample(patched, tiny, steps=6, cfg=1.0, seed=4)
    assert last_report(patched).streams["cond"].computed == [0, 1] and len(seen) == 6
    expected = [2 * f1 - f0 for f0, f1 in zip(raw[0], raw[1])]
    if hook == "DIFFUSION_MODEL":  # wrappers outside ours see the forecast list itself
        assert len(raw) == 6
        for got, want in zip(raw[2], expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    else:  # the transformer's wrappers ran on computed steps only; apply_model's output carries the forecast
        assert len(raw) == 2
    x, sigma, denoised = seen[2]
    velocity = (x - denoised) / sigma.reshape(-1, 1, 1)  # flow models: denoised = x - sigma * v
    torch.testing.assert_close(velocity, comfy.utils.pack_latents(expected)[0], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- the two hooks against each other


BOTH_HOOKS = {
    "FLUX": lambda seed: tiny_models.tiny_flux(seed=seed),
    "Qwen-Image": lambda seed: tiny_models.tiny_qwen_image(seed=seed),
    "HunyuanVideo": lambda seed: tiny_models.tiny_hunyuan_video(seed=seed),
    "LTXV": lambda seed: build("LTXV", seed),
    "LTX-2": lambda seed: build("LTXAV", seed),
}


@pytest.mark.parametrize("name", list(BOTH_HOOKS))
def test_both_hooks_forecast_the_same(pack, name):
    tiny = BOTH_HOOKS[name](11)
    results = {}
    for hook in ("APPLY_MODEL", "DIFFUSION_MODEL"):
        patched = forecast_cache(pack, tiny, hook=hook)
        assert wrapper_types(patched) == {"outer_sample", hook.lower()}
        with pass_counter.count_passes(tiny) as counter:
            out = sample(patched, tiny, steps=10, cfg=3.0, seed=6)
        report = last_report(patched)
        results[hook] = (out, counter.forwards, report.streams["cond"].residuals, report.streams["uncond"].forecast)
    (a, fa, ra, sa), (d, fd, rd, sd) = results["APPLY_MODEL"], results["DIFFUSION_MODEL"]
    assert fa == fd == 4 and sa == sd and ra.keys() == rd.keys() and len(ra) > 0
    assert equal(a, d)  # the same tensor forecast from the same history: bit for bit
    assert all(ra[s] == rd[s] for s in ra)


def test_sd3_under_the_diffusion_model_hook_is_reported_as_never_reached(pack):
    """What SD3 was before this hook: accepted, never reaching the wrapper; now it says so instead of nothing."""
    tiny = build("SD3", seed=12)
    patched = forecast_cache(pack, tiny, hook="DIFFUSION_MODEL")
    with pass_counter.count_passes(tiny) as counter:
        out = sample(patched, tiny, steps=6, cfg=1.0, seed=1)
    report = last_report(patched)
    assert counter.forwards == 6 and not report.reached_hook
    assert report.notes == [glue(pack).report.NOT_REACHED]
    assert equal(out, sample(tiny.patcher, tiny, steps=6, cfg=1.0, seed=1))


# -------------------------------------------------------------------------- what other packs' wrappers see


@pytest.mark.parametrize("others_first", [True, False], ids=["others-applied-first", "others-applied-after"])
@pytest.mark.parametrize("hook, inside", [(None, 10), ("APPLY_MODEL", 4)], ids=["default-hook", "apply-model-hook"])
def test_what_other_packs_wrappers_see(pack, others_first, hook, inside):
    """Their APPLY_MODEL wrappers see every step; their DIFFUSION_MODEL wrappers every call under the default
    DIFFUSION_MODEL hook (tests/test_comfy_runtime.py pins its order), computed steps only under APPLY_MODEL."""
    tiny = tiny_models.tiny_flux(seed=13)
    seen = {"apply_model": 0, "diffusion_model": 0}

    def counting(kind):
        def wrapper(executor, *args, **kwargs):
            seen[kind] += 1
            return executor(*args, **kwargs)
        return wrapper

    def add_others(model):
        model = model.clone()
        for kind in seen:
            model.add_wrapper_with_key(kind, f"other.{kind}", counting(kind))
        return model

    if others_first:
        patched = forecast_cache(pack, add_others(tiny.patcher), hook=hook)
    else:
        patched = add_others(forecast_cache(pack, tiny, hook=hook))
    comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=2)
    assert seen == {"apply_model": 10, "diffusion_model": inside}


def test_a_wrapper_that_bypasses_apply_model_leaves_the_run_reported_as_never_reached(pack):
    tiny = hook_models.nunchaku_like_flux(seed=14)  # reached through APPLY_MODEL only

    def bypass(executor, *args, **kwargs):  # runs _apply_model itself, skipping the wrappers after it
        return executor.class_obj._apply_model(*args, **kwargs)

    patched = forecast_cache(pack, tiny).clone()
    patched.add_wrapper_with_key("apply_model", "other.bypass", bypass)
    with pass_counter.count_passes(tiny) as counter:
        comfy_sampling.sample(patched, steps=5, cfg=1.0, seed=2)
    report = last_report(patched)
    assert counter.forwards == 5 and report.status == "finished" and not report.reached_hook
    assert glue(pack).report.NOT_REACHED in report.summary()


# ---------------------------------------------------------------------------------------- graph time


def test_a_model_no_hook_reaches_is_refused_at_graph_time_naming_it(pack):
    tiny = hook_models.nunchaku_like_flux(seed=15)
    base = tiny.patcher.model

    class WithoutWrappers(type(base)):  # a third-party BaseModel whose apply_model skips ComfyUI's wrappers
        def apply_model(self, x, t, **kwargs):
            return self._apply_model(x, t, **kwargs)

    base.__class__ = WithoutWrappers
    with pytest.raises(Exception, match=r"cannot drive the model WithoutWrappers \(diffusion model \S*NunchakuLikeFlux\)"
                                        r".*every model ComfyUI samples through its BaseModel.apply_model"):
        forecast_cache(pack, tiny)


# ----------------------------------------------------------------------- calibration with list outputs


@pytest.mark.parametrize("kind", ["LTXV", "LTXAV", "SD3"])
def test_calibrate_then_cache_end_to_end(pack, l2p_dir, kind):
    tiny = build(kind, seed=17)
    (cal,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name="cal.safetensors",
                                 ridge_lambda=1e-3, mode="teacher-forced", on_policy_speedup=2.5)
    for seed in range(2):
        sample(cal, tiny, steps=8, cfg=1.0, seed=seed)
    pf = pack.module.predictors.load_predictor_file(os.path.join(l2p_dir, "cal.safetensors"))
    assert pf.sample_count == 2 and pf.steps == 8
    # SD3's transformer subclasses a class named MMDiT like AuraFlow's: it is its own family
    assert pf.model_family == {"LTXV": "ltxv", "LTXAV": "ltx2", "SD3": "sd3"}[kind]
    (cached,) = comfy_host.run_node(
        pack.nodes["L2PCache"], model=tiny.patcher, predictor_file="cal.safetensors", speedup=2.5,
        placement="optimized", warmup_steps=2, compute_last_step=False, residual_budget=0.05,
        history_device="model device", predictor="direct", step_grid_mismatch="refuse")
    with pass_counter.count_passes(tiny) as counter:
        out = sample(cached, tiny, steps=8, cfg=1.0, seed=5)
    assert counter.forwards == 3 == len(last_report(cached).planned_computed)
    assert all(torch.isfinite(part).all() for part in hook_models.latent_parts(out))


# ----------------------------------------------------------------------------------------- the cost script


def test_hook_cost_script_measures_every_variant(comfy, capsys):
    hook_cost = load_script("hook_cost")
    assert hook_cost.main(["--steps", "10", "--repeats", "1", "--sizes", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith(("| tiny", "| null"))]
    assert len(rows) == 2 * 5
    calls = {(row[0].strip("| "), row[1]): row[2] for row in rows}
    for model in ("tiny FLUX 8x8", "null transformer 8x8"):
        assert calls[(model, "no L2P")] == "10 / 0"
        for hook in ("APPLY_MODEL", "DIFFUSION_MODEL"):
            assert calls[(model, f"{hook} hook, speedup 1")] == "10 / 0"
            assert calls[(model, f"{hook} hook, speedup 5")] == "2 / 8"
