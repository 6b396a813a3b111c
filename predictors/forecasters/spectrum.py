"""Spectrum: a ridge Chebyshev fit over every computed output, blended with order-1 Taylor extrapolation.

Formula:   Map the time coordinate t (step index as published, or sigma) of the run's real range linearly onto
           tau in [-1, 1]: tau = -1 + 2 (t - t_0) / (t_{S-1} - t_0), so step 0 (sigma_max) sits at -1 and the
           last evaluation step (sigma_min) at +1. With the K computed steps c_i, the design matrix is
           X[i, m] = T_m(tau_{c_i}) for the Chebyshev polynomials T_0..T_M (P = M+1 columns) and the forecast of
           step s* is the ridge "hat" row
               a(s*) = x(tau*)^T (X^T X + lambda I)^-1 X^T          (float64 [K], lambda on every coefficient,
                                                                       T_0 included, as the published code does)
           blended with TaylorSeer order 1 on the last two computed steps (same axis):
               c = (1 - w) * taylor1(s*) + w * a(s*).
           w = 1 is the paper's pure Chebyshev predictor, w = 0 is TaylorSeer order 1. lambda = 0 takes the
           least-squares hat row through the pseudo-inverse (minimum-norm when K < P).
One computed step: one point fixes no trend, so both parts reuse it (weight 1, as FORA); a ridge fit through a
           single point would instead scale it by x(tau*).x(tau_c) / (|x(tau_c)|^2 + lambda) and shrink the output.
Constants: with lambda > 0 the ridge shrinks T_0 as well, so the weights do not sum exactly to 1 (a constant
           output is forecast slightly scaled towards 0, most with few computed steps). This is the published
           method; ``penalize_constant=False`` leaves T_0 out of the penalty, which makes constants exact.
State:     none here; history_limit is None, so the engine keeps every computed output of every stream: K
           latent-sized tensors per stream (K = computed steps so far, e.g. 7 for 28 steps at 4x; for a FLUX
           1024^2 velocity [1, 16, 128, 128] in bf16 that is 0.5 MiB each).
Neighbours: the published code hard-codes the tau range to steps [0, 50] whatever the step count; here it is
           the run's own range. It also solves in fp32 with Cholesky and stores bf16 coefficients; here the hat
           row is solved in float64 and the engine takes one fp32 weighted sum. It caches the last block's hidden
           state; here (as for every predictor of this pack) the model output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..engine.linear_predictor import LinearPredictor
from ..engine.grid import StepGrid, TimeAxis
from .taylorseer import lagrange_weights

MAX_DEGREE = 12  # beyond this a Chebyshev fit over a few dozen steps is interpolation noise


def chebyshev_basis(tau: np.ndarray, degree: int) -> np.ndarray:
    """float64 [len(tau), degree + 1]: T_0..T_degree at ``tau`` by the three-term recurrence."""
    tau = np.asarray(tau, dtype=np.float64).reshape(-1)
    basis = np.empty((tau.size, degree + 1))
    basis[:, 0] = 1.0
    if degree >= 1:
        basis[:, 1] = tau
    for m in range(2, degree + 1):
        basis[:, m] = 2.0 * tau * basis[:, m - 1] - basis[:, m - 2]
    return basis


def unit_interval_coordinates(grid: StepGrid, axis: TimeAxis) -> np.ndarray:
    """float64 [S]: every evaluation step's position on ``axis``, mapped so that step 0 -> -1 and step S-1 -> +1."""
    pos = grid.positions(axis)
    span = pos[-1] - pos[0]
    if pos.size < 2 or span == 0.0:
        # a 1-step grid has nothing to forecast; put its only step at -1
        return np.full(pos.size, -1.0)
    return -1.0 + 2.0 * (pos - pos[0]) / span


@dataclass(frozen=True)
class Spectrum(LinearPredictor):
    """Args:
    degree: M, the highest Chebyshev degree (M + 1 basis functions).
    ridge: lambda, added to X^T X as lambda * I (absolute, on the [-1, 1] Chebyshev design).
    blend: w, the weight of the Chebyshev forecast against order-1 Taylor (0..1).
    axis: the time coordinate mapped onto [-1, 1].
    penalize_constant: ridge T_0 too (the published method); False keeps constants exact.
    """

    name: ClassVar[str] = "spectrum"
    degree: int = 4
    ridge: float = 0.1
    blend: float = 0.5
    axis: TimeAxis = TimeAxis.STEP
    penalize_constant: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.degree, bool) or not isinstance(self.degree, (int, np.integer)):
            raise ValueError(f"Spectrum degree M must be an integer, got {self.degree!r}")
        if not 1 <= self.degree <= MAX_DEGREE:
            raise ValueError(f"Spectrum degree M must be in 1..{MAX_DEGREE}, got {self.degree}")
        if not (np.isfinite(self.ridge) and self.ridge >= 0.0):
            raise ValueError(f"Spectrum ridge lambda must be finite and >= 0, got {self.ridge}")
        if not (np.isfinite(self.blend) and 0.0 <= self.blend <= 1.0):
            raise ValueError(f"Spectrum blend w must be in [0, 1], got {self.blend}")
        if not isinstance(self.axis, TimeAxis):
            raise ValueError(f"Spectrum axis must be a TimeAxis, got {self.axis!r}")

    def chebyshev_weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        """float64 [K]: the ridge hat row a(target) over ``computed`` (the w = 1 part)."""
        tau = unit_interval_coordinates(grid, self.axis)
        design = chebyshev_basis(tau[list(computed)], self.degree)  # [K, P]
        x_target = chebyshev_basis(tau[[target]], self.degree)[0]  # [P]
        if self.ridge == 0.0:
            # least-squares hat row x*^T X^+ (minimum-norm coefficients when K < P)
            return np.linalg.pinv(design).T @ x_target
        penalty = np.full(self.degree + 1, self.ridge)
        if not self.penalize_constant:
            penalty[0] = 0.0
        normal = design.T @ design + np.diag(penalty)  # [P, P], symmetric positive definite
        return design @ np.linalg.solve(normal, x_target)

    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        if len(computed) == 1:
            return np.ones(1)
        pos = grid.positions(self.axis)
        taylor = np.zeros(len(computed))
        taylor[-2:] = lagrange_weights(float(pos[target]), pos[list(computed[-2:])])
        cheb = self.chebyshev_weights(target, computed, grid) if self.blend > 0.0 else np.zeros(len(computed))
        return (1.0 - self.blend) * taylor + self.blend * cheb
