"""The optimized placement's search: expected final error equal to the error measured on the trajectories, step
weights, exactly K steps with guards kept and never worse than even, a local minimum, the spread (mean + k std)
objective."""
import numpy as np
import pytest

from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.schedules.optimizer import Spread, final_error_coefficients
from comfyui_l2p.predictors.schedules.placements import even_schedule, expected_final_error, optimized_schedule
from schedule_cases import (
    brute_force_coefficients, flux_like_grid, gram_of, materialised_final_error, random_gram, smooth_trajectories,
)


# ------------------------------------------------------------------ expected final error
@pytest.mark.parametrize("ridge", [0.0, 1e-3, 0.1])
def test_expected_final_error_equals_materialised_error(ridge):
    grid = flux_like_grid(30)
    traj = smooth_trajectories(grid, samples=4, dim=64, seed=1)
    for computed in [(0, 1, 5, 9, 14, 20, 26), (0, 3, 4, 17), even_schedule(30, 8, 2, True)]:
        expected = expected_final_error(gram_of(traj), grid, computed, ridge)
        brute = materialised_final_error(traj, grid, computed, ridge)
        assert expected == pytest.approx(brute, rel=1e-10)


def test_expected_final_error_uses_step_weights():
    grid = flux_like_grid(20)
    traj = smooth_trajectories(grid, samples=3, dim=32, seed=2)
    weights = np.random.default_rng(3).uniform(0.1, 2.0, size=20)
    computed = (0, 1, 6, 12)
    expected = expected_final_error(gram_of(traj), grid, computed, 1e-3, step_weights=weights)
    assert expected == pytest.approx(materialised_final_error(traj, grid, computed, 1e-3, weights), rel=1e-10)
    assert expected != pytest.approx(expected_final_error(gram_of(traj), grid, computed, 1e-3), rel=1e-3)
    assert expected_final_error(gram_of(traj), grid, tuple(range(20)), 1e-3) == 0.0


def test_expected_final_error_rejects_bad_inputs():
    grid = StepGrid.uniform(10)
    gram = random_gram(10, 0)
    with pytest.raises(ValueError, match=r"\[10, 10\]"):
        expected_final_error(random_gram(9, 0), grid, (0, 4), 1e-3)
    with pytest.raises(ValueError, match="start at step 0"):
        expected_final_error(gram, grid, (1, 4), 1e-3)
    with pytest.raises(ValueError, match="step_weights"):
        expected_final_error(gram, grid, (0, 4), 1e-3, step_weights=np.ones(9))


# ------------------------------------------------------------------ optimized
def _grams():
    for seed in range(3):
        yield StepGrid.uniform(50), random_gram(50, seed)
    for seed in range(3):
        grid = flux_like_grid(50)
        yield grid, gram_of(smooth_trajectories(grid, samples=4, dim=128, seed=10 + seed, noise=0.02))


@pytest.mark.parametrize("warmup,compute_last", [(2, False), (3, True), (1, False)])
def test_optimized_is_exactly_k_keeps_guards_and_never_worse_than_even(warmup, compute_last):
    improved = 0
    for grid, gram in _grams():
        for k in (7, 9, 11):
            steps = optimized_schedule(gram, grid, k, warmup, compute_last)
            assert len(steps) == k and list(steps) == sorted(set(steps)) and steps[-1] < 50
            assert set(range(warmup)) <= set(steps)
            if compute_last:
                assert 49 in steps
            even = even_schedule(50, k, warmup, compute_last)
            opt_err = expected_final_error(gram, grid, steps, 1e-3)
            even_err = expected_final_error(gram, grid, even, 1e-3)
            assert opt_err <= even_err
            improved += opt_err < even_err
    assert improved > 0  # the search does move away from the even schedule


def test_optimized_is_a_local_minimum():
    # speed is measured by scripts/time_fits.py, not asserted here
    grid = flux_like_grid(50)
    gram = gram_of(smooth_trajectories(grid, samples=4, dim=128, seed=21, noise=0.02))
    for k in range(7, 12):
        steps = optimized_schedule(gram, grid, k, warmup=2, ridge=1e-3)
        best = expected_final_error(gram, grid, steps, 1e-3)
        for old in steps[2:]:  # no single move of a non-guard step improves
            for new in set(range(50)) - set(steps):
                cand = sorted((set(steps) - {old}) | {new})
                assert expected_final_error(gram, grid, cand, 1e-3) >= best * (1 - 1e-9)


def test_optimized_honours_step_weights():
    grid = StepGrid.uniform(30)
    gram = gram_of(smooth_trajectories(grid, samples=3, dim=64, seed=5, noise=0.05))
    late = np.zeros(30)
    late[20:] = 1.0  # only errors in the last third count: computed steps should move there
    steps = optimized_schedule(gram, grid, 8, warmup=2, step_weights=late)
    even = even_schedule(30, 8, 2)
    assert sum(s >= 18 for s in steps) > sum(s >= 18 for s in even)


def _spread_case():
    """Trajectories that mostly agree and one that varies faster: the mean and the spread want other schedules."""
    grid = flux_like_grid(30)
    calm = smooth_trajectories(grid, samples=5, dim=64, seed=31, noise=0.01)
    wild = smooth_trajectories(grid, samples=1, dim=64, seed=32, noise=0.2)
    grams = np.stack([gram_of(t[None]) for t in np.concatenate([calm, wild])])
    return grid, grams


def test_spread_objective_is_mean_plus_k_std_of_the_per_trajectory_errors():
    grid, grams = _spread_case()
    steps = (0, 3, 9, 14, 20, 26)
    per = np.array([_own_error(grams.sum(0), g, grid, steps) for g in grams])
    coef = final_error_coefficients(grams.sum(0), grid, steps, 1e-3)
    for k in (0.0, 1.5):
        got = Spread(grams, k).objective(coef[None])[0]
        assert got == pytest.approx(per.mean() + k * per.std(), rel=1e-12)


def _own_error(fit_gram, own_gram, grid, steps):
    """Trajectory n's final-latent error when the weights are fitted on ``fit_gram``: c^T G_n c, by brute force."""
    coef = brute_force_coefficients(fit_gram, grid, steps, 1e-3)
    return float(coef @ own_gram @ coef)


def test_spread_search_with_k_zero_is_the_mean_search_and_k_buys_the_worst_trajectory():
    grid, grams = _spread_case()
    pooled = grams.sum(0)
    mean = optimized_schedule(pooled, grid, 6, warmup=1, ridge=1e-3)
    assert optimized_schedule(pooled, grid, 6, warmup=1, ridge=1e-3, spread=Spread(grams, 0.0)) == mean
    robust = optimized_schedule(pooled, grid, 6, warmup=1, ridge=1e-3, spread=Spread(grams, 3.0))
    worst = lambda steps: max(_own_error(pooled, g, grid, steps) for g in grams)  # noqa: E731
    even = even_schedule(30, 6, 1)
    objective = lambda steps: Spread(grams, 3.0).objective(  # noqa: E731
        final_error_coefficients(pooled, grid, steps, 1e-3)[None])[0]
    assert objective(robust) <= objective(even) and objective(robust) < objective(mean)
    assert robust != mean and worst(robust) < worst(mean)
    with pytest.raises(ValueError, match="at least 2"):
        Spread(grams[:1], 1.0)
    with pytest.raises(ValueError, match="Spread's Grams"):
        optimized_schedule(pooled, grid, 6, warmup=1, spread=Spread(grams[:, :5, :5], 1.0))


def test_optimized_with_every_step_guarded_returns_the_guards():
    grid = StepGrid.uniform(10)
    assert optimized_schedule(random_gram(10, 1), grid, 3, warmup=2, compute_last=True) == (0, 1, 9)
    assert optimized_schedule(random_gram(10, 1), grid, 10, warmup=2) == tuple(range(10))
