"""The expected error of the final latent for a schedule, from the calibration Gram matrix, and a search over
schedules that minimises it.

Formula. Euler integrates x_final = x_T + sum_s d_s F_s (d_s = dsigma_s). With computed steps C, a skipped step
s is forecast with the direct weights over the computed steps BEFORE it (the only outputs a run has when it
reaches s): F_hat_s = sum_j w^(s)_j F_{P(s)_j}, w^(s) = fit.direct_weights(G, s, P(s), ridge), P(s) = C ∩ [0, s).
The final-latent error is therefore

    e = sum_{s not in C} d_s (F_hat_s - F_s) = sum_i c_i F_i,   c[s] = -d_s (s skipped),
                                                              c[j] = sum_{s skipped} d_s w^(s)_j (j computed)

and E||e||^2 = c^T G c exactly. ``step_weights`` replaces |d_s| by any per-step weight (e.g. how much an error
injected at step s grows through the rest of sampling). All dsigma share one sign, so |d_s| and d_s give the
same quadratic form.

Skipped steps that share the same last computed predecessor share P(s), so one schedule costs K small ridge
solves (one per prefix of C) with a summed right-hand side: c[P] += A_P^{-1} G[P, T] d_T. The search batches
those solves over every candidate move of a sweep.

Search: start from a given schedule (the even one), then best-improvement sweeps over "move one non-guard
computed step to any free step", accepting a move only when the exact error strictly decreases, until no move
improves or ``max_sweeps`` is reached. The result is never worse than the start.

State: none (pure functions). Memory: a few [candidates, S] float64 arrays per sweep (S=50: ~400 x 50).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .grid import StepGrid

DEFAULT_MAX_SWEEPS = 200
# a move must lower the error by more than this fraction to count: float noise must not cycle the search
_STRICT_RTOL = 1e-12


def default_step_weights(grid: StepGrid) -> np.ndarray:
    """float64 [S]: |dsigma_s|, how far Euler carries step s's output into the final latent."""
    return np.abs(grid.dsigma())


def _check_inputs(gram: np.ndarray, grid: StepGrid, step_weights) -> tuple[np.ndarray, np.ndarray]:
    num_steps = grid.num_steps
    g = np.asarray(gram, dtype=np.float64)
    if g.shape != (num_steps, num_steps):
        raise ValueError(
            f"the Gram matrix must be [S, S] = [{num_steps}, {num_steps}] for this {num_steps}-step grid, got"
            f" {list(g.shape)}; for a file with several roles pass one role's block or their sum"
        )
    if not np.all(np.isfinite(g)):
        raise ValueError("the Gram matrix holds NaN or inf values: recalibrate")
    weights = default_step_weights(grid) if step_weights is None else np.asarray(step_weights, dtype=np.float64)
    if weights.shape != (num_steps,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"step_weights must be {num_steps} finite values >= 0, got shape {list(weights.shape)}")
    return g, weights


def _check_computed(computed: Sequence[int], num_steps: int) -> tuple[int, ...]:
    steps = tuple(int(s) for s in computed)
    if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])) or steps[-1] >= num_steps:
        raise ValueError(
            f"computed steps must be strictly increasing in 0..{num_steps - 1} and start at step 0 (a forecast"
            f" needs history), got {steps}"
        )
    return steps


def _ridge_solve_rhs(a: np.ndarray, rhs: np.ndarray, ridge: float) -> np.ndarray:
    """x = (A + ridge * mean(diag A) I)^{-1} rhs, the same regularisation as ``fit.ridge_solve``; ridge 0 is the
    minimum-norm least-squares solution. a: [m, m], rhs: [m] -> [m]."""
    if ridge == 0:
        return np.linalg.lstsq(a, rhs, rcond=None)[0]
    scale = float(np.trace(a)) / a.shape[0]
    return np.linalg.solve(a + ridge * max(scale, 1e-300) * np.eye(a.shape[0]), rhs)


def final_error_coefficients(
    gram: np.ndarray, grid: StepGrid, computed: Sequence[int], ridge: float, step_weights=None
) -> np.ndarray:
    """float64 [S]: the vector c with final-latent error e = sum_i c_i F_i (see the module docstring)."""
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    g, d = _check_inputs(gram, grid, step_weights)
    num_steps = grid.num_steps
    steps = _check_computed(computed, num_steps)
    coef = np.zeros(num_steps, dtype=np.float64)
    bounds = list(steps[1:]) + [num_steps]
    for m, (last, nxt) in enumerate(zip(steps, bounds), start=1):
        targets = np.arange(last + 1, nxt)  # skipped steps whose history is steps[:m]
        if targets.size == 0:
            continue
        prefix = list(steps[:m])
        rhs = g[np.ix_(prefix, targets)] @ d[targets]  # [m]
        coef[prefix] += _ridge_solve_rhs(g[np.ix_(prefix, prefix)], rhs, ridge)
        coef[targets] -= d[targets]
    return coef


def expected_final_error(
    gram: np.ndarray, grid: StepGrid, computed: Sequence[int], ridge: float, step_weights=None
) -> float:
    """E||x_final(forecast) - x_final(true)||^2 = c^T G c for the computed steps ``computed`` (same units as G).

    gram: float64 [S, S]; computed: strictly increasing, starting at 0; step_weights: float64 [S] or None
    (|dsigma|).
    """
    coef = final_error_coefficients(gram, grid, computed, ridge, step_weights)
    return float(coef @ np.asarray(gram, dtype=np.float64) @ coef)


def _batched_errors(g: np.ndarray, d: np.ndarray, schedules: np.ndarray, ridge: float) -> np.ndarray:
    """float64 [n]: expected_final_error for each row of ``schedules`` (int [n, K], each row sorted)."""
    n, k = schedules.shape
    num_steps = g.shape[0]
    rows = np.arange(n)[:, None]
    # segment[n, s] = m when step s is skipped and its last computed predecessor is schedules[n, m - 1]; 0 if computed
    is_computed = np.zeros((n, num_steps), dtype=bool)
    is_computed[rows, schedules] = True
    segment = np.cumsum(is_computed, axis=1)
    segment[is_computed] = 0
    coef = np.where(is_computed, 0.0, -d[None, :])  # [n, S]
    for m in range(1, k + 1):
        weighted = np.where(segment == m, d[None, :], 0.0)  # [n, S]: d on the targets of prefix m
        prefix = schedules[:, :m]  # [n, m]
        # [n, m] = G[P, T] d_T; einsum, not BLAS: tiny products, where BLAS threads cost more than they save
        rhs = np.take_along_axis(np.einsum("nt,it->ni", weighted, g), prefix, axis=1)
        a = g[prefix[:, :, None], prefix[:, None, :]]  # [n, m, m]
        if ridge == 0:
            x = np.einsum("nij,nj->ni", np.linalg.pinv(a), rhs)
        else:
            scale = np.maximum(np.trace(a, axis1=1, axis2=2) / m, 1e-300)
            a = a + (ridge * scale)[:, None, None] * np.eye(m)[None]
            x = np.linalg.solve(a, rhs[..., None])[..., 0]
        coef[rows, prefix] += x
    return np.einsum("ni,ij,nj->n", coef, g, coef)


def optimize_schedule(
    gram: np.ndarray,
    grid: StepGrid,
    start: Sequence[int],
    fixed: Sequence[int],
    ridge: float,
    step_weights=None,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
) -> tuple[int, ...]:
    """Local search from ``start`` (which must contain every step of ``fixed``, the guards, and step 0).

    Returns a schedule with as many steps as ``start``, containing ``fixed``, whose expected_final_error is
    never larger than that of ``start``.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if max_sweeps < 0:
        raise ValueError(f"max_sweeps must be >= 0, got {max_sweeps}")
    g, d = _check_inputs(gram, grid, step_weights)
    num_steps = grid.num_steps
    best = _check_computed(sorted(set(int(s) for s in start)), num_steps)
    fixed_set = {int(s) for s in fixed} | {0}
    if not fixed_set <= set(best):
        raise ValueError(f"the start schedule {best} must contain the guard steps {sorted(fixed_set)}")
    best_err = expected_final_error(g, grid, best, ridge, d)
    for _ in range(max_sweeps):
        movable = [s for s in best if s not in fixed_set]
        free = [s for s in range(num_steps) if s not in best]
        if not movable or not free:
            break
        candidates = np.array(
            [sorted((set(best) - {old}) | {new}) for old in movable for new in free], dtype=np.int64
        )  # [n, K]
        errors = _batched_errors(g, d, candidates, ridge)
        errors[~np.isfinite(errors)] = np.inf
        order = np.argsort(errors, kind="stable")
        improved = False
        # confirm with the exact evaluation: the batched one can differ from it by rounding
        for idx in order[:3]:
            if not errors[idx] < best_err:
                break
            cand = tuple(int(s) for s in candidates[idx])
            err = expected_final_error(g, grid, cand, ridge, d)
            if err < best_err - _STRICT_RTOL * abs(best_err):
                best, best_err, improved = cand, err, True
                break
        if not improved:
            break
    return best
