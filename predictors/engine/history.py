"""The forecasting engine: per-stream history of computed outputs and one weighted sum per forecast.

State per stream (one stream = one conditioning chunk, e.g. a ComfyUI uuid; its tensor carries all batch rows):
the outputs of the steps that were really computed, in the model's dtype, on the model's device or, when
offloaded, in (pinned) CPU memory. Only the ``predictor.history_limit`` most recent are kept, so memory is at
most that many latent-sized tensors per stream.

A forecast asks the predictor for float64 weights (cached per (target, computed steps)) and accumulates
``sum_i c_i * F_i`` in float32 on the outputs' device, whatever the model dtype, then casts back.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np
import torch

from .linear_predictor import ForecastError, LinearPredictor
from .grid import StepGrid


@dataclass
class StreamHistory:
    """The computed outputs of one stream, oldest first."""

    steps: list[int] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    # (device, dtype, shape) of the stream's newest output. A new dtype or shape resets the stream; a new device
    # (the multi-GPU split moved the stream) keeps the history, and forecasts are formed on the new device
    layout: tuple | None = None


class HistoryEngine(abc.ABC):
    """Per-stream history of computed outputs and everything around a forecast except the forecast itself.

    Subclasses implement ``forecast``; RunState uses exactly these public methods, whatever the predictor.
    """

    def __init__(self, grid: StepGrid, offload: bool, history_limit: int | None) -> None:
        self.grid = grid
        self.offload = offload
        self.history_limit = history_limit
        self.reset()

    def reset(self) -> None:
        self.streams: dict[Hashable, StreamHistory] = {}

    # ------------------------------------------------------------------ history
    def has_history(self, key: Hashable) -> bool:
        stream = self.streams.get(key)
        return stream is not None and bool(stream.steps)

    def computed_steps(self, key: Hashable) -> tuple[int, ...]:
        stream = self.streams.get(key)
        return tuple(stream.steps) if stream else ()

    def observe(self, key: Hashable, step: int, output: torch.Tensor) -> None:
        """Record the true output of a computed step. Steps of one stream must arrive in increasing order."""
        stream = self.streams.setdefault(key, StreamHistory())
        layout = (output.device, output.dtype, tuple(output.shape))
        if stream.layout is not None and stream.layout[1:] != layout[1:]:
            stream.steps.clear()
            stream.outputs.clear()
        stream.layout = layout
        if stream.steps and step <= stream.steps[-1]:
            raise ValueError(f"stream {key!r}: step {step} observed after step {stream.steps[-1]}")
        stored = output.detach()
        if self.offload and stored.device.type != "cpu":
            host = torch.empty(stored.shape, dtype=stored.dtype, pin_memory=torch.cuda.is_available())
            host.copy_(stored, non_blocking=True)
            stored = host
        else:
            stored = stored.clone()
        stream.steps.append(int(step))
        stream.outputs.append(stored)
        limit = self.history_limit
        if limit is not None and len(stream.steps) > limit:
            del stream.steps[:-limit]
            del stream.outputs[:-limit]

    @abc.abstractmethod
    def forecast(self, key: Hashable, target: int) -> torch.Tensor:
        """The forecast output of ``target`` for stream ``key``: the stored outputs' shape, dtype and device."""

    def residual(self, key: Hashable, step: int, truth: torch.Tensor) -> float | None:
        """Relative error ||F_hat - F|| / ||F|| that a forecast of ``step`` would have had, from the history
        before ``step``; None when the stream has nothing to forecast from. Call before ``observe``."""
        if not self.has_history(key) or self.streams[key].layout[2] != tuple(truth.shape):
            return None
        truth32 = truth.detach().to(torch.float32)
        pred = self.forecast(key, step).to(truth32.device, torch.float32)
        denom = float(torch.linalg.vector_norm(truth32))
        return float(torch.linalg.vector_norm(pred - truth32)) / max(denom, 1e-12)

    def history_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.streams.values() for t in s.outputs)


class ForecastEngine(HistoryEngine):
    """Forecasts skipped steps of every stream with one linear predictor on one grid.

    Args:
        predictor: the coefficient provider.
        grid: the run's sigma grid (S+1 values).
        offload: keep history in CPU memory (pinned when CUDA is available) and copy back on use.
    """

    def __init__(self, predictor: LinearPredictor, grid: StepGrid, offload: bool = False) -> None:
        self.predictor = predictor
        super().__init__(grid, offload, predictor.history_limit)

    def reset(self) -> None:
        super().reset()
        self._coef_cache: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}

    # ------------------------------------------------------------------ forecasting
    def coefficients(self, key: Hashable, target: int) -> np.ndarray:
        steps = self.computed_steps(key)
        if not steps:
            raise ForecastError(f"stream {key!r}: cannot forecast step {target} before any step was computed")
        cache_key = (target, steps)
        coef = self._coef_cache.get(cache_key)
        if coef is None:
            coef = self.predictor.coefficients(target, steps, self.grid)
            self._coef_cache[cache_key] = coef
        return coef

    def forecast(self, key: Hashable, target: int) -> torch.Tensor:
        """The forecast output of ``target`` for stream ``key``: the stored outputs' shape, dtype and device."""
        coef = self.coefficients(key, target)
        stream = self.streams[key]
        device, dtype, _ = stream.layout
        acc = None
        for c, out in zip(coef.tolist(), stream.outputs):
            if c == 0.0:
                continue
            if out.device != device:
                out = out.to(device, non_blocking=True)
            if acc is None:
                acc = out.to(torch.float32) * c
            else:
                acc.add_(out, alpha=c)  # fp32 accumulate; add_ promotes bf16/fp16 operands without a copy
        if acc is None:
            acc = torch.zeros(stream.layout[2], dtype=torch.float32, device=device)
        return acc.to(dtype)


class RoutedEngine:
    """Several engines behind ForecastEngine's public methods, chosen by the first item of a stream key.

    RunState keys streams as (role, uuid), so a ``RoutedEngine({"cond": a, "uncond": b})`` forecasts each role
    with its own predictor (e.g. L2P fitted on that role's own statistics). Keys of other roles go to ``default``.
    """

    def __init__(self, engines: dict[str, HistoryEngine], default: HistoryEngine) -> None:
        self.engines, self.default = engines, default
        self.predictor = default.predictor if hasattr(default, "predictor") else None

    def _route(self, key: Hashable) -> HistoryEngine:
        role = key[0] if isinstance(key, tuple) and key else None
        return self.engines.get(role, self.default)

    def reset(self) -> None:
        for engine in {id(e): e for e in [*self.engines.values(), self.default]}.values():
            engine.reset()

    def has_history(self, key: Hashable) -> bool:
        return self._route(key).has_history(key)

    def computed_steps(self, key: Hashable) -> tuple[int, ...]:
        return self._route(key).computed_steps(key)

    def observe(self, key: Hashable, step: int, output: torch.Tensor) -> None:
        self._route(key).observe(key, step, output)

    def forecast(self, key: Hashable, target: int) -> torch.Tensor:
        return self._route(key).forecast(key, target)

    def residual(self, key: Hashable, step: int, truth: torch.Tensor) -> float | None:
        return self._route(key).residual(key, step, truth)

    def history_bytes(self) -> int:
        return sum(e.history_bytes() for e in {id(e): e for e in [*self.engines.values(), self.default]}.values())
