"""The three nodes (V3 schema). Node ids are permanent: saved workflows store them.

Each node clones the model, removes any earlier L2P install (re-applying replaces, never stacks), stores an
``L2PHolder`` under one key of transformer_options and registers keyed wrappers (OUTER_SAMPLE for the run, and the
hooks that can skip the transformer of this model: hook_points.py) and the holder's clone callbacks
(``holder.CLONE_CALLBACKS``). All logic lives in ``setups.py``, ``run_state.py`` and the hook modules; this file
only declares inputs.
"""
from __future__ import annotations

import dataclasses

import comfy.patcher_extension
from comfy_api.latest import io

from . import calibrate_setup, files, l2p_setup, learn_setup, setups, tooltips
from .apply_model_hook import l2p_apply_model_wrapper
from .holder import CLONE_CALLBACKS
from .hook_points import WRAPPER_KEY, HookPoint, hook_points_for
from .host_check import require_host
from .node_errors import FORECAST_CACHE, L2P_CACHE, L2P_CALIBRATE, raised_by
from .run_state import HOLDER_KEY, L2PHolder, l2p_diffusion_model_wrapper, l2p_outer_sample_wrapper

CATEGORY = "model_patches/L2P"


HOOK_WRAPPERS = {  # hook point (its value is the WrappersMP type) -> our wrapper
    HookPoint.APPLY_MODEL: l2p_apply_model_wrapper,
    HookPoint.DIFFUSION_MODEL: l2p_diffusion_model_wrapper,
}


def install(model, holder: L2PHolder, hooks: tuple[HookPoint, ...] | None = None):
    """A patched clone of ``model``; the input patcher is never mutated. ``hooks``: the hook points to register
    (default: every one that reaches this model, hook_points.hook_points_for; each run keeps one)."""
    require_host(model)  # fail at graph time, naming ComfyUI's version, on a host without what the wrappers need
    if hooks is None:
        hooks = hook_points_for(model.model)  # fail at graph time, naming the model, when no hook reaches it
    WrappersMP = comfy.patcher_extension.WrappersMP  # read after the check: a host without it gets the clear error
    m = model.clone()
    for wrapper_type in (WrappersMP.OUTER_SAMPLE, *(point.value for point in HookPoint)):
        m.remove_wrappers_with_key(wrapper_type, WRAPPER_KEY)
    m.model_options.setdefault("transformer_options", {})[HOLDER_KEY] = holder
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, l2p_outer_sample_wrapper)
    for point in hooks:
        m.add_wrapper_with_key(point.value, WRAPPER_KEY, HOOK_WRAPPERS[point])
    for call_type, callback in CLONE_CALLBACKS.items():  # reports per clone; device replicas share the holder
        m.remove_callbacks_with_key(call_type, WRAPPER_KEY)
        m.add_callback_with_key(call_type, WRAPPER_KEY, callback)
    return m


def _progress_bar():
    """A (done, total) callback driving ComfyUI's progress bar on the running node, or None on a ComfyUI without
    ``comfy.utils.ProgressBar`` (feature-detected, so the node works either way)."""
    try:
        from comfy.utils import ProgressBar
    except ImportError:
        return None
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(total)
        bar.update_absolute(done, total)

    return update


def _training_device(model):
    """Where LESA trains: the model's CUDA device when it has one (seconds instead of a minute), else the CPU."""
    device = getattr(model, "load_device", None)
    return device if getattr(device, "type", None) == "cuda" else "cpu"


def _with_node_id(cls, holder: L2PHolder) -> L2PHolder:
    """The holder, told the id of the node that made it (the V3 hidden ``unique_id``), so every run's report is
    shown on that node in the UI; None when executed outside a prompt (the report then goes to the log only)."""
    return dataclasses.replace(holder, node_id=getattr(getattr(cls, "hidden", None), "unique_id", None))


def _schedule_inputs(default_placement: str, placements: list[str], default_warmup: int) -> list:
    return [
        io.Float.Input("speedup", default=5.0, min=1.0, max=25.0, step=0.01, tooltip=tooltips.SPEEDUP),
        io.Combo.Input("placement", options=placements, default=default_placement,
                       tooltip=tooltips.placement_tooltip(placements)),
        io.Int.Input("warmup_steps", default=default_warmup, min=1, max=20, tooltip=tooltips.WARMUP),
        io.Boolean.Input("compute_last_step", default=False, tooltip=tooltips.COMPUTE_LAST),
        io.Float.Input("residual_budget", default=setups.DEFAULT_RESIDUAL_BUDGET, min=0.001, max=1.0, step=0.001,
                       tooltip=tooltips.RESIDUAL_BUDGET),
        io.Combo.Input("history_device", options=setups.HISTORY_DEVICES, default=setups.HISTORY_DEVICES[0],
                       tooltip=tooltips.HISTORY_DEVICE),
    ]


class L2PCache(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="L2PCache",
            display_name=L2P_CACHE,
            category=CATEGORY,
            description="Skips most transformer passes and forecasts their output with a calibrated linear"
                        " predictor (L2P). Put it between the model loader (and LoRAs) and the sampler.",
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input("predictor_file", options=[learn_setup.AUTO_FILE, *files.list_predictor_files()],
                               default=learn_setup.AUTO_FILE,
                               tooltip=tooltips.PREDICTOR_FILE),
                *_schedule_inputs("optimized", setups.L2P_PLACEMENTS, setups.DEFAULT_L2P_WARMUP),
                io.Combo.Input("predictor", options=setups.L2P_MODES, default=setups.L2P_MODES[0],
                               tooltip=setups.L2P_MODE_TOOLTIP),
                io.Combo.Input("step_grid_mismatch", options=setups.GRID_POLICIES, default=setups.GRID_POLICIES[0],
                               tooltip=tooltips.GRID_MISMATCH),
                io.Combo.Input("other_model", options=setups.OTHER_MODEL_CHOICES,
                               default=setups.OTHER_MODEL_CHOICES[0], optional=True,  # API prompts made before it
                               tooltip=tooltips.OTHER_MODEL),
                io.Combo.Input("learning", options=learn_setup.LEARNING_CHOICES,
                               default=learn_setup.Learning.LEARN.value, optional=True,
                               tooltip=tooltips.LEARNING),
                io.Int.Input("learning_images", default=learn_setup.LEARNING_TRAJECTORIES, min=1, max=256,
                             optional=True,
                             tooltip=tooltips.LEARNING_IMAGES),
            ],
            outputs=[io.Model.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, predictor_file, speedup, placement, warmup_steps, compute_last_step, residual_budget,
                history_device, predictor, step_grid_mismatch, other_model=setups.OTHER_MODEL_CHOICES[0],
                learning=learn_setup.Learning.LEARN.value,
                learning_images=learn_setup.LEARNING_TRAJECTORIES) -> io.NodeOutput:
        with raised_by(L2P_CACHE):
            settings = dict(speedup=speedup, placement=placement, warmup=warmup_steps, compute_last=compute_last_step,
                            residual_budget=residual_budget, history_device=history_device, mode=predictor,
                            grid_policy=step_grid_mismatch, other_model=other_model)
            lesa = dict(lesa_progress=_progress_bar(), lesa_device=_training_device(model))
            if predictor_file == learn_setup.AUTO_FILE:
                policy = learn_setup.LearningPolicy(learn_setup.Learning(learning), int(learning_images))
                holder = learn_setup.learning_holder(files.learning_folder(), policy, settings, lesa)
            else:
                holder = l2p_setup.l2p_cache_holder(files.resolve_existing(predictor_file), **settings, **lesa)
            return io.NodeOutput(install(model, _with_node_id(cls, holder)))


class L2PForecastCache(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="L2PForecastCache",
            display_name="Forecast Cache (training-free)",
            category=CATEGORY,
            description="Training-free forecasting (FORA, TaylorSeer, Spectrum, FoCa) with the same schedule, guards"
                        " and report as L2P Cache, for models nobody has calibrated yet.",
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input("method", options=setups.FORECAST_METHODS,
                               default=tooltips.DEFAULT_FORECAST_METHOD.value, tooltip=tooltips.METHOD),
                io.Combo.Input("time_axis", options=setups.TIME_AXES, default=setups.TIME_AXES[0],
                               tooltip=tooltips.TIME_AXIS),
                *_schedule_inputs("even", setups.FORECAST_PLACEMENTS, setups.DEFAULT_WARMUP),
                io.Int.Input("spectrum_degree", default=4, min=1, max=8, tooltip=tooltips.SPECTRUM_DEGREE),
                io.Float.Input("spectrum_lambda", default=0.1, min=0.0, max=10.0, step=0.001,
                               tooltip=tooltips.SPECTRUM_LAMBDA),
                io.Float.Input("spectrum_blend", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip=tooltips.SPECTRUM_BLEND),
            ],
            outputs=[io.Model.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, method, time_axis, speedup, placement, warmup_steps, compute_last_step, residual_budget,
                history_device, spectrum_degree, spectrum_lambda, spectrum_blend) -> io.NodeOutput:
        with raised_by(FORECAST_CACHE):
            holder = setups.forecast_cache_holder(
                method=method, time_axis=time_axis, speedup=speedup, placement=placement, warmup=warmup_steps,
                compute_last=compute_last_step, residual_budget=residual_budget, history_device=history_device,
                spectrum_degree=spectrum_degree, spectrum_lambda=spectrum_lambda, spectrum_blend=spectrum_blend,
            )
            return io.NodeOutput(install(model, _with_node_id(cls, holder)))


class L2PCalibrate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="L2PCalibrate",
            display_name=L2P_CALIBRATE,
            category=CATEGORY,
            description="Runs every step for real, records what L2P needs and creates or extends a predictor file"
                        " in models/l2p/ after every sampling run. Run a handful of prompts and seeds.",
            inputs=[
                io.Model.Input("model"),
                io.String.Input("file_name", default="my-model-calibration.safetensors",
                                tooltip=tooltips.FILE_NAME),
                io.Float.Input("ridge_lambda", default=setups.DEFAULT_RIDGE, min=0.0, max=1.0, step=1e-7, round=False,
                               tooltip=tooltips.RIDGE),
                io.Combo.Input("mode", options=setups.CALIBRATION_MODES, default=setups.CALIBRATION_MODES[0],
                               tooltip=tooltips.CALIBRATION_MODE),
                io.Float.Input("on_policy_speedup", default=5.0, min=1.0, max=25.0, step=0.01,
                               tooltip=tooltips.ON_POLICY_SPEEDUP),
                io.Boolean.Input("lesa_sample", default=False, optional=True,  # older prompts lack it: still valid
                                 tooltip=setups.LESA_SAMPLE_TOOLTIP),
            ],
            outputs=[io.Model.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, file_name, ridge_lambda, mode, on_policy_speedup, lesa_sample=False) -> io.NodeOutput:
        with raised_by(L2P_CALIBRATE):
            holder = calibrate_setup.calibrate_holder(
                files.calibration_target(file_name), ridge=ridge_lambda, mode=mode,
                on_policy_speedup=on_policy_speedup, lesa_sample=lesa_sample,
            )
            return io.NodeOutput(install(model, _with_node_id(cls, holder)))


NODES: list[type[io.ComfyNode]] = [L2PCache, L2PCalibrate, L2PForecastCache]
