"""The two wrappers that connect the forecasting engine to ComfyUI's sampling, and each run's lifecycle.

* ``l2p_outer_sample_wrapper`` (WrappersMP.OUTER_SAMPLE) brackets one sampling run: it builds a ``RunState``
  (run_calls.py) for the run's sigma grid, hands it to the transformer wrapper through a per-run copy of the
  guider's model_options, and publishes the run's report in ``finally`` (cancelled and failed runs too).
* ``l2p_diffusion_model_wrapper`` (WrappersMP.DIFFUSION_MODEL, around the transformer's ``_forward``) hands each
  call to the run's ``RunState``; the APPLY_MODEL proxy (apply_model_hook.py) does the same for transformers that
  never call DIFFUSION_MODEL and for runs under torch.compile. The run's hook wrapper is made innermost of its
  type: under DIFFUSION_MODEL other packs' wrappers, wherever they sit in the graph and however they were
  registered, see every call the sampler makes (ComfyUI 0.33 runs model_options wrappers outside patcher ones,
  #10362; 0.3.64 the other way round), and L2P only decides whether the transformer runs.

Nothing here imports ComfyUI: the wrappers only use the executor protocol and plain dicts, so they are tested
with stand-ins as well as inside real ComfyUI sampling.
"""
from __future__ import annotations

from ..predictors import StepGrid
from .holder import HOLDER_KEY, L2PHolder
from .hook_points import WRAPPER_KEY, select_hook
from .node_errors import raised_by
from .node_report import show_on_node
from .report import RunReport, publish
from .run_calls import RunState
from .run_pieces import CalibrationSink, RunContext, RunPieces, StepPlan

RUN_KEY = "l2p_run"  # transformer_options entry holding the live RunState, only inside one run
# Wrapper types (WrappersMP values) in which the run's hook wrapper runs innermost (hook_points.select_hook).
INNERMOST_WRAPPER_TYPES = ("diffusion_model", "apply_model")

__all__ = ["HOLDER_KEY", "L2PHolder", "RUN_KEY", "WRAPPER_KEY", "CalibrationSink", "RunContext", "RunPieces",
           "RunState", "StepPlan", "l2p_diffusion_model_wrapper", "l2p_outer_sample_wrapper"]


def run_options(args: tuple, kwargs: dict) -> dict | None:
    """A call's transformer_options when they carry a run: the dict argument, keyword or positional, that holds
    RUN_KEY (found by what it holds, not where it sits: Flux passes it last, LTXV sixth of seven, ahead of
    keyframe_idxs, _apply_model as a keyword); None for a call outside an L2P run."""
    to = kwargs.get("transformer_options")
    if isinstance(to, dict) and RUN_KEY in to:
        return to
    for value in (*args, *kwargs.values()):
        if isinstance(value, dict) and RUN_KEY in value:
            return value
    return None


def copy_nested_dicts(d: dict) -> dict:
    """Same per-run copy the host makes of model_options: dicts and lists copied, other objects shared."""
    out = d.copy()
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = copy_nested_dicts(v)
        elif isinstance(v, list):
            out[k] = v.copy()
    return out


def make_innermost(transformer_options: dict, key: str = WRAPPER_KEY) -> None:
    """Move our wrappers to the end of their type's chain (WrapperExecutor runs wrappers[0] outermost; the chain
    is the keys' insertion order). Only the run's own copy of the options is changed."""
    wrappers = transformer_options.get("wrappers", {})
    for wrapper_type in INNERMOST_WRAPPER_TYPES:
        chain = wrappers.get(wrapper_type)
        if isinstance(chain, dict) and key in chain:
            chain[key] = chain.pop(key)


def l2p_outer_sample_wrapper(executor, *args, **kwargs):
    """OUTER_SAMPLE: one RunState per sampling run, created here and closed in ``finally``."""
    guider = executor.class_obj
    orig_options = guider.model_options
    holder: L2PHolder | None = orig_options.get("transformer_options", {}).get(HOLDER_KEY)
    if holder is None:
        return executor(*args, **kwargs)
    with raised_by(holder.feature):  # ComfyUI reports these at the sampler node: say which L2P node raised them
        return _sample_run(holder, guider, executor, args, kwargs)


def _sample_run(holder: L2PHolder, guider, executor, args: tuple, kwargs: dict):
    orig_options = guider.model_options
    sigmas = args[3] if len(args) > 3 else kwargs["sigmas"]
    grid = StepGrid.from_sigmas(sigmas)
    report = RunReport(feature=holder.feature, predictor=holder.predictor_name, num_steps=grid.num_steps)
    cfg = getattr(guider, "cfg", None)  # CFGGuider; other guiders (dual CFG, custom) may have none
    patcher = guider.model_patcher
    context = RunContext(grid, patcher.model.diffusion_model, float(cfg) if isinstance(cfg, (int, float)) else None,
                         patcher, args[2] if len(args) > 2 else kwargs.get("sampler"))
    pieces = holder.start_run(context, report)
    report.planned_computed = pieces.plan.planned
    report.notes.extend(pieces.plan.notes)
    run = RunState(pieces, grid, report, home_device=getattr(patcher, "load_device", None))
    guider.model_options = copy_nested_dicts(orig_options)
    run_options = guider.model_options["transformer_options"]
    run_options[RUN_KEY] = run
    report.hook = select_hook(run_options, patcher.model.diffusion_model)  # one hook per run, made innermost below
    make_innermost(run_options)
    success = False
    try:
        out = executor(*args, **kwargs)
        success = True
        return out
    except BaseException as exc:  # cancelled (InterruptProcessingException) or failed: report it, then re-raise
        report.status = f"failed: {type(exc).__name__}: {exc}"
        raise
    finally:
        guider.model_options = orig_options
        try:
            run.finish(success)
            if success:
                report.status = "finished"
                report.check_hook_reached()
        finally:
            holder.reports.append(report)
            publish(report)
            show_on_node(holder.node_id, report)


def l2p_diffusion_model_wrapper(executor, *args, **kwargs):
    """DIFFUSION_MODEL: compute, or return a forecast without running the transformer."""
    to = run_options(args, kwargs)
    if to is None:  # sampled through a path without our OUTER_SAMPLE wrapper: stay out of the way
        return executor(*args, **kwargs)
    return to[RUN_KEY](executor, args, kwargs, to)
