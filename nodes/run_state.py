"""Per-run state and the two wrappers that connect the forecasting engine to ComfyUI's sampling.

* ``l2p_outer_sample_wrapper`` (WrappersMP.OUTER_SAMPLE) brackets one sampling run: it builds a ``RunState`` for
  the run's sigma grid, hands it to the transformer wrapper through a per-run copy of the guider's
  model_options, and publishes the run's report in ``finally`` (cancelled and failed runs too).
* ``l2p_diffusion_model_wrapper`` (WrappersMP.DIFFUSION_MODEL) wraps the transformer's ``_forward``: on a
  forecast step it returns the forecast without calling the executor, so the whole transformer is skipped.

Nothing here imports ComfyUI: the wrappers only use the executor protocol and plain dicts, so they are tested
with stand-ins as well as inside real ComfyUI sampling.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Protocol

import torch

from ..predictors import ForecastEngine, StepGrid
from ..predictors.engine.linear_predictor import LinearPredictor
from .node_report import show_on_node
from .report import ForcedReason, RunReport, publish

HOLDER_KEY = "l2p"  # transformer_options entry holding the node's setup (deep-copied with model clones)
RUN_KEY = "l2p_run"  # transformer_options entry holding the live RunState, only inside one run
WRAPPER_KEY = "comfyui_l2p"  # key of our wrappers; re-applying a node replaces them instead of stacking

ROLE_NAMES = {0: "cond", 1: "uncond"}


class StepPlan(Protocol):
    """Which steps are computed. ``decide`` is called once per step, in order; residuals arrive after."""

    def decide(self, step: int) -> tuple[bool, ForcedReason | None]: ...

    def report_residual(self, step: int, residual: float) -> None: ...

    @property
    def planned(self) -> tuple[int, ...] | None: ...


class CalibrationSink(Protocol):
    """Receives the true outputs of steps, all roles of a step together, and folds them in when the run ends."""

    on_policy: bool

    def record(self, step: int, outputs: dict[str, torch.Tensor]) -> None: ...

    def finish(self, success: bool, report: RunReport) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a node's setup learns about a run before its first step."""

    grid: StepGrid  # the run's sample_sigmas
    diffusion_model: Any  # the transformer module (its class decides the model family)
    cfg_scale: float | None = None  # the guider's CFG scale (None when the guider has no single scale)
    model_patcher: Any = None  # the guider's ModelPatcher (model identity, model_sampling); None outside ComfyUI
    sampler: Any = None  # the run's Sampler (its name goes into calibration files); None outside ComfyUI


@dataclass
class RunPieces:
    """What a node's setup builds for one run."""

    predictor: LinearPredictor
    plan: StepPlan
    offload: bool = False
    calibration: CalibrationSink | None = None
    # A predictor that is not a linear combination (LESA) brings its own engine: (grid, offload) -> engine with
    # ForecastEngine's methods. None: the linear ForecastEngine over ``predictor``.
    make_engine: Callable[[StepGrid, bool], Any] | None = None


@dataclass
class L2PHolder:
    """The template a node stores in ``model_options["transformer_options"][HOLDER_KEY]``.

    ``start_run(context, report)`` returns the RunPieces for one run; it raises user-facing errors
    (e.g. a predictor file calibrated for another step grid) before any step runs.
    """

    feature: str
    predictor_name: str
    start_run: Callable[[RunContext, RunReport], RunPieces]
    reports: list[RunReport] = field(default_factory=list)
    node_id: str | None = None  # the node that made it: where the UI shows each run's report (node_report.py)

    def __deepcopy__(self, memo):
        # ModelPatcher.clone() deep-copies model_options. The setup is immutable; reports stay per clone.
        return L2PHolder(self.feature, self.predictor_name, self.start_run, list(self.reports), self.node_id)


def find_transformer_options(args: tuple, kwargs: dict) -> dict:
    """transformer_options is the last positional argument for Flux, Qwen-Image and HunyuanVideo, else a kwarg."""
    if args and isinstance(args[-1], dict):
        return args[-1]
    to = kwargs.get("transformer_options")
    if isinstance(to, dict):
        return to
    raise TypeError("L2P: the diffusion model was called without transformer_options; cannot find the run state")


class RunState:
    """Everything one sampling run needs: the engine, the plan, the report and per-step bookkeeping."""

    def __init__(self, pieces: RunPieces, grid: StepGrid, report: RunReport) -> None:
        self.pieces = pieces
        self.grid = grid
        self.report = report
        self.reset()

    def reset(self) -> None:
        if self.pieces.make_engine is not None:
            self.engine = self.pieces.make_engine(self.grid, self.pieces.offload)
        else:
            self.engine = ForecastEngine(self.pieces.predictor, self.grid, offload=self.pieces.offload)
        self._decisions: dict[int, bool] = {}
        self._seen: dict[int, set[Hashable]] = {}
        self._names: dict[Hashable, str] = {}
        self._pending_step: int | None = None
        self._pending: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ one transformer call
    def __call__(self, executor, args: tuple, kwargs: dict, to: dict):
        sigma = float(to["sigmas"].reshape(-1)[0]) if torch.is_tensor(to.get("sigmas")) else float("nan")
        uuids = list(to.get("uuids") or [])
        roles = list(to.get("cond_or_uncond") or [0] * len(uuids))  # 0 = cond, 1 = uncond, per chunk
        x = args[0]
        step = self.grid.step_of(sigma)
        if step is None:
            self.report.force(None, sigma, ForcedReason.OFF_GRID)
            return self._compute_untracked(executor, args, kwargs)
        if not uuids or x.shape[0] % len(uuids):
            self.report.notes.append(f"step {step}: call with an unknown batch layout was computed for real")
            return self._compute_untracked(executor, args, kwargs)
        seen = self._seen.setdefault(step, set())
        if any(u in seen for u in uuids):
            self.report.force(step, sigma, ForcedReason.REPEAT)
            return self._compute_untracked(executor, args, kwargs)
        seen.update(uuids)
        names = [self._stream_name(u, r) for u, r in zip(uuids, roles)]
        keys = [(name.split("#")[0], u) for u, name in zip(uuids, names)]  # (role, uuid): engines route by role

        compute = self._decide(step, sigma)
        if not compute and not all(self.engine.has_history(k) for k in keys):
            self.report.force(step, sigma, ForcedReason.NO_HISTORY)
            compute = True
        if compute:
            out = executor(*args, **kwargs)
            self.report.transformer_calls += 1
            self._observe(step, keys, names, out)
            return out
        chunks = [self.engine.forecast(k, step) for k in keys]
        forecast = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=0)
        self.report.forecast_calls += 1
        for name in names:
            self.report.stream(name).forecast.append(step)
        calib = self.pieces.calibration
        if calib is not None and calib.on_policy:
            truth = executor(*args, **kwargs)  # on-policy calibration: follow the forecast, record the truth
            self.report.transformer_calls += 1
            self._record_truth(step, names, truth, len(uuids))
        return forecast

    def _decide(self, step: int, sigma: float) -> bool:
        decided = self._decisions.get(step)
        if decided is None:
            decided, reason = self.pieces.plan.decide(step)
            if decided and reason is not None:
                self.report.force(step, sigma, reason)
            self._decisions[step] = decided
        return decided

    def _stream_name(self, uuid: Hashable, role: int) -> str:
        name = self._names.get(uuid)
        if name is None:
            base = ROLE_NAMES.get(int(role), f"role{role}")
            taken = sum(1 for n in self._names.values() if n.split("#")[0] == base)
            name = base if taken == 0 else f"{base}#{taken + 1}"
            self._names[uuid] = name
        return name

    def _compute_untracked(self, executor, args, kwargs):
        self.report.transformer_calls += 1
        return executor(*args, **kwargs)

    def _observe(self, step: int, keys: list, names: list[str], out: torch.Tensor) -> None:
        chunks = out.chunk(len(keys), dim=0)  # [len(keys) * B, ...] -> len(keys) x [B, ...]
        worst = None
        for key, name, chunk in zip(keys, names, chunks):
            r = self.engine.residual(key, step, chunk)
            stream = self.report.stream(name)
            stream.computed.append(step)
            if r is not None:
                stream.residuals[step] = r
                worst = r if worst is None else max(worst, r)
            self.engine.observe(key, step, chunk)
        if worst is not None:
            self.pieces.plan.report_residual(step, worst)
        self._record_truth(step, names, out, len(keys))

    def _record_truth(self, step: int, names: list[str], out: torch.Tensor, n_chunks: int) -> None:
        calib = self.pieces.calibration
        if calib is None:
            return
        if self._pending_step is not None and self._pending_step != step:
            self._flush_pending()
        self._pending_step = step
        for name, chunk in zip(names, out.chunk(n_chunks, dim=0)):
            if name in self._pending:
                raise ValueError(
                    f"L2P Calibrate: step {step} has two '{name}' conditionings; calibration records one positive"
                    f" and at most one negative conditioning. Remove area/combined conditionings while calibrating."
                )
            self._pending[name] = chunk.detach()

    def _flush_pending(self) -> None:
        if self._pending_step is not None and self._pending:
            self.pieces.calibration.record(self._pending_step, dict(self._pending))
        self._pending_step, self._pending = None, {}

    def finish(self, success: bool) -> None:
        calib = self.pieces.calibration
        if calib is not None:
            if success:
                self._flush_pending()
            calib.finish(success, self.report)
        self.engine.reset()  # free the history now, not when the guider is collected

    @property
    def history_bytes(self) -> int:
        return self.engine.history_bytes()


def copy_nested_dicts(d: dict) -> dict:
    """Same per-run copy the host makes of model_options: dicts and lists copied, other objects shared."""
    out = d.copy()
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = copy_nested_dicts(v)
        elif isinstance(v, list):
            out[k] = v.copy()
    return out


def l2p_outer_sample_wrapper(executor, *args, **kwargs):
    """OUTER_SAMPLE: one RunState per sampling run, created here and released in ``finally``."""
    guider = executor.class_obj
    orig_options = guider.model_options
    holder: L2PHolder | None = orig_options.get("transformer_options", {}).get(HOLDER_KEY)
    if holder is None:
        return executor(*args, **kwargs)
    sigmas = args[3] if len(args) > 3 else kwargs["sigmas"]
    grid = StepGrid.from_sigmas(sigmas)
    report = RunReport(feature=holder.feature, predictor=holder.predictor_name, num_steps=grid.num_steps)
    cfg = getattr(guider, "cfg", None)  # CFGGuider; other guiders (dual CFG, custom) may have none
    context = RunContext(grid, guider.model_patcher.model.diffusion_model,
                         float(cfg) if isinstance(cfg, (int, float)) else None, guider.model_patcher,
                         args[2] if len(args) > 2 else kwargs.get("sampler"))
    pieces = holder.start_run(context, report)
    report.planned_computed = pieces.plan.planned
    run = RunState(pieces, grid, report)
    guider.model_options = copy_nested_dicts(orig_options)
    guider.model_options["transformer_options"][RUN_KEY] = run
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
        finally:
            holder.reports.append(report)
            publish(report)
            show_on_node(holder.node_id, report)


def l2p_diffusion_model_wrapper(executor, *args, **kwargs):
    """DIFFUSION_MODEL: compute, or return a forecast without running the transformer."""
    to = find_transformer_options(args, kwargs)
    run: RunState | None = to.get(RUN_KEY)
    if run is None:  # sampled through a path without our OUTER_SAMPLE wrapper: stay out of the way
        return executor(*args, **kwargs)
    return run(executor, args, kwargs, to)
