"""Fits chosen by leave-one-trajectory-out validation, and the ridge that shrinks toward a training-free
predictor: exact against brute force on materialised trajectories."""
import numpy as np
import pytest

from comfyui_l2p.predictors.calibration import fit
from comfyui_l2p.predictors.calibration.validation import FitCandidate, choose_fit, leave_one_out_scores
from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.forecasters.l2p import L2PDirect
from comfyui_l2p.predictors.forecasters.taylorseer import TaylorSeer
from comfyui_l2p.predictors.schedules.optimizer import final_error_coefficients
from schedule_cases import brute_force_coefficients

GRID = StepGrid.uniform(12)
COMPUTED = (0, 3, 7, 10)


def trajectories(seed: int, n: int = 5, dim: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(1, 0, GRID.num_steps)[None, :, None]
    return np.sin(2 * t * rng.normal(size=(n, 1, dim)) + rng.normal(size=(n, 1, dim))) \
        + 0.05 * rng.normal(size=(n, GRID.num_steps, dim))


def grams_of(x: np.ndarray) -> np.ndarray:
    return np.einsum("nsd,ntd->nst", x, x)


def test_the_prior_shrinks_toward_the_training_free_weights():
    g = grams_of(trajectories(0)).sum(0)
    prior = TaylorSeer(order=1).coefficients(9, COMPUTED[:3], GRID)
    w_small = fit.direct_weights(g, 9, COMPUTED[:3], 1e-8, prior=prior)
    w_large = fit.direct_weights(g, 9, COMPUTED[:3], 1e6, prior=prior)
    np.testing.assert_allclose(w_small, fit.direct_weights(g, 9, COMPUTED[:3], 1e-8), atol=1e-4)
    np.testing.assert_allclose(w_large, prior, atol=1e-4)
    # the closed form: argmin ||F_t - W F||^2 + lam s ||w - prior||^2 solves (A + lam s I) w = b + lam s prior
    a, b = g[np.ix_(COMPUTED[:3], COMPUTED[:3])], g[list(COMPUTED[:3]), 9]
    s = np.trace(a) / 3
    np.testing.assert_allclose(fit.direct_weights(g, 9, COMPUTED[:3], 0.1, prior=prior),
                               np.linalg.solve(a + 0.1 * s * np.eye(3), b + 0.1 * s * prior), rtol=1e-12)
    shrunk = L2PDirect(g, ridge=0.1, prior=TaylorSeer(order=1))
    np.testing.assert_allclose(shrunk.coefficients(9, COMPUTED[:3], GRID),
                               fit.direct_weights(g, 9, COMPUTED[:3], 0.1, prior=prior), rtol=1e-12)


def test_final_error_coefficients_with_a_prior_match_the_per_step_fits():
    g = grams_of(trajectories(1)).sum(0)
    prior = TaylorSeer(order=1)
    expected = brute_force_coefficients(g, GRID, COMPUTED, 0.05, prior=prior)
    np.testing.assert_allclose(final_error_coefficients(g, GRID, COMPUTED, 0.05, prior=prior), expected, rtol=1e-10)


def test_leave_one_out_scores_equal_brute_force_refits():
    x = trajectories(2)
    grams = grams_of(x)
    candidates = (FitCandidate(1e-6), FitCandidate(1e-1), FitCandidate(1e-2, TaylorSeer(order=1)))
    scores = leave_one_out_scores({"cond": grams.sum(0)}, {"cond": grams}, GRID, COMPUTED, candidates)
    d = np.abs(GRID.dsigma())
    for cand, score in zip(candidates, scores):
        brute = 0.0
        for n in range(x.shape[0]):
            rest = np.delete(x, n, axis=0)
            g_rest = grams_of(rest).sum(0)
            err = np.zeros(x.shape[2])
            for step in range(GRID.num_steps):
                if step in COMPUTED:
                    continue
                past = [c for c in COMPUTED if c < step]
                prior = None if cand.prior is None else cand.prior.coefficients(step, past, GRID)
                w = fit.direct_weights(g_rest, step, past, cand.ridge, prior=prior)
                err += d[step] * (w @ x[n, past] - x[n, step])
            brute += float(err @ err)
        assert score == pytest.approx(brute, rel=1e-8)
    best, _ = choose_fit({"cond": grams.sum(0)}, {"cond": grams}, GRID, COMPUTED, candidates)
    assert best == candidates[int(np.argmin(scores))]
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_scores({"cond": grams[0]}, {"cond": grams[:1]}, GRID, COMPUTED, candidates)
