"""``RunState``: one sampling run's bookkeeping of the diffusion-model calls, under one lock.

``RunState.__call__`` is one call of the diffusion model, from the hook the run uses (hook_points.py chooses it per
run): ``run_state.l2p_diffusion_model_wrapper`` (WrappersMP.DIFFUSION_MODEL, around the transformer's ``_forward``)
or the APPLY_MODEL proxy (apply_model_hook.py, for transformers that never call DIFFUSION_MODEL and for runs under
torch.compile). On a forecast step it returns the forecast without calling the model, so the whole transformer is
skipped. run_state.py creates one per sampling run and closes it.

One RunState serves every thread of a run. Under ComfyUI's multi-GPU CFG split (0.33, #7063) each device thread
runs a subset of the conds and they all reach the one RunState at once: the bookkeeping (the step's decision,
the stream histories, counters, residuals, the calibration buffer) runs under one lock, transformer passes
outside it. Each stream's history stays on the device that computed it; a forecast is returned on the calling
thread's device. A run that ended (finished, failed or cancelled) is closed: a device thread still finishing a
pass afterwards touches nothing.

Nothing here imports ComfyUI: tested with stand-ins as well as inside real ComfyUI sampling.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Hashable

import torch

from ..predictors import ForecastEngine, StepGrid
from .latent_lists import PartsLayout, batch_rows, flatten_parts
from .output_guard import all_finite, bad_streams, refuse_for_calibration, stop_forecasting_note
from .report import ForcedReason, RunReport
from .run_pieces import RunPieces
from .step_truth import StepTruth

ROLE_NAMES = {0: "cond", 1: "uncond"}


@dataclass(frozen=True)
class _TrackedCall:
    """One diffusion-model call that the schedule tracks: a step on the grid, each chunk a stream."""

    step: int
    keys: tuple[tuple[str, Hashable], ...]  # (role, uuid) per chunk: engines route by role
    names: tuple[str, ...]  # the streams' report names ("cond", "uncond", "cond#2", ...)
    compute: bool


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
        but keeps it out of the history and forecasts nothing more in this run; a learning run (a sink that does
        not stop on bad output) drops its recording now and finishes like a cache."""
        if self._closed:
            return
        self.report.transformer_calls += 1
        flat, _ = flatten_parts(out)  # a list output's parts, one row per stream chunk
        streams = bad_streams(list(call.names), flat) if flat is not None else list(call.names)
        sigma = float(self.grid.sigmas[call.step])
        calib = self.pieces.calibration
        if calib is not None and getattr(calib, "stops_on_bad_output", True):
            raise refuse_for_calibration(call.step, self.grid.num_steps, sigma, streams)
        if self._truth is not None:  # nothing of this run reaches the file; later steps are not recorded
            self._truth.clear()
            self._truth = None
            calib.finish(False, self.report)
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
