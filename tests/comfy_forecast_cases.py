"""Forecast Cache in the real-ComfyUI tests (test_comfy_forecast_cache.py, test_comfy_runtime.py, test_comfy_hooks.py,
test_comfy_compile.py): the inputs they share, the schedule those plan, the node (or one hook) on a model, and the
run's report."""
from __future__ import annotations

import comfy_host
import tiny_models

DEFAULTS = dict(method="TaylorSeer order 1", time_axis="step", speedup=2.5, placement="even", warmup_steps=2,
                compute_last_step=False, residual_budget=0.05, history_device="model device", spectrum_degree=4,
                spectrum_lambda=0.1, spectrum_blend=0.5)
PLANNED = [0, 1, 4, 7]  # 10 steps at speedup 2.5: K = 4, warm-up 0 and 1, then equal gaps


def glue(pack):
    return pack.module.nodes


def forecast_cache(pack, model, hook: str | None = None, **overrides):
    """Forecast Cache on ``model``: through the node (every hook that reaches the model, one chosen per run), or
    installed at ``hook`` (a HookPoint name) only."""
    inputs = {**DEFAULTS, **overrides}
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


def last_report(patched):
    return patched.model_options["transformer_options"]["l2p"].reports[-1]
