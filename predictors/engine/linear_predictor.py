"""The one interface every linear forecaster implements.

Every predictor except LESA forecasts a skipped step's output as a weighted sum of the outputs of the steps
that were really computed:

    F_hat[target] = sum_i  c_i * F[computed[i]]

The weights ``c`` depend only on where the steps sit (step indices or sigmas), never on the tensors, so a
predictor is a pure function ``(target, computed steps, grid) -> c`` in float64 on the CPU, and the engine
(`engine.py`) forms the sum on the device. Predictors whose published form feeds forecasts back into their
history (L2P rollout, FoCa) unroll that recursion symbolically: a forecast is itself a weight vector over
computed outputs, so feeding it back is exact linear algebra on small vectors.
"""
from __future__ import annotations

import abc
from typing import ClassVar, Sequence

import numpy as np

from .grid import StepGrid
from ..errors import ForecastError


class LinearPredictor(abc.ABC):
    """Coefficient provider. Subclasses are frozen dataclasses validated at construction."""

    #: registry key and the name users see in nodes and reports
    name: ClassVar[str]

    @property
    def history_limit(self) -> int | None:
        """How many of the most recent computed outputs the weights may touch (None: all of them).

        The engine keeps only that many per stream, so this bounds the forecaster's memory.
        """
        return None

    @abc.abstractmethod
    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        """float64 [len(computed)]: weights over ``computed`` (ascending, all < target, non-empty)."""

    def coefficients(self, target: int, computed: Sequence[int], grid: StepGrid) -> np.ndarray:
        """Weights over ``computed`` for forecasting step ``target``. float64 [len(computed)]."""
        computed = tuple(int(s) for s in computed)
        if not computed:
            raise ForecastError(f"{self.name}: cannot forecast step {target}: no step has been computed yet")
        if any(b <= a for a, b in zip(computed, computed[1:])):
            raise ValueError(f"{self.name}: computed steps must be strictly increasing, got {computed}")
        if computed[-1] >= target:
            raise ForecastError(
                f"{self.name}: cannot forecast step {target} from steps {computed}: forecasts only look ahead"
            )
        if not 0 <= target < grid.num_steps:
            raise ForecastError(f"{self.name}: step {target} is outside the {grid.num_steps}-step grid")
        limit = self.history_limit
        used = computed if limit is None else computed[-limit:]
        w = np.asarray(self._weights(target, used, grid), dtype=np.float64)
        if w.shape != (len(used),):
            raise AssertionError(f"{self.name} returned {w.shape} weights for {len(used)} computed steps")
        if len(used) < len(computed):
            w = np.concatenate([np.zeros(len(computed) - len(used)), w])
        return w


def relative_positions(target: int, computed: tuple[int, ...], grid: StepGrid, axis) -> tuple[float, np.ndarray]:
    """(target position, computed positions) on ``axis``, as float64."""
    pos = grid.positions(axis)
    return float(pos[target]), pos[list(computed)]
