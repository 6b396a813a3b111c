"""FORA: reuse the last computed output.

Formula:   F_hat[s] = F[c_last]            (weight 1 on the most recent computed step)
State:     none here; the engine keeps one latent-sized output per stream (history_limit = 1).
Neighbours: TaylorSeer order 0 is the same thing; every other predictor extrapolates instead of holding.
Published FORA reuses per-block attention/MLP outputs; at the model-output level it is plain reuse.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..engine.linear_predictor import LinearPredictor
from ..engine.grid import StepGrid


@dataclass(frozen=True)
class Fora(LinearPredictor):
    name: ClassVar[str] = "fora"

    @property
    def history_limit(self) -> int:
        return 1

    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        return np.ones(1)
