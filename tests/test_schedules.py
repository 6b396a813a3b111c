"""Schedules: computed counts, guards, progressive (exact K), optimized (never worse than even, exact expected
error), adaptive controller, config validation and plan_schedule."""

import numpy as np
import pytest

from comfyui_l2p.predictors.calibration import fit
from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.schedules.optimizer import Spread, final_error_coefficients
from comfyui_l2p.predictors.schedules.placements import (
    PUBLISHED_L2P_50,
    AdaptiveController,
    Placement,
    ScheduleConfig,
    adaptive_controller,
    even_schedule,
    expected_final_error,
    optimized_schedule,
    plan_schedule,
    progressive_schedule,
    published_schedule,
    spectrum_progressive_steps,
)


# ------------------------------------------------------------------ synthetic calibration data
def flux_like_grid(num_steps: int, shift: float = 3.0) -> StepGrid:
    """Shifted flow-matching sigmas (non-uniform dsigma), as FLUX/SD3 schedules use."""
    t = np.linspace(1.0, 0.0, num_steps + 1)
    return StepGrid(tuple(shift * t / (1 + (shift - 1) * t)))


def smooth_trajectories(grid: StepGrid, samples: int, dim: int, seed: int, noise: float = 0.01) -> np.ndarray:
    """float64 [samples, S, dim]: outputs that vary smoothly with sigma, plus a little per-step noise."""
    rng = np.random.default_rng(seed)
    sig = grid.array[:-1]
    basis = np.stack([np.cos(np.pi * m * sig / sig[0]) for m in range(6)], axis=1)  # [S, 6]
    coef = rng.normal(size=(samples, 6, dim)) / (1.0 + np.arange(6))[None, :, None] ** 1.5
    return np.einsum("sm,nmd->nsd", basis, coef) + noise * rng.normal(size=(samples, grid.num_steps, dim))


def gram_of(traj: np.ndarray) -> np.ndarray:
    return np.einsum("nsd,ntd->st", traj, traj)


def random_gram(num_steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(num_steps, num_steps + 3))
    return a @ a.T


def materialised_final_error(traj, grid, computed, ridge, step_weights=None) -> float:
    """Forecast every skipped step from the computed steps before it, integrate the errors with Euler's dsigma
    (or step_weights) and sum the squared error of the final latent over all samples."""
    d = np.abs(grid.dsigma()) if step_weights is None else step_weights
    gram = gram_of(traj)
    err = np.zeros((traj.shape[0], traj.shape[2]))
    for s in range(grid.num_steps):
        if s in computed:
            continue
        past = [c for c in computed if c < s]
        w = fit.direct_weights(gram, s, past, ridge)
        err += d[s] * (np.einsum("j,njd->nd", w, traj[:, past]) - traj[:, s])
    return float(np.sum(err**2))


# ------------------------------------------------------------------ published / even
def test_published_lists_are_the_release_lists():
    assert published_schedule(50, 11) == (0, 1, 2, 4, 6, 9, 14, 23, 30, 37, 44)
    assert published_schedule(50, 9) == (0, 1, 2, 4, 9, 17, 26, 35, 43)
    assert published_schedule(50, 7) == (0, 1, 2, 4, 12, 24, 38)
    assert sorted(len(v) for v in PUBLISHED_L2P_50.values()) == [6, 7, 8, 9, 10, 11]
    with pytest.raises(ValueError, match="50 steps only"):
        published_schedule(28, 7)
    with pytest.raises(ValueError, match="published counts"):
        published_schedule(50, 12)


# ------------------------------------------------------------------ progressive
def test_spectrum_rule_reproduces_the_published_counts():
    # methods.md 2.3: N=2, warm-up 5; alpha 0.75 -> 14 passes, alpha 3 -> 10 passes, alpha 2 -> 11 passes
    assert spectrum_progressive_steps(50, 5, 2, 0.75) == (0, 1, 2, 3, 4, 6, 8, 11, 15, 20, 25, 31, 38, 46)
    assert spectrum_progressive_steps(50, 5, 2, 3.0) == (0, 1, 2, 3, 4, 6, 11, 19, 30, 44)
    assert len(spectrum_progressive_steps(50, 5, 2, 2.0)) == 11


@pytest.mark.parametrize("num_steps", [8, 20, 28, 50, 61])
@pytest.mark.parametrize("warmup", [1, 2, 5])
@pytest.mark.parametrize("compute_last", [False, True])
def test_progressive_gives_exactly_k_with_guards(num_steps, warmup, compute_last):
    first_k = warmup + (1 if compute_last else 0)
    for k in range(first_k, num_steps + 1):
        steps = progressive_schedule(num_steps, k, warmup, compute_last)
        assert len(steps) == k and list(steps) == sorted(set(steps))
        assert set(range(warmup)) <= set(steps) and 0 <= steps[0] and steps[-1] < num_steps
        if compute_last:
            assert num_steps - 1 in steps


def test_progressive_gaps_grow():
    steps = progressive_schedule(50, 10, 2)
    gaps = np.diff(steps[1:])  # after the warm-up
    assert np.all(np.diff(gaps) >= 0), steps
    assert progressive_schedule(50, 14, 5) == (0, 1, 2, 3, 4, 6, 8, 11, 15, 20, 25, 31, 38, 46)


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
    d = np.abs(grid.dsigma())
    coef = np.zeros(grid.num_steps)
    for s in range(grid.num_steps):
        if s in steps:
            continue
        past = [c for c in steps if c < s]
        coef[past] += d[s] * fit.direct_weights(fit_gram, s, past, 1e-3)
        coef[s] -= d[s]
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


# ------------------------------------------------------------------ adaptive
def _run(controller, residual_of_step, num_steps):
    computed = []
    for step in range(num_steps):
        if controller.should_compute(step):
            computed.append(step)
            controller.report_residual(step, residual_of_step(step))
    return computed


def test_adaptive_moves_earlier_above_budget_and_later_below():
    high = AdaptiveController(budget=0.05, min_gap=1, max_gap=10, warmup=2, initial_gap=4)
    low = AdaptiveController(budget=0.05, min_gap=1, max_gap=10, warmup=2, initial_gap=4)
    steps_high = _run(high, lambda s: None if s == 0 else 0.4, 50)
    steps_low = _run(low, lambda s: None if s == 0 else 0.005, 50)
    assert len(steps_high) > len(steps_low)
    assert max(np.diff(steps_high)) == 1  # 8x over budget: every step computed
    assert np.diff(steps_low)[-1] == 10  # 10x under budget: the gap reaches max_gap
    # one report: above budget shrinks the gap, below budget grows it
    c = AdaptiveController(budget=0.1, min_gap=1, max_gap=16, warmup=1, initial_gap=4)
    assert c.should_compute(0) and not c.should_compute(1)
    assert c.next_step() == 4 and c.should_compute(4)
    c.report_residual(4, 0.4)  # h=4, factor 0.9 * 0.5 -> gap 1.8
    assert c.next_step() == 6
    c2 = AdaptiveController(budget=0.1, min_gap=1, max_gap=16, warmup=1, initial_gap=4)
    c2.should_compute(0), c2.should_compute(4)
    c2.report_residual(4, 0.025)  # factor 0.9 * 2 -> gap 7.2
    assert c2.next_step() == 11


def test_adaptive_is_deterministic_decides_once_and_resets():
    residuals = {s: 0.02 + 0.03 * np.sin(s) ** 2 for s in range(40)}
    a = AdaptiveController(budget=0.03, max_gap=6, warmup=3, num_steps=40, compute_last=True)
    first = _run(a, residuals.get, 40)
    a.reset()
    second = _run(a, residuals.get, 40)
    b = AdaptiveController(budget=0.03, max_gap=6, warmup=3, num_steps=40, compute_last=True)
    assert first == second == _run(b, residuals.get, 40)
    assert first[:3] == [0, 1, 2] and first[-1] == 39
    c = AdaptiveController(budget=0.03, max_gap=6, warmup=1, initial_gap=3)
    assert c.should_compute(0) and not c.should_compute(1) and not c.should_compute(1)
    assert c.should_compute(3)
    with pytest.raises(ValueError, match="steps must increase"):
        c.should_compute(2)


def test_adaptive_nonfinite_residual_shrinks_and_bad_args_raise():
    c = AdaptiveController(budget=0.05, min_gap=1, max_gap=8, warmup=1, initial_gap=5)
    c.should_compute(0)
    c.should_compute(5)
    c.report_residual(5, float("nan"))
    assert c.gap == pytest.approx(1.0)  # 5 * min_factor 0.2
    with pytest.raises(ValueError):
        c.report_residual(5, -1.0)
    with pytest.raises(ValueError):
        AdaptiveController(budget=0.0)
    with pytest.raises(ValueError):
        AdaptiveController(budget=0.1, min_gap=3, max_gap=2)
    with pytest.raises(ValueError, match="num_steps"):
        AdaptiveController(budget=0.1, compute_last=True)


# ------------------------------------------------------------------ config and plan
def test_schedule_config_validates():
    assert ScheduleConfig(5.0, "even").placement is Placement.EVEN
    for bad in [dict(speedup=0.5), dict(speedup=float("nan")), dict(warmup=0), dict(residual_budget=0.0),
                dict(min_gap=0), dict(max_gap=0), dict(placement="fastest"), dict(window=0)]:
        kwargs = dict(speedup=5.0, placement=Placement.EVEN) | bad
        with pytest.raises(ValueError):
            ScheduleConfig(**kwargs)
    with pytest.raises(Exception):
        ScheduleConfig(5.0, Placement.EVEN).speedup = 2.0  # frozen


def test_plan_schedule_dispatches_every_fixed_placement():
    grid = StepGrid.uniform(50)
    gram = random_gram(50, 4)
    for speedup, k in [(4.55, 11), (5.0, 10), (7.14, 7)]:
        assert plan_schedule(ScheduleConfig(speedup, Placement.EVEN), grid) == even_schedule(50, k, 2)
        assert plan_schedule(ScheduleConfig(speedup, Placement.PUBLISHED), grid) == published_schedule(50, k)
        assert plan_schedule(ScheduleConfig(speedup, Placement.PROGRESSIVE), grid) == progressive_schedule(50, k, 2)
        opt = plan_schedule(ScheduleConfig(speedup, Placement.OPTIMIZED), grid, gram=gram)
        assert opt == optimized_schedule(gram, grid, k, 2) and len(opt) == k
    with pytest.raises(ValueError, match="calibrated predictor file"):
        plan_schedule(ScheduleConfig(5.0, Placement.OPTIMIZED), grid)
    with pytest.raises(ValueError, match="adaptive_controller"):
        plan_schedule(ScheduleConfig(5.0, Placement.ADAPTIVE), grid)
    with pytest.raises(ValueError, match="guard steps"):
        plan_schedule(ScheduleConfig(5.0, Placement.PUBLISHED, compute_last=True), grid)
    assert plan_schedule(ScheduleConfig(1.0, Placement.OPTIMIZED), grid, gram=gram) == tuple(range(50))


def test_adaptive_controller_from_config():
    ctrl = adaptive_controller(ScheduleConfig(4.0, Placement.ADAPTIVE, warmup=3, residual_budget=0.02), 30)
    assert (ctrl.budget, ctrl.warmup, ctrl.max_gap, ctrl.initial_gap) == (0.02, 3, 8, 4)
    assert [s for s in range(30) if ctrl.should_compute(s)][:4] == [0, 1, 2, 6]
