"""Schedules: the published and even lists, progressive (exact K), the adaptive controller, config validation and
plan_schedule. The expected-error search (optimized placement): test_schedule_search.py."""

import numpy as np
import pytest

from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.schedules.placements import (
    PUBLISHED_L2P_50,
    AdaptiveController,
    Placement,
    ScheduleConfig,
    adaptive_controller,
    even_schedule,
    optimized_schedule,
    plan_schedule,
    progressive_schedule,
    published_schedule,
    spectrum_progressive_steps,
)
from schedule_cases import random_gram


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
