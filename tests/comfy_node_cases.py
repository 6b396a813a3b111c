"""The pack's nodes in the real-ComfyUI tests: the inputs the tests share (Forecast Cache, L2P Calibrate, L2P Cache),
the schedule Forecast Cache's plan, each node run on a model through ComfyUI's executor (Forecast Cache also installed
at one hook), and the reports of a patched MODEL's runs."""
from __future__ import annotations

import comfy_host
import tiny_models

FORECAST = dict(method="TaylorSeer order 1", time_axis="step", speedup=2.5, placement="even", warmup_steps=2,
                compute_last_step=False, residual_budget=0.05, history_device="model device", spectrum_degree=4,
                spectrum_lambda=0.1, spectrum_blend=0.5)
PLANNED = [0, 1, 4, 7]  # 10 steps at speedup 2.5: K = 4, warm-up 0 and 1, then equal gaps
CALIBRATE = dict(ridge_lambda=1e-3, mode="teacher-forced", on_policy_speedup=2.5)
CACHE = dict(speedup=2.5, placement="even", warmup_steps=2, compute_last_step=False, residual_budget=0.05,
             history_device="model device", predictor="direct", step_grid_mismatch="refuse")


def glue(pack):
    return pack.module.nodes


def forecast_cache(pack, model, hook: str | None = None, **overrides):
    """Forecast Cache on ``model``: through the node (every hook that reaches the model, one chosen per run), or
    installed at ``hook`` (a HookPoint name) only."""
    inputs = {**FORECAST, **overrides}
    patcher = tiny_models.as_tiny(model).patcher if isinstance(model, tiny_models.TinyModel) else model
    if hook is None:
        (patched,) = comfy_host.run_node(pack.nodes["L2PForecastCache"], model=patcher, **inputs)
        return patched
    holder = glue(pack).setups.forecast_cache_holder(
        method=inputs["method"], time_axis=inputs["time_axis"], speedup=inputs["speedup"],
        placement=inputs["placement"], warmup=inputs["warmup_steps"], compute_last=inputs["compute_last_step"],
        residual_budget=inputs["residual_budget"], history_device=inputs["history_device"],
        spectrum_degree=inputs["spectrum_degree"], spectrum_lambda=inputs["spectrum_lambda"],
        spectrum_blend=inputs["spectrum_blend"],
    )
    return glue(pack).cache_nodes.install(patcher, holder, hooks=(glue(pack).hook_points.HookPoint[hook],))


def calibrate(pack, model, name="cal.safetensors", **overrides):
    """L2P Calibrate on ``model`` (a TinyModel or a ModelPatcher) into ``name``, CALIBRATE's inputs unless given."""
    (patched,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny_models.as_tiny(model).patcher,
                                     file_name=name, **{**CALIBRATE, **overrides})
    return patched


def l2p_cache(pack, model, name="cal.safetensors", **overrides):
    """L2P Cache on ``model`` from the file ``name``, CACHE's inputs unless given."""
    (patched,) = comfy_host.run_node(pack.nodes["L2PCache"], model=tiny_models.as_tiny(model).patcher,
                                     predictor_file=name, **{**CACHE, **overrides})
    return patched


def reports(patched):
    """The reports of a patched MODEL's runs, oldest first."""
    return patched.model_options["transformer_options"]["l2p"].reports


def last_report(patched):
    return reports(patched)[-1]
