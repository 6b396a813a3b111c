"""The per-run safety net's margins: how large a forecast residual the calibration says is normal at a step.

Every computed step gives the true output, so a run knows (free) how far the forecast of that step would have been
off: the relative residual r = ||F_hat_t - F_t|| / ||F_t|| (``engine.history.HistoryEngine.residual``). The
calibration predicts r for every trajectory it sampled: with the run's own weights w (fitted on the pooled Gram G
for the steps computed before t), trajectory n's residual is

    r_n(t, P)^2 = E_n||F_t - sum_j w_j F_P(j)||^2 / G_n[t, t] = forecast_error(G_n, t, P, w) / G_n[t, t]

from its own Gram G_n alone (``calibration.trajectory_grams``). The margin at (t, P) is a quantile of r_n over the
sampled trajectories (the maximum by default), times ``SafetyNet.margin``: a residual above it says this run is not
like any calibration trajectory there, so the next step is computed instead of forecast
(``nodes.plans.SafetyNetPlan``); the forecasts after it are refitted for the new computed set (L2PDirect fits per
computed set).

State: the per-role trajectory Grams and a cache of margins per (step, computed prefix), bounded by the run's steps
(one entry per computed step). Cost: T small solves per computed step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..calibration.fit import direct_weights, forecast_error


@dataclass(frozen=True)
class SafetyNet:
    """The safety net's settings, validated at construction.

    margin:    a residual above margin * (the calibration's quantile) triggers; > 0.
    quantile:  which quantile of the sampled trajectories' residuals is normal, in (0, 1]; 1 = the largest.
    max_extra: at most this many extra passes per run (the pass budget: the requested speedup minus at most these).
    """

    margin: float = 1.0
    quantile: float = 1.0
    max_extra: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.margin, (int, float)) and math.isfinite(self.margin) and self.margin > 0):
            raise ValueError(f"SafetyNet.margin must be a finite number > 0, got {self.margin!r}")
        if not (isinstance(self.quantile, (int, float)) and 0 < self.quantile <= 1):
            raise ValueError(f"SafetyNet.quantile must be in (0, 1], got {self.quantile!r}")
        if isinstance(self.max_extra, bool) or not isinstance(self.max_extra, int) or self.max_extra < 0:
            raise ValueError(f"SafetyNet.max_extra must be an integer >= 0, got {self.max_extra!r}")


@dataclass
class ResidualMargins:
    """Margins per (step, computed steps before it), the largest over the roles.

    pooled:       role -> float64 [S, S], the Gram each role's weights are fitted on (as L2PDirect does).
    trajectories: role -> float64 [T, S, S], the sampled trajectories' blocks of that role (T >= 1).
    """

    pooled: Mapping[str, np.ndarray]
    trajectories: Mapping[str, np.ndarray]
    ridge: float
    net: SafetyNet = field(default_factory=SafetyNet)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if set(self.pooled) != set(self.trajectories) or not self.pooled:
            raise ValueError(f"margins need the same roles for the pooled and the trajectory Grams, got"
                             f" {sorted(self.pooled)} and {sorted(self.trajectories)}")
        for role, grams in self.trajectories.items():
            size = np.shape(self.pooled[role])
            if np.ndim(grams) != 3 or np.shape(grams)[0] < 1 or np.shape(grams)[1:] != size:
                raise ValueError(f"role {role!r}: trajectory Grams must be [T >= 1, {size[0]}, {size[0]}], got"
                                 f" {list(np.shape(grams))}")

    def normal_residuals(self, step: int, computed: Sequence[int]) -> dict[str, np.ndarray]:
        """role -> float64 [T]: each sampled trajectory's relative residual at ``step`` from ``computed``."""
        prefix = [int(c) for c in computed]
        out = {}
        for role, pooled in self.pooled.items():
            w = direct_weights(pooled, step, prefix, self.ridge)
            grams = self.trajectories[role]
            errors = np.array([forecast_error(g, step, prefix, w) for g in grams])
            energy = np.maximum(grams[:, step, step], 1e-300)
            out[role] = np.sqrt(np.maximum(errors, 0.0) / energy)
        return out

    def threshold(self, step: int, computed: Sequence[int]) -> float:
        """The residual above which the net triggers at ``step`` (margin * quantile, the largest over roles)."""
        key = (int(step), tuple(int(c) for c in computed))
        value = self._cache.get(key)
        if value is None:
            per_role = self.normal_residuals(step, key[1])
            value = self.net.margin * max(float(np.quantile(r, self.net.quantile)) for r in per_role.values())
            self._cache[key] = value
        return value
