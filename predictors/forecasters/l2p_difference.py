"""Difference L2P under CFG: forecast the guidance difference d = c - u and the uncond u, each from its own
history, instead of c and u.

Formula:   u_hat[s] = sum_{j in C} a_j u[j]            a = ridge fit of u[s] on u[C] under G_uu
           d_hat[s] = sum_{j in C} b_j (c[j] - u[j])   b = ridge fit of d[s] on d[C] under G_dd = G_cc - G_cu - G_uc + G_uu
           c_hat[s] = u_hat[s] + d_hat[s] = sum_j b_j c[j] + sum_j (a_j - b_j) u[j]
           so the guided output u + g d is forecast as u_hat + g d_hat: guidance multiplies the error of the
           difference's own forecast, which is fitted for exactly that signal (the difference is small and rough
           where the streams agree, smooth where they do not; its statistics are not those of c or u).
State:     the computed outputs of both streams, like ``JointL2PEngine`` (whose history and weighted-sum machinery
           this reuses, ``CrossStreamEngine``); d is never materialised: its weights land on c and u. Memory: K
           latent-sized tensors per stream, a forecast is one weighted sum over 2K tensors.
Neighbours: ``L2PDirect`` per role (the nodes' default) fits c and u each on its own Gram block; the joint
           engine fits each stream on both histories with free weights (2K per target); this one is a
           constrained cross-stream predictor (K weights for u, K for d). Needs a file calibrated with CFG.
"""
from __future__ import annotations

import numpy as np

from ..calibration.fit import direct_weights
from ..engine.grid import StepGrid
from .l2p_joint import CrossStreamEngine

ROLES = ("cond", "uncond")


def difference_gram(gram: np.ndarray, num_steps: int) -> np.ndarray:
    """float64 [S, S]: the Gram of d = c - u from the joint [2S, 2S] Gram of (cond, uncond)."""
    S = num_steps
    cc, cu, uc, uu = gram[:S, :S], gram[:S, S:], gram[S:, :S], gram[S:, S:]
    out = cc - cu - uc + uu
    return 0.5 * (out + out.T)


class DifferenceL2PEngine(CrossStreamEngine):
    """Streams keyed (role, uuid) with roles cond and uncond.

    Args:
        gram: float64 [2S, 2S], the joint calibration Gram of ("cond", "uncond") (index r*S + s).
        ridge: relative ridge (``fit.ridge_solve``), applied to each of the two fits.
    """

    name = "l2p_difference"

    def __init__(self, gram: np.ndarray, ridge: float, grid: StepGrid, offload: bool = False,
                 preserve_levels: bool = False) -> None:
        S = grid.num_steps
        if gram.shape != (2 * S, 2 * S):
            raise ValueError(f"the difference fit needs the joint Gram of {ROLES} on {S} steps, [{2 * S}, {2 * S}],"
                             f" got {list(gram.shape)}")
        self.role_grams = (np.ascontiguousarray(gram[:S, :S]), np.ascontiguousarray(gram[S:, S:]))
        self.difference_gram = difference_gram(gram, S)
        self.ridge = float(ridge)
        self.preserve_levels = bool(preserve_levels)
        super().__init__(ROLES, grid, offload)

    def _solve(self, gram: np.ndarray, target: int, steps: tuple[int, ...]) -> np.ndarray:
        return direct_weights(gram, target, steps, self.ridge, self.preserve_levels)

    def _coefficients(self, role: int, target: int, steps: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
        cond_steps, uncond_steps = steps
        if role == 1 or cond_steps != uncond_steps:
            # uncond, or the two histories differ (one stream absent or forced apart): each from its own history
            out = [np.zeros(len(cond_steps)), np.zeros(len(uncond_steps))]
            out[role] = self._solve(self.role_grams[role], target, steps[role])
            return tuple(out)
        a = self._solve(self.role_grams[1], target, uncond_steps)
        b = self._solve(self.difference_gram, target, cond_steps)
        return b, a - b
