"""LESA's runtime: the ``ForecastEngine`` interface that ``nodes/run_state.py`` uses, over a ``LesaModel``.

State per stream: the last m computed outputs (m = the model's history), in the model's dtype, on the outputs'
device or, with ``offload``, in (pinned) CPU memory, exactly as ``ForecastEngine`` keeps them. Forecasts never
enter the history. A forecast evaluates the target stage's KAN elementwise over the whole latent in float32, in
chunks of ``chunk_elements`` elements so temporary memory stays about chunk * (2m+1) * (grid + 3) * 4 bytes
(~16 MiB at the default) whatever the latent size, then casts back to the outputs' dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Hashable

import torch

from .base import ForecastError
from .engine import StreamHistory
from .grid import StepGrid
from .lesa import LesaModel

DEFAULT_CHUNK_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class LesaPredictor:
    """What RunState and reports read from ``engine.predictor``: the name and how many outputs are kept."""

    name: ClassVar[str] = "lesa"
    history_limit: int


class LesaEngine:
    """Forecasts skipped steps of every stream with a LESA model on one grid (ForecastEngine's public methods).

    Args:
        model: the trained (or untrained: then it equals its linear baseline) LESA model.
        grid: the run's sigma grid (S+1 values); the model reads sigmas, so it runs on any grid, but it was
              trained on its own (the caller decides whether to allow another).
        offload: keep history in CPU memory (pinned when CUDA is available) and copy back on use.
    """

    def __init__(self, model: LesaModel, grid: StepGrid, offload: bool = False,
                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> None:
        if not isinstance(model, LesaModel):
            raise TypeError(f"LesaEngine needs a LesaModel, got {type(model).__name__}")
        self.model = model
        self.grid = grid
        self.offload = offload
        self.chunk_elements = int(chunk_elements)
        if self.chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.predictor = LesaPredictor(history_limit=model.history)
        self._device_params: dict[torch.device, tuple] = {}
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
        if stream.layout is not None and stream.layout != layout:
            stream.steps.clear()
            stream.outputs.clear()
        stream.layout = layout
        if stream.steps and step <= stream.steps[-1]:
            raise ValueError(f"stream {key!r}: step {step} observed after step {stream.steps[-1]}")
        if not output.dtype.is_floating_point:
            raise ValueError(f"stream {key!r}: LESA forecasts floating-point outputs, got {output.dtype}")
        stored = output.detach()
        if self.offload and stored.device.type != "cpu":
            host = torch.empty(stored.shape, dtype=stored.dtype, pin_memory=torch.cuda.is_available())
            host.copy_(stored, non_blocking=True)
            stored = host
        else:
            stored = stored.clone()
        stream.steps.append(int(step))
        stream.outputs.append(stored)
        limit = self.model.history
        if len(stream.steps) > limit:
            del stream.steps[:-limit]
            del stream.outputs[:-limit]

    # ------------------------------------------------------------------ forecasting
    def _params(self, device: torch.device, expert: int) -> dict[str, torch.Tensor]:
        cached = self._device_params.get(device)
        if cached is None:
            cached = tuple({k: v.to(device, torch.float32) for k, v in ex.items()} for ex in self.model.experts)
            self._device_params[device] = cached
        return cached[expert]

    def forecast(self, key: Hashable, target: int) -> torch.Tensor:
        """The forecast output of ``target`` for stream ``key``: the stored outputs' shape, dtype and device."""
        steps = self.computed_steps(key)
        if not steps:
            raise ForecastError(f"stream {key!r}: cannot forecast step {target} before any step was computed")
        if not 0 <= target < self.grid.num_steps:
            raise ForecastError(f"lesa: step {target} is outside the {self.grid.num_steps}-step grid")
        if steps[-1] >= target:
            raise ForecastError(f"lesa: cannot forecast step {target} from steps {steps}: forecasts only look ahead")
        stream = self.streams[key]
        device, dtype, shape = stream.layout
        m = self.model.history
        # oldest first, padded by repeating the oldest (its differences and gaps are then 0, see lesa.py)
        outputs = [stream.outputs[0]] * (m - len(steps)) + list(stream.outputs)
        used_steps = [steps[0]] * (m - len(steps)) + list(steps)
        sig = self.grid.array
        hist_sigma = torch.tensor([float(sig[s]) for s in used_steps], dtype=torch.float32, device=device)
        target_sigma = torch.tensor(float(sig[target]), dtype=torch.float32, device=device)
        expert = self.model.expert_of(float(sig[target]))
        params = self._params(device, expert)
        flats = [o.to(device, non_blocking=True).reshape(-1) for o in outputs]
        total = flats[0].numel()
        result = torch.empty(total, dtype=dtype, device=device)
        with torch.no_grad():
            for start in range(0, total, self.chunk_elements):
                stop = min(start + self.chunk_elements, total)
                hist = torch.stack([f[start:stop].to(torch.float32) for f in flats], dim=-1)  # [chunk, m]
                phi, base = self.model.inputs(hist, hist_sigma, target_sigma)
                out = self.model.expert_forward(expert, phi, params)  # [chunk]
                result[start:stop] = (base + self.model.out_scale * out).to(dtype)
        return result.reshape(shape)

    def residual(self, key: Hashable, step: int, truth: torch.Tensor) -> float | None:
        """Relative error ||F_hat - F|| / ||F|| that a forecast of ``step`` would have had, from the history
        before ``step``; None when the stream has nothing to forecast from. Call before ``observe``."""
        if not self.has_history(key) or self.streams[key].layout[2] != tuple(truth.shape):
            return None
        pred = self.forecast(key, step).to(torch.float32)
        truth32 = truth.detach().to(torch.float32)
        denom = float(torch.linalg.vector_norm(truth32))
        return float(torch.linalg.vector_norm(pred - truth32)) / max(denom, 1e-12)

    def history_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.streams.values() for t in s.outputs)
