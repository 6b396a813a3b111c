"""Per-run state and the two wrappers that connect the forecasting engine to ComfyUI's sampling.

* ``l2p_outer_sample_wrapper`` (WrappersMP.OUTER_SAMPLE) brackets one sampling run: it builds a ``RunState`` for
  the run's sigma grid, hands it to the transformer wrapper through a per-run copy of the guider's
  model_options, and publishes the run's report in ``finally`` (cancelled and failed runs too).
* ``RunState.__call__`` is one call of the diffusion model, from the hook the run uses (hook_points.py chooses it
  per run): ``l2p_diffusion_model_wrapper`` (WrappersMP.DIFFUSION_MODEL, around the transformer's ``_forward``)
  or the APPLY_MODEL proxy (apply_model_hook.py, for transformers that never call DIFFUSION_MODEL and for runs
  under torch.compile). On a forecast step it returns the forecast without calling the model, so the whole
  transformer is skipped. The run's hook wrapper is made innermost of its type: under DIFFUSION_MODEL other
  packs' wrappers, wherever they sit in the graph and however they were registered, see every call the sampler
  makes (ComfyUI 0.33 runs model_options wrappers outside patcher ones, #10362; 0.3.64 the other way round), and
  L2P only decides whether the transformer runs.

One RunState serves every thread of a run. Under ComfyUI's multi-GPU CFG split (0.33, #7063) each device thread
runs a subset of the conds and they all reach the one RunState at once: the bookkeeping (the step's decision,
the stream histories, counters, residuals, the calibration buffer) runs under one lock, transformer passes
outside it. Each stream's history stays on the device that computed it; a forecast is returned on the calling
thread's device. A run that ended (finished, failed or cancelled) is closed: a device thread still finishing a
pass afterwards touches nothing.

Nothing here imports ComfyUI: the wrappers only use the executor protocol and plain dicts, so they are tested
with stand-ins as well as inside real ComfyUI sampling.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Hashable

import torch

from ..predictors import ForecastEngine, StepGrid
from .holder import HOLDER_KEY, L2PHolder
from .hook_points import WRAPPER_KEY, select_hook
from .latent_lists import PartsLayout, batch_rows, flatten_parts
from .node_errors import raised_by
from .output_guard import all_finite, bad_streams, refuse_for_calibration, stop_forecasting_note
from .node_report import show_on_node
from .report import ForcedReason, RunReport, publish
from .run_pieces import CalibrationSink, RunContext, RunPieces, StepPlan
from .step_truth import StepTruth

RUN_KEY = "l2p_run"  # transformer_options entry holding the live RunState, only inside one run
# Wrapper types (WrappersMP values) in which the run's hook wrapper runs innermost (hook_points.select_hook).
INNERMOST_WRAPPER_TYPES = ("diffusion_model", "apply_model")

__all__ = ["HOLDER_KEY", "L2PHolder", "RUN_KEY", "WRAPPER_KEY", "CalibrationSink", "RunContext", "RunPieces",
           "RunState", "StepPlan", "l2p_diffusion_model_wrapper", "l2p_outer_sample_wrapper"]

ROLE_NAMES = {0: "cond", 1: "uncond"}


@dataclass(frozen=True)
class _TrackedCall:
    """One diffusion-model call that the schedule tracks: a step on the grid, each chunk a stream."""

    step: int
    keys: tuple[tuple[str, Hashable], ...]  # (role, uuid) per chunk: engines route by role
    names: tuple[str, ...]  # the streams' report names ("cond", "uncond", "cond#2", ...)
    compute: bool


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


class RunState:
    """Everything one sampling run needs: the engine, the plan, the report and per-step bookkeeping.

    home_device: where calibration gathers a step's streams (the model's load device: the multi-GPU split may
    compute cond and uncond on different devices); None: where the step's first stream was computed.
    """

    def __init__(self, pieces: RunPieces, grid: StepGrid, report: RunReport, home_device=None) -> None:
        self.pieces = pieces
        self.grid = grid
        self.report = report
        self.home_device = home_device
        self._lock = threading.Lock()
        self._closed = False
        self.reset()

    def reset(self) -> None:
        if self.pieces.make_engine is not None:
            self.engine = self.pieces.make_engine(self.grid, self.pieces.offload)
        else:
            self.engine = ForecastEngine(self.pieces.predictor, self.grid, offload=self.pieces.offload)
        self._decisions: dict[int, bool] = {}
        self._last_planned: int | None = None  # the latest step the plan decided to compute
        self._residuals: dict[int, float] = {}  # step -> worst residual over its streams, not yet told to the plan
        self._seen: dict[int, set[Hashable]] = {}
        self._names: dict[Hashable, str] = {}
        self._stopped_at: int | None = None  # a step whose output held NaN/inf (caches): nothing forecast after it
        calib = self.pieces.calibration
        self._truth = StepTruth(calib, self.home_device) if calib is not None else None
        self._parts: PartsLayout | None = None  # a list-output model's layout (shapes only), see latent_lists.py

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ one transformer call
    def __call__(self, executor, args: tuple, kwargs: dict, to: dict):
        """One diffusion-model call: ``executor(*args, **kwargs)`` computes it; ``to``: its transformer_options.
        The input may be a multi-latent model's list of tensors, and so may the output (latent_lists.py)."""
        x = args[0]
        with self._lock:
            call = self._admit(x, to)
            forecast = self._forecast(call, x) if call is not None and not call.compute else None
            if call is not None and not call.compute and forecast is None:  # not finite: computed instead
                call = dataclasses.replace(call, compute=True)
        if call is None or call.compute:
            out = executor(*args, **kwargs)
            if call is not None:
                finite = all_finite(out)  # one fused check and sync per computed output, outside the lock
                with self._lock:
                    if finite:
                        self._observe(call, out)
                    else:
                        self._non_finite_output(call, out)
            return out
        calib = self.pieces.calibration
        if calib is not None and calib.on_policy:
            truth = executor(*args, **kwargs)  # on-policy calibration: follow the forecast, record the truth
            finite = all_finite(truth)
            with self._lock:
                if not finite:
                    self._non_finite_output(call, truth)  # calibrating: stops the run here
                if not self._closed:
                    self.report.transformer_calls += 1
                    flat = self._flatten(truth)
                    if flat is not None:
                        self._record_truth(call, flat)
        return forecast

    def _admit(self, x, to: dict) -> _TrackedCall | None:
        """The call's step, streams and decision; None for a call computed outside the schedule (counted here)."""
        if self._closed:  # a device thread still running after its run ended: nothing of the run is touched
            return None
        sigma = float(to["sigmas"].reshape(-1)[0]) if torch.is_tensor(to.get("sigmas")) else float("nan")
        uuids = list(to.get("uuids") or [])
        roles = list(to.get("cond_or_uncond") or [0] * len(uuids))  # 0 = cond, 1 = uncond, per chunk
        step = self.grid.step_of(sigma)
        rows = batch_rows(x)  # a tensor's first dimension, or a list's
        if step is None:
            self.report.force(None, sigma, ForcedReason.OFF_GRID)
        elif not uuids or rows is None or rows % len(uuids):
            self.report.notes.append(f"step {step}: call with an unknown batch layout was computed for real")
        elif any(u in self._seen.get(step, ()) for u in uuids):
            self.report.force(step, sigma, ForcedReason.REPEAT)
        else:
            self._seen.setdefault(step, set()).update(uuids)
            names = tuple(self._stream_name(u, r) for u, r in zip(uuids, roles))
            keys = tuple((name.split("#")[0], u) for u, name in zip(uuids, names))
            compute = self._decide(step, sigma)
            if not compute:
                guard = self._history_guard(keys)
                if guard is not None:  # this call computes; the step's other calls still follow the plan
                    self.report.force(step, sigma, guard)
                    compute = True
            return _TrackedCall(step, keys, names, compute)
        self.report.transformer_calls += 1
        return None

    def _decide(self, step: int, sigma: float) -> bool:
        """The step's decision, made once whichever thread or call asks first. Earlier steps' residuals reach
        the plan first, each once, as the worst over the step's streams (so neither the order of the device
        threads nor how ComfyUI batched cond and uncond changes what the plan sees)."""
        decided = self._decisions.get(step)
        if decided is None and self._stopped_at is not None:
            decided = self._decisions[step] = True
            self.report.force(step, sigma, ForcedReason.NON_FINITE_OUTPUT)
        if decided is None:
            for done in sorted(s for s in self._residuals if s < step):
                self.pieces.plan.report_residual(done, self._residuals.pop(done))
            decided, reason = self.pieces.plan.decide(step)
            if decided and reason is not None:
                self.report.force(step, sigma, reason)
            if decided:
                self._last_planned = step if self._last_planned is None else max(self._last_planned, step)
            self._decisions[step] = decided
        return decided

    def _history_guard(self, keys) -> ForcedReason | None:
        """Why a forecast step must be computed for these streams: a stream with no history (it appeared during
        the run), or one absent at the latest computed step (the conditioning changed in between, e.g. a
        timestep-ranged cond): its history would not reach up to the other streams'."""
        for key in keys:
            steps = self.engine.computed_steps(key)
            if not steps:
                return ForcedReason.NO_HISTORY
            if self._last_planned is not None and steps[-1] < self._last_planned:
                return ForcedReason.STALE_HISTORY
        return None

    def _stream_name(self, uuid: Hashable, role: int) -> str:
        name = self._names.get(uuid)
        if name is None:
            base = ROLE_NAMES.get(int(role), f"role{role}")
            taken = sum(1 for n in self._names.values() if n.split("#")[0] == base)
            name = base if taken == 0 else f"{base}#{taken + 1}"
            self._names[uuid] = name
        return name

    def _forecast(self, call: _TrackedCall, x) -> torch.Tensor | None:
        """The call's forecast; None when it is not finite (an overflow in the output's dtype): never handed on."""
        chunks = [self.engine.forecast(k, call.step) for k in call.keys]
        forecast = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=0)
        if not all_finite(forecast):
            self.report.force(call.step, float(self.grid.sigmas[call.step]), ForcedReason.NON_FINITE_FORECAST)
            return None
        device = getattr(x[0] if isinstance(x, (list, tuple)) else x, "device", None)
        if device is not None and forecast.device != device:  # the stream was computed on another device
            forecast = forecast.to(device)
        self.report.forecast_calls += 1
        for name in call.names:
            self.report.stream(name).forecast.append(call.step)
        return self._parts.restore(forecast) if self._parts is not None else forecast

    def _flatten(self, out) -> torch.Tensor | None:
        """The output as one tensor per call (list outputs flattened, their layout kept to restore forecasts)."""
        flat, layout = flatten_parts(out)
        if layout is not None:
            self._parts = layout
        return flat

    def _observe(self, call: _TrackedCall, out) -> None:
        if self._closed:
            return
        self.report.transformer_calls += 1
        out = self._flatten(out)
        if out is None:
            self.report.notes.append(f"step {call.step}: an output that is not a tensor or list of tensors was not"
                                     f" tracked")
            return
        chunks = out.chunk(len(call.keys), dim=0)  # [len(keys) * B, ...] -> len(keys) x [B, ...]
        for key, name, chunk in zip(call.keys, call.names, chunks):
            r = self.engine.residual(key, call.step, chunk)
            stream = self.report.stream(name)
            stream.computed.append(call.step)
            if r is not None:
                stream.residuals[call.step] = r
                self._residuals[call.step] = max(r, self._residuals.get(call.step, r))
            self.engine.observe(key, call.step, chunk)
        self._record_truth(call, out)

    def _non_finite_output(self, call: _TrackedCall, out) -> None:
        """A computed output holding NaN/inf (output_guard.py): calibration stops the run; a cache passes it on
        but keeps it out of the history and forecasts nothing more in this run."""
        if self._closed:
            return
        self.report.transformer_calls += 1
        flat, _ = flatten_parts(out)  # a list output's parts, one row per stream chunk
        streams = bad_streams(list(call.names), flat) if flat is not None else list(call.names)
        sigma = float(self.grid.sigmas[call.step])
        if self.pieces.calibration is not None:
            raise refuse_for_calibration(call.step, self.grid.num_steps, sigma, streams)
        if self._stopped_at is None:
            self._stopped_at = call.step
            self.report.notes.append(stop_forecasting_note(call.step, self.grid.num_steps, sigma, streams))

    def _record_truth(self, call: _TrackedCall, out: torch.Tensor) -> None:
        """Calibration keeps every step's truth per role: the conditioning of a role may change during the run
        (timestep-ranged prompts), and under the multi-GPU split a step's roles come from several threads."""
        if self._truth is not None:
            for key, chunk in zip(call.keys, out.chunk(len(call.keys), dim=0)):
                self._truth.add(call.step, key[0], chunk)

    def finish(self, success: bool) -> None:
        """End the run: calibration folds it in (success) or drops it; the history is freed now, not when the
        guider is collected. Afterwards the run state is closed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._truth is not None:
                    if success:
                        self._truth.flush()
                    self._truth.clear()
                    self.pieces.calibration.finish(success, self.report)
            finally:
                self._residuals = {}
                self.engine.reset()

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
