"""Grid transfer: resample calibration statistics recorded on one sigma grid onto another.

Why this works: along the sampling ODE the model output is a smooth function F(sigma) of the noise level, so
G(sigma, sigma') = sum <F(sigma), F(sigma')> is a smooth function of the two sigmas, and a calibration at S steps
samples it on the S x S grid of its evaluation sigmas. A run with another step count, scheduler or denoise
evaluates other sigmas inside the same range; G there is interpolated.

What is interpolated: G itself mixes scales (the output norm changes a lot with sigma), so it is split into
    log n_i = log sqrt(G_ii)                  per role, a 1-D function of sigma
    C_ij = G_ij / (n_i n_j)                    the correlations, a 2-D function of (sigma_i, sigma_j), |C| <= 1
each interpolated with a not-a-knot cubic spline in sigma (the same linear interpolation operator P [S_new, S_old]
applied along both axes: C_new = P C P^T). The result is made a valid correlation matrix again (unit diagonal,
negative eigenvalues clipped to 0, diagonal renormalised) and G_new = n_new n_new^T * C_new is symmetric positive
semi-definite. When the new grid equals the old one, P is the identity and G is returned unchanged (to rounding).

Only interpolation: a grid reaching outside the calibrated sigma range (beyond a small tolerance) is refused, since
extrapolating a trajectory statistic is guesswork. The node calls this only when the user allows transfer; schedules
chosen on a resampled G should be re-checked (DESIGN.md: weights transferred well, searched schedules less so).
"""
from __future__ import annotations

import numpy as np

from .gram import GramStats
from ..engine.grid import StepGrid

#: how far (relative to the calibrated sigma span) a new grid may reach beyond it; covers float32 sigma round-off
DEFAULT_RANGE_TOLERANCE = 1e-3

# two sigmas closer than this (relative to the span) are the same point: P gets an exact unit row there
_SAME_POINT_RTOL = 1e-9


def _polynomial_matrix(x_old: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """[n_new, n_old]: Lagrange interpolation through every old point (used for n_old <= 3)."""
    out = np.ones((x_new.size, x_old.size))
    for j in range(x_old.size):
        for m in range(x_old.size):
            if m != j:
                out[:, j] *= (x_new - x_old[m]) / (x_old[j] - x_old[m])
    return out


def spline_matrix(x_old: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """float64 [n_new, n_old] P such that P @ y is the not-a-knot cubic spline through (x_old, y) at x_new.

    x_old strictly monotone (either direction), x_new inside [min, max] of x_old. Fewer than 4 points: the
    interpolating polynomial. Rows of new points that coincide with an old point are exact unit vectors.
    """
    x_old = np.asarray(x_old, dtype=np.float64)
    x_new = np.asarray(x_new, dtype=np.float64)
    n = x_old.size
    order = np.argsort(x_old)
    xs = x_old[order]
    if n < 1 or np.any(np.diff(xs) <= 0):
        raise ValueError(f"spline knots must be distinct, got {x_old.tolist()}")
    span = max(xs[-1] - xs[0], 1e-300)
    if np.any(x_new < xs[0] - _SAME_POINT_RTOL * span) or np.any(x_new > xs[-1] + _SAME_POINT_RTOL * span):
        raise ValueError(f"spline evaluation points {x_new.tolist()} leave the knot range [{xs[0]}, {xs[-1]}]")
    if n == 1:
        sorted_p = np.ones((x_new.size, 1))
    elif n <= 3:
        sorted_p = _polynomial_matrix(xs, x_new)
    else:
        h = np.diff(xs)  # [n-1]
        # second derivatives M = Q y at the knots: n equations (n-2 continuity + 2 not-a-knot)
        a = np.zeros((n, n))
        b = np.zeros((n, n))
        for i in range(1, n - 1):
            a[i, i - 1], a[i, i], a[i, i + 1] = h[i - 1], 2.0 * (h[i - 1] + h[i]), h[i]
            b[i, i - 1], b[i, i], b[i, i + 1] = 6.0 / h[i - 1], -6.0 / h[i - 1] - 6.0 / h[i], 6.0 / h[i]
        # not-a-knot: the third derivative is continuous at the second and the second-to-last knot
        a[0, 0], a[0, 1], a[0, 2] = -1.0 / h[0], 1.0 / h[0] + 1.0 / h[1], -1.0 / h[1]
        a[n - 1, n - 3], a[n - 1, n - 2], a[n - 1, n - 1] = -1.0 / h[n - 3], 1.0 / h[n - 3] + 1.0 / h[n - 2], \
            -1.0 / h[n - 2]
        q = np.linalg.solve(a, b)  # [n, n]
        seg = np.clip(np.searchsorted(xs, x_new, side="right") - 1, 0, n - 2)
        left, right, width = xs[seg], xs[seg + 1], h[seg]
        u, w = right - x_new, x_new - left
        sorted_p = ((u ** 3 / (6.0 * width) - u * width / 6.0)[:, None] * q[seg]
                    + (w ** 3 / (6.0 * width) - w * width / 6.0)[:, None] * q[seg + 1])
        rows = np.arange(x_new.size)
        sorted_p[rows, seg] += u / width
        sorted_p[rows, seg + 1] += w / width
    for i, x in enumerate(x_new):  # exact rows at the knots themselves
        hit = np.flatnonzero(np.abs(xs - x) <= _SAME_POINT_RTOL * span)
        if hit.size:
            sorted_p[i] = 0.0
            sorted_p[i, hit[0]] = 1.0
    p = np.zeros_like(sorted_p)
    p[:, order] = sorted_p
    return p


def _nearest_correlation(corr: np.ndarray) -> np.ndarray:
    """A symmetric PSD matrix with unit diagonal close to ``corr`` (eigenvalues clipped at 0, then rescaled)."""
    corr = 0.5 * (corr + corr.T)
    np.fill_diagonal(corr, 1.0)
    vals, vecs = np.linalg.eigh(corr)
    if vals[0] < 0:
        corr = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
        d = np.sqrt(np.clip(np.diag(corr), 1e-300, None))
        corr = corr / np.outer(d, d)
        corr = 0.5 * (corr + corr.T)
        np.fill_diagonal(corr, 1.0)
    return corr


def resample_gram(stats: GramStats, new_grid: StepGrid,
                  range_tolerance: float = DEFAULT_RANGE_TOLERANCE) -> GramStats:
    """``stats`` interpolated onto ``new_grid`` (see the module docstring). Counts and roles are kept.

    Raises ValueError when the new grid's evaluation sigmas leave the calibrated range by more than
    ``range_tolerance`` times its span, or when the statistics cannot be interpolated (fewer than 2 steps, a step
    with zero output energy).
    """
    old = stats.grid.array[:-1]
    new = new_grid.array[:-1]
    if old.size < 2:
        raise ValueError(f"cannot resample a calibration of {old.size} step: it holds no sigma dependence")
    lo, hi = float(old.min()), float(old.max())
    tol = range_tolerance * (hi - lo)
    if new.min() < lo - tol or new.max() > hi + tol:
        raise ValueError(
            f"the run's sigmas [{new.min():.4g}, {new.max():.4g}] leave the calibrated range [{lo:.4g}, {hi:.4g}]: "
            f"resampling only interpolates. Calibrate on a grid that covers this run (e.g. denoise 1.0 and the same "
            f"scheduler), or sample within the calibrated range")
    new = np.clip(new, lo, hi)
    num_roles, s_old = len(stats.roles), old.size
    energy = np.diag(stats.gram)
    if np.any(energy <= 0):
        bad = int(np.flatnonzero(energy <= 0)[0])
        raise ValueError(f"cannot resample: role {stats.roles[bad // s_old]!r} has zero output energy at step "
                         f"{bad % s_old}; the calibration recorded no signal there")
    interp = spline_matrix(old, new)  # [S_new, S_old]
    joint = np.kron(np.eye(num_roles), interp)  # [R*S_new, R*S_old], acts on every role block alike
    log_norm = np.log(np.sqrt(energy))
    corr = stats.gram / np.exp(log_norm[:, None] + log_norm[None, :])
    new_norm = np.exp(joint @ log_norm)
    new_corr = _nearest_correlation(joint @ corr @ joint.T)
    gram = np.outer(new_norm, new_norm) * new_corr
    gram = 0.5 * (gram + gram.T)
    return GramStats(gram, stats.sample_count, stats.element_count, new_grid, stats.roles)
