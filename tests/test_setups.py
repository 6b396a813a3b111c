"""What the nodes build, tested without ComfyUI: the Gram L2P fits under CFG, plans, refusals."""
import numpy as np
import pytest

from comfyui_l2p.nodes import l2p_setup, setups
from comfyui_l2p.nodes.plans import EveryStepPlan, FixedPlan
from comfyui_l2p.nodes.report import ForcedReason
from comfyui_l2p.predictors import GramStats, PredictorFileError, ScheduleConfig, StepGrid


def stats_of(trajectories: dict, grid: StepGrid) -> GramStats:
    return GramStats.from_trajectories(trajectories, grid)


def test_guided_fit_uses_the_statistics_of_the_guided_output():
    grid = StepGrid.uniform(6)
    rng = np.random.default_rng(0)
    cond, uncond = rng.normal(size=(3, 6, 20)), rng.normal(size=(3, 6, 20))
    stats = stats_of({"cond": cond, "uncond": uncond}, grid)
    g = 4.0
    guided = uncond + g * (cond - uncond)
    expected = np.einsum("nsd,ntd->st", guided, guided)
    np.testing.assert_allclose(l2p_setup.fit_gram("f", stats, g, setups.CfgFit.GUIDED), expected, rtol=1e-10)
    summed = np.einsum("nsd,ntd->st", cond, cond) + np.einsum("nsd,ntd->st", uncond, uncond)
    np.testing.assert_allclose(l2p_setup.fit_gram("f", stats, g, setups.CfgFit.PER_STREAM), summed, rtol=1e-10)
    cond_only = np.einsum("nsd,ntd->st", cond, cond)
    np.testing.assert_allclose(l2p_setup.fit_gram("f", stats, 1.0, setups.CfgFit.GUIDED), cond_only, rtol=1e-10)


def test_a_file_calibrated_without_cfg_is_refused_for_a_cfg_run():
    grid = StepGrid.uniform(4)
    stats = stats_of({"cond": np.ones((1, 4, 3))}, grid)
    with pytest.raises(PredictorFileError, match=r"my\.safetensors: calibrated without CFG .* CFG 3"):
        l2p_setup.fit_gram("my.safetensors", stats, 3.0, setups.CfgFit.GUIDED)


def test_speedup_one_computes_every_step_and_guards_are_reported():
    grid = StepGrid.uniform(10)
    assert isinstance(setups.make_plan(ScheduleConfig(1.0, "even"), grid), EveryStepPlan)
    plan = setups.make_plan(ScheduleConfig(2.5, "even", warmup=2, compute_last=True), grid)
    assert isinstance(plan, FixedPlan) and len(plan.planned) == 4
    assert plan.decide(0)[1] is not None and plan.decide(9) == (True, ForcedReason.LAST_STEP)


def test_optimized_placement_without_a_calibration_is_refused():
    with pytest.raises(ValueError, match="calibrat"):
        setups.make_plan(ScheduleConfig(5.0, "optimized"), StepGrid.uniform(50))
