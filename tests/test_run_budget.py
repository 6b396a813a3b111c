"""Short runs: a run too short for the speedup computes its guards, or every step, says so, and never raises.

Distilled and few-step models and one expert's share of a Wan 2.2 split (8 steps as 4 + 4 at speedup 4) met
"ValueError: 1 computed steps cannot cover the guards" mid-sampling before this rule."""
import numpy as np
import pytest

from comfyui_l2p.nodes.plans import EveryStepPlan, FixedPlan
from comfyui_l2p.nodes.setups import make_plan
from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.schedules.budget import run_budget
from comfyui_l2p.predictors.schedules.placements import Placement, ScheduleConfig, plan_schedule


@pytest.mark.parametrize("steps, speedup, warmup, last, requested, guards, computed", [
    (20, 4.0, 2, False, 5, 2, 5),  # an ordinary run: K from the speedup
    (4, 4.0, 2, False, 1, 2, 2),  # one expert's 4 of 8 steps: the warm-up's 2, then 2 forecasts
    (4, 4.0, 1, True, 1, 2, 2),  # warm-up 1 and the last-step guard
    (3, 4.0, 2, True, 1, 3, 3),  # the guards cover the run: every step
    (2, 8.0, 2, False, 1, 2, 2),  # warm-up as long as the run: every step
    (1, 4.0, 3, False, 1, 1, 1),  # warm-up longer than the run: every step
    (6, 1.0, 1, False, 6, 1, 6),  # speedup 1: every step, as asked (no note)
])
def test_budget_table(steps, speedup, warmup, last, requested, guards, computed):
    budget = run_budget(steps, speedup, warmup, last)
    assert (budget.requested, budget.guards, budget.computed) == (requested, guards, computed)
    assert budget.every_step == (computed == steps)
    assert (budget.note is None) == (computed == requested)


def test_budget_notes_say_what_happened():
    guards = run_budget(4, 4.0, 2, False).note
    assert "asks for 1 computed step(s) of 4" in guards and "computed the 2 guard steps" in guards
    assert "forecast the other 2 (2.00x)" in guards
    every = run_budget(2, 4.0, 2, False).note
    assert every.startswith("computed every step") and "2 steps" in every
    with pytest.raises(ValueError, match="warmup"):
        run_budget(4, 4.0, 0, False)


@pytest.mark.parametrize("placement", [Placement.EVEN, Placement.PROGRESSIVE, Placement.OPTIMIZED])
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("warmup, last", [(1, False), (2, False), (2, True), (4, False)])
def test_short_runs_plan_the_guards_or_every_step(placement, steps, warmup, last):
    grid = StepGrid.uniform(steps)
    rng = np.random.default_rng(steps)
    a = rng.normal(size=(steps, steps + 2))
    config = ScheduleConfig(8.0, placement, warmup=warmup, compute_last=last)
    planned = plan_schedule(config, grid, gram=a @ a.T)
    budget = config.budget(steps)
    assert len(planned) == budget.computed
    assert set(range(min(warmup, steps))) <= set(planned)  # the warm-up is always computed
    if last:
        assert steps - 1 in planned


def test_make_plan_carries_the_note_to_the_report():
    plan = make_plan(ScheduleConfig(4.0, Placement.EVEN, warmup=2), StepGrid.uniform(4))
    assert isinstance(plan, FixedPlan) and plan.planned == (0, 1)
    assert [plan.decide(s)[0] for s in range(4)] == [True, True, False, False]
    assert len(plan.notes) == 1 and "guard steps" in plan.notes[0]
    every = make_plan(ScheduleConfig(4.0, Placement.ADAPTIVE, warmup=2), StepGrid.uniform(2))
    assert isinstance(every, EveryStepPlan) and every.notes[0].startswith("computed every step")
    assert make_plan(ScheduleConfig(4.0, Placement.EVEN), StepGrid.uniform(20)).notes == ()
    assert make_plan(ScheduleConfig(1.0, Placement.EVEN), StepGrid.uniform(20)).notes == ()
