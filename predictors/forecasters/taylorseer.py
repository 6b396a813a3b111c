"""TaylorSeer: polynomial extrapolation through the last k+1 computed outputs.

Formula:   F_hat[s] = P_k(t_s), where P_k is the degree-k polynomial through (t_c, F[c]) for the k+1 most
           recent computed steps c, and t is the time axis (step index as published, or sigma). Its weights
           are the Lagrange basis values l_i(t_s) = prod_{j != i} (t_s - t_j) / (t_i - t_j).
State:     none here; the engine keeps k+1 outputs per stream (history_limit = k+1).
Neighbours: order 0 is FORA. The published code builds backward divided differences and sums
           Delta^i (t_s - t_c)^i / i!; for order 1 that equals the above, for order 2 it drops the
           (t_s - t_c)(t_c - t_{c-1}) cross term, so it is not exact on quadratics. We use the Newton/Lagrange
           form, which is exact on degree-k polynomials of the chosen axis. With fewer than k+1 computed steps
           it uses the order the history allows (as the published warm-up does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..engine.linear_predictor import LinearPredictor
from ..engine.grid import StepGrid, TimeAxis


def lagrange_weights(t_target: float, nodes: np.ndarray) -> np.ndarray:
    """float64 [len(nodes)]: values at ``t_target`` of the Lagrange basis on ``nodes`` (distinct)."""
    n = len(nodes)
    w = np.ones(n)
    for i in range(n):
        for j in range(n):
            if i != j:
                w[i] *= (t_target - nodes[j]) / (nodes[i] - nodes[j])
    return w


@dataclass(frozen=True)
class TaylorSeer(LinearPredictor):
    name: ClassVar[str] = "taylorseer"
    order: int = 1
    axis: TimeAxis = TimeAxis.STEP

    def __post_init__(self) -> None:
        if self.order not in (0, 1, 2, 3):
            raise ValueError(f"TaylorSeer order must be 0..3, got {self.order}")
        if not isinstance(self.axis, TimeAxis):
            raise ValueError(f"TaylorSeer axis must be a TimeAxis, got {self.axis!r}")

    @property
    def history_limit(self) -> int:
        return self.order + 1

    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        pos = grid.positions(self.axis)
        return lagrange_weights(float(pos[target]), pos[list(computed)])
