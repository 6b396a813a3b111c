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

Several streams (``mix``). Under CFG the sampler integrates the guided output u + g (c - u), not a stream: with R
streams, each forecast from its own history with weights fitted on its own diagonal block G_rr of the joint Gram
[R*S, R*S], and the sampler's output error sum_r m_r e_r (cond g, uncond 1 - g), the final-latent error is
e = sum_r m_r sum_i c^r_i F^r_i, so E||e||^2 = v^T G v with v = concat_r(m_r c^r). The cross blocks G_rq matter:
the streams' errors are correlated and guidance weights them with opposite signs, so this is the error of the
image, not the sum of the streams' errors. With one stream and m = (1,) it is the formula above.

Skipped steps that share the same last computed predecessor share P(s), so one schedule costs K small ridge
solves (one per prefix of C) with a summed right-hand side: c[P] += A_P^{-1} G[P, T] d_T. The search batches
those solves over every candidate move of a sweep.

Search: start from a given schedule (the even one), then best-improvement sweeps over "move one non-guard
computed step to any free step", accepting a move only when the exact error strictly decreases, until no move
improves or ``max_sweeps`` is reached. The result is never worse than the start.

Spread (``Spread``): the same coefficients v give each calibration trajectory n its own error v^T G_n v (G_n its
own Gram, ``calibration.trajectory_grams``). With a Spread the search minimises mean_n + k * std_n of those errors
over the sampled trajectories instead of the mean under G: a schedule for the calibration's unlucky trajectories.

State: none (pure functions). Memory: a few [candidates, S] float64 arrays per sweep (S=50: ~400 x 50).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..engine.grid import StepGrid

DEFAULT_MAX_SWEEPS = 200
# a move must lower the error by more than this fraction to count: float noise must not cycle the search
_STRICT_RTOL = 1e-12


@dataclass(frozen=True, eq=False)
class Spread:
    """The search's robust objective: mean + k * std of the per-trajectory errors under ``grams`` (float64
    [T, R*S, R*S], the same layout as the search's Gram, T >= 2)."""

    grams: np.ndarray
    k: float

    def __post_init__(self) -> None:
        grams = np.asarray(self.grams, dtype=np.float64)
        if grams.ndim != 3 or grams.shape[0] < 2 or grams.shape[1] != grams.shape[2]:
            raise ValueError(f"a Spread needs at least 2 per-trajectory Grams [T, K, K], got {list(grams.shape)}")
        if not (np.isfinite(self.k) and self.k >= 0):
            raise ValueError(f"the Spread's k must be a finite number >= 0, got {self.k!r}")
        object.__setattr__(self, "grams", grams)

    def objective(self, coef: np.ndarray) -> np.ndarray:
        """float64 [n]: mean + k * std over the trajectories of coef[i] G_t coef[i], for coef [n, K]."""
        per = np.einsum("ni,tij,nj->nt", coef, self.grams, coef)
        return per.mean(axis=1) + self.k * per.std(axis=1)


def default_step_weights(grid: StepGrid) -> np.ndarray:
    """float64 [S]: |dsigma_s|, how far Euler carries step s's output into the final latent."""
    return np.abs(grid.dsigma())


def _check_mix(mix) -> np.ndarray:
    m = np.asarray((1.0,) if mix is None else mix, dtype=np.float64)
    if m.ndim != 1 or m.size < 1 or not np.all(np.isfinite(m)):
        raise ValueError(f"mix must be one finite weight per stream, got {mix!r}")
    return m


def _check_inputs(gram: np.ndarray, grid: StepGrid, step_weights, mix=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num_steps = grid.num_steps
    m = _check_mix(mix)
    size = m.size * num_steps
    g = np.asarray(gram, dtype=np.float64)
    if g.shape != (size, size):
        raise ValueError(
            f"the Gram matrix must be [R*S, R*S] = [{size}, {size}] for {m.size} stream(s) on this {num_steps}-step"
            f" grid, got {list(g.shape)}; for a file with several roles pass one role's block, their sum, or the"
            f" joint Gram with one mix weight per role"
        )
    if not np.all(np.isfinite(g)):
        raise ValueError("the Gram matrix holds NaN or inf values: recalibrate")
    weights = default_step_weights(grid) if step_weights is None else np.asarray(step_weights, dtype=np.float64)
    if weights.shape != (num_steps,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"step_weights must be {num_steps} finite values >= 0, got shape {list(weights.shape)}")
    return g, weights, m


def _check_computed(computed: Sequence[int], num_steps: int) -> tuple[int, ...]:
    steps = tuple(int(s) for s in computed)
    if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])) or steps[-1] >= num_steps:
        raise ValueError(
            f"computed steps must be strictly increasing in 0..{num_steps - 1} and start at step 0 (a forecast"
            f" needs history), got {steps}"
        )
    return steps


def _ridge_solve_rhs(a: np.ndarray, rhs: np.ndarray, ridge: float, prior_rhs: np.ndarray | None = None) -> np.ndarray:
    """x = (A + ridge * mean(diag A) I)^{-1} (rhs + ridge * mean(diag A) prior_rhs), the same regularisation as
    ``fit.ridge_solve`` (prior_rhs: the targets' prior weights, summed like rhs); ridge 0 is the minimum-norm
    least-squares solution. a: [m, m], rhs: [m] -> [m]."""
    if ridge == 0:
        return np.linalg.lstsq(a, rhs, rcond=None)[0]
    scale = max(float(np.trace(a)) / a.shape[0], 1e-300)
    if prior_rhs is not None:
        rhs = rhs + ridge * scale * prior_rhs
    return np.linalg.solve(a + ridge * scale * np.eye(a.shape[0]), rhs)


def _stream_coefficients(g: np.ndarray, d: np.ndarray, steps: tuple[int, ...], ridge: float,
                         prior=None, grid: StepGrid | None = None) -> np.ndarray:
    """float64 [S]: c for one stream whose Gram is g [S, S] (see the module docstring); ``prior`` (a
    LinearPredictor on ``grid``) is what the fit shrinks toward (``fit.ridge_solve``)."""
    num_steps = g.shape[0]
    coef = np.zeros(num_steps, dtype=np.float64)
    bounds = list(steps[1:]) + [num_steps]
    for m, (last, nxt) in enumerate(zip(steps, bounds), start=1):
        targets = np.arange(last + 1, nxt)  # skipped steps whose history is steps[:m]
        if targets.size == 0:
            continue
        prefix = list(steps[:m])
        rhs = g[np.ix_(prefix, targets)] @ d[targets]  # [m]
        prior_rhs = None if prior is None else sum(d[t] * prior.coefficients(int(t), prefix, grid) for t in targets)
        coef[prefix] += _ridge_solve_rhs(g[np.ix_(prefix, prefix)], rhs, ridge, prior_rhs)
        coef[targets] -= d[targets]
    return coef


def shrink_cross_streams(gram: np.ndarray, streams: int, keep: float) -> np.ndarray:
    """float64 [R*S, R*S]: the joint Gram with its cross-stream blocks scaled by ``keep`` in [0, 1], i.e.
    keep * G + (1 - keep) * blockdiag(G), positive semi-definite like G.

    Why: the cross blocks say how much the streams' forecast errors cancel in the guided output. They are measured
    teacher-forced, and a run that forecasts drifts away from them; trusting them fully (keep 1) lets the schedule
    search bet on cancellations that do not happen, ignoring them (keep 0) wastes the information. keep = 0.5 is
    L2P Cache's default under CFG (nodes.setups.CfgSchedule says what was measured).
    """
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be in [0, 1], got {keep}")
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] % streams:
        raise ValueError(f"the joint Gram must be square with a multiple of {streams} rows, got {list(g.shape)}")
    out = keep * g
    for r, block in enumerate(_blocks(g, streams)):
        s = block.shape[0]
        out[r * s:(r + 1) * s, r * s:(r + 1) * s] = block
    return out


def _blocks(g: np.ndarray, streams: int) -> list[np.ndarray]:
    """The diagonal [S, S] blocks of a joint [R*S, R*S] Gram: what each stream's own fit sees."""
    s = g.shape[0] // streams
    return [g[r * s:(r + 1) * s, r * s:(r + 1) * s] for r in range(streams)]


def final_error_coefficients(
    gram: np.ndarray, grid: StepGrid, computed: Sequence[int], ridge: float, step_weights=None, mix=None,
    prior=None,
) -> np.ndarray:
    """float64 [R*S]: the vector v with final-latent error e = sum_i v_i F_i (see the module docstring).

    gram: [S, S] (mix None) or the joint [R*S, R*S] of R streams with ``mix`` one weight per stream.
    prior: a LinearPredictor the fits shrink toward (``fit.ridge_solve``); None: plain ridge.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    g, d, m = _check_inputs(gram, grid, step_weights, mix)
    steps = _check_computed(computed, grid.num_steps)
    return np.concatenate([w * _stream_coefficients(block, d, steps, ridge, prior, grid)
                           for w, block in zip(m, _blocks(g, m.size))])


def expected_final_error(
    gram: np.ndarray, grid: StepGrid, computed: Sequence[int], ridge: float, step_weights=None, mix=None
) -> float:
    """E||x_final(forecast) - x_final(true)||^2 = v^T G v for the computed steps ``computed`` (same units as G).

    gram: float64 [S, S], or the joint [R*S, R*S] with ``mix`` (R weights, e.g. (g, 1 - g) for CFG's cond and
    uncond); computed: strictly increasing, starting at 0; step_weights: float64 [S] or None (|dsigma|).
    """
    coef = final_error_coefficients(gram, grid, computed, ridge, step_weights, mix)
    return float(coef @ np.asarray(gram, dtype=np.float64) @ coef)


def _batched_errors(g: np.ndarray, d: np.ndarray, schedules: np.ndarray, ridge: float, mix: np.ndarray,
                    spread: Spread | None = None) -> np.ndarray:
    """float64 [n]: the search's objective for each row of ``schedules`` (int [n, K], each row sorted):
    expected_final_error, or the Spread's objective."""
    coef = np.concatenate([w * _batched_stream_coefficients(block, d, schedules, ridge)
                           for w, block in zip(mix, _blocks(g, mix.size))], axis=1)  # [n, R*S]
    if spread is not None:
        return spread.objective(coef)
    return np.einsum("ni,ij,nj->n", coef, g, coef)


def _exact_objective(g: np.ndarray, grid: StepGrid, steps, ridge: float, d, m, spread: Spread | None) -> float:
    if spread is None:
        return expected_final_error(g, grid, steps, ridge, d, m)
    return float(spread.objective(final_error_coefficients(g, grid, steps, ridge, d, m)[None])[0])


def _batched_stream_coefficients(g: np.ndarray, d: np.ndarray, schedules: np.ndarray, ridge: float) -> np.ndarray:
    """float64 [n, S]: _stream_coefficients for each row of ``schedules`` (one stream, g [S, S])."""
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
    return coef


def optimize_schedule(
    gram: np.ndarray,
    grid: StepGrid,
    start: Sequence[int],
    fixed: Sequence[int],
    ridge: float,
    step_weights=None,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    mix=None,
    spread: Spread | None = None,
) -> tuple[int, ...]:
    """Local search from ``start`` (which must contain every step of ``fixed``, the guards, and step 0).

    Returns a schedule with as many steps as ``start``, containing ``fixed``, whose objective (expected_final_error,
    or the ``spread``'s mean + k * std) is never larger than that of ``start``.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if max_sweeps < 0:
        raise ValueError(f"max_sweeps must be >= 0, got {max_sweeps}")
    g, d, m = _check_inputs(gram, grid, step_weights, mix)
    if spread is not None and spread.grams.shape[1:] != g.shape:
        raise ValueError(f"the Spread's Grams are {list(spread.grams.shape[1:])}, the search's Gram {list(g.shape)}")
    num_steps = grid.num_steps
    best = _check_computed(sorted(set(int(s) for s in start)), num_steps)
    fixed_set = {int(s) for s in fixed} | {0}
    if not fixed_set <= set(best):
        raise ValueError(f"the start schedule {best} must contain the guard steps {sorted(fixed_set)}")
    best_err = _exact_objective(g, grid, best, ridge, d, m, spread)
    for _ in range(max_sweeps):
        movable = [s for s in best if s not in fixed_set]
        free = [s for s in range(num_steps) if s not in best]
        if not movable or not free:
            break
        candidates = np.array(
            [sorted((set(best) - {old}) | {new}) for old in movable for new in free], dtype=np.int64
        )  # [n, K]
        errors = _batched_errors(g, d, candidates, ridge, m, spread)
        errors[~np.isfinite(errors)] = np.inf
        order = np.argsort(errors, kind="stable")
        improved = False
        # confirm with the exact evaluation: the batched one can differ from it by rounding
        for idx in order[:3]:
            if not errors[idx] < best_err:
                break
            cand = tuple(int(s) for s in candidates[idx])
            err = _exact_objective(g, grid, cand, ridge, d, m, spread)
            if err < best_err - _STRICT_RTOL * abs(best_err):
                best, best_err, improved = cand, err, True
                break
        if not improved:
            break
    return best
