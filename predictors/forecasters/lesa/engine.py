"""LESA's runtime: the ``ForecastEngine`` interface that ``nodes/run_calls.py`` uses, over a ``LesaModel``.

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

from ...engine.linear_predictor import ForecastError
from ...engine.history import HistoryEngine
from ...engine.grid import StepGrid
from .model import LesaModel

DEFAULT_CHUNK_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class LesaPredictor:
    """What RunState and reports read from ``engine.predictor``: the name and how many outputs are kept."""

    name: ClassVar[str] = "lesa"
    history_limit: int


class LesaEngine(HistoryEngine):
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
        self.chunk_elements = int(chunk_elements)
        if self.chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.predictor = LesaPredictor(history_limit=model.history)
        self._device_params: dict[torch.device, tuple] = {}
        super().__init__(grid, offload, model.history)

    def observe(self, key: Hashable, step: int, output: torch.Tensor) -> None:
        if not output.dtype.is_floating_point:
            raise ValueError(f"stream {key!r}: LESA forecasts floating-point outputs, got {output.dtype}")
        super().observe(key, step, output)

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
