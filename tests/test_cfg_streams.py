"""CFG error models and cross-stream predictors, against brute force on synthetic trajectories:
the guided-output final-latent error (schedules.optimizer's ``mix``), derived-stream Grams, the difference
predictor (c - u and u), and level-preserving (sum-constrained) fits."""
import numpy as np
import pytest
import torch

from comfyui_l2p.nodes import l2p_setup, setups
from comfyui_l2p.predictors import GramStats, ScheduleConfig, StepGrid
from comfyui_l2p.predictors.calibration import fit
from comfyui_l2p.predictors.forecasters.l2p_difference import DifferenceL2PEngine
from comfyui_l2p.predictors.forecasters.l2p_joint import JointL2PEngine
from comfyui_l2p.predictors.schedules.optimizer import shrink_cross_streams
from comfyui_l2p.predictors.schedules.placements import even_schedule, expected_final_error, optimized_schedule

from schedule_cases import flux_like_grid, smooth_trajectories


def cfg_trajectories(grid: StepGrid, samples: int = 4, dim: int = 48, seed: int = 0):
    """(cond, uncond) float64 [samples, S, dim]: correlated smooth streams, like guidance's two predictions."""
    uncond = smooth_trajectories(grid, samples, dim, seed)
    cond = uncond + 0.3 * smooth_trajectories(grid, samples, dim, seed + 1)
    return cond, uncond


def guided_final_error_brute(streams, mix, grid, computed, ridge) -> float:
    """Each stream forecast from its own computed steps before the target (its own least squares over all samples),
    the guided output's errors sum_r mix_r e_r integrated with Euler's |dsigma|; squared norm summed over samples."""
    d = np.abs(grid.dsigma())
    err = 0.0
    for traj, weight in zip(streams, mix):
        gram = np.einsum("nsd,ntd->st", traj, traj)
        for s in range(grid.num_steps):
            if s in computed:
                continue
            past = [c for c in computed if c < s]
            w = fit.ridge_solve(gram, s, past, ridge)
            err = err + weight * d[s] * (np.einsum("j,njd->nd", w, traj[:, past]) - traj[:, s])
    return float(np.sum(err ** 2))


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_guided_final_error_equals_brute_force(ridge):
    grid = flux_like_grid(24)
    cond, uncond = cfg_trajectories(grid)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    g = 3.5
    for computed in [(0, 1, 5, 9, 14, 20), (0, 4, 11), even_schedule(24, 7, 2)]:
        expected = expected_final_error(stats.gram, grid, computed, ridge, mix=(g, 1 - g))
        brute = guided_final_error_brute((cond, uncond), (g, 1 - g), grid, computed, ridge)
        assert expected == pytest.approx(brute, rel=1e-9)
    # the cross terms matter: the guided error is not the weighted sum of the streams' own errors
    computed = (0, 4, 11)
    own = sum(w * w * expected_final_error(stats.role_gram(r), grid, computed, ridge)
              for r, w in (("cond", g), ("uncond", 1 - g)))
    assert expected_final_error(stats.gram, grid, computed, ridge, mix=(g, 1 - g)) != pytest.approx(own, rel=1e-3)


def test_guided_schedule_search_is_never_worse_than_even():
    grid = flux_like_grid(30)
    cond, uncond = cfg_trajectories(grid, seed=3)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    mix = (3.0, -2.0)
    for k in (6, 9):
        steps = optimized_schedule(stats.gram, grid, k, warmup=1, ridge=1e-4, mix=mix)
        assert len(steps) == k and steps[0] == 0
        opt = expected_final_error(stats.gram, grid, steps, 1e-4, mix=mix)
        assert opt <= expected_final_error(stats.gram, grid, even_schedule(30, k, 1), 1e-4, mix=mix)


def test_mix_must_match_the_gram():
    grid = StepGrid.uniform(5)
    with pytest.raises(ValueError, match=r"\[R\*S, R\*S\] = \[10, 10\] for 2 stream"):
        expected_final_error(np.eye(5), grid, (0, 2), 1e-3, mix=(3.0, -2.0))
    with pytest.raises(ValueError, match="mix must be one finite weight per stream"):
        expected_final_error(np.eye(5), grid, (0, 2), 1e-3, mix=(float("nan"),))


def test_mixed_gram_is_the_gram_of_the_derived_streams():
    grid = StepGrid.uniform(6)
    cond, uncond = cfg_trajectories(grid, samples=3, dim=10)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    derived = np.concatenate([uncond, cond - uncond], axis=1)  # [n, 2S, D]: (u, d) stacked over steps
    expected = np.einsum("nsd,ntd->st", derived, derived)
    got = stats.mixed_gram([{"uncond": 1.0}, {"cond": 1.0, "uncond": -1.0}])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)
    with pytest.raises(KeyError, match="negative"):
        stats.mixed_gram([{"negative": 1.0}])


def test_difference_engine_forecasts_u_and_c_minus_u_each_by_its_own_least_squares():
    grid = StepGrid.uniform(8)
    cond, uncond = cfg_trajectories(grid, samples=5, dim=30, seed=4)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    engine = DifferenceL2PEngine(np.asarray(stats.gram), 0.0, grid)
    computed, target, sample = (0, 2, 5), 7, 2
    for s in computed:
        engine.observe(("cond", "c"), s, torch.from_numpy(cond[sample, s]))
        engine.observe(("uncond", "u"), s, torch.from_numpy(uncond[sample, s]))

    def lstsq_forecast(traj):
        design = np.stack([traj[:, s] for s in computed], -1).reshape(-1, len(computed))
        w = np.linalg.lstsq(design, traj[:, target].reshape(-1), rcond=None)[0]
        return np.stack([traj[sample, s] for s in computed], -1) @ w

    u_hat, d_hat = lstsq_forecast(uncond), lstsq_forecast(cond - uncond)
    np.testing.assert_allclose(engine.forecast(("uncond", "u"), target).numpy(), u_hat, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(engine.forecast(("cond", "c"), target).numpy(), u_hat + d_hat, rtol=1e-6, atol=1e-8)


def test_level_preserving_solve_meets_its_constraints_and_is_the_constrained_optimum():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(7, 12))
    gram = a @ a.T
    sources, target = [0, 2, 3, 5], 6
    w = fit.level_preserving_solve(gram, target, sources, 0.0, [0, 0, 1, 1], [1.0, 0.0])
    assert w[:2].sum() == pytest.approx(1.0) and w[2:].sum() == pytest.approx(0.0, abs=1e-12)
    # any feasible move (keeping both group sums) cannot lower the error: the gradient is constant per group
    grad = gram[np.ix_(sources, sources)] @ w - gram[sources, target]
    assert grad[0] == pytest.approx(grad[1]) and grad[2] == pytest.approx(grad[3])
    # a signal constant over the steps is forecast exactly by any level-preserving weights
    assert np.sum(w[:2] * 4.2) == pytest.approx(4.2)


def test_level_preserving_engines_keep_the_guidance_of_their_forecasts():
    grid = StepGrid.uniform(10)
    cond, uncond = cfg_trajectories(grid, samples=4, dim=20, seed=6)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    one = torch.ones(3, dtype=torch.float64)
    for engine in (JointL2PEngine(np.asarray(stats.gram), ("cond", "uncond"), 1e-6, grid, preserve_levels=True),
                   DifferenceL2PEngine(np.asarray(stats.gram), 1e-6, grid, preserve_levels=True)):
        for s in (0, 3, 6):  # both streams constant: 1 (cond) and 0.5 (uncond)
            engine.observe(("cond", "c"), s, one)
            engine.observe(("uncond", "u"), s, 0.5 * one)
        np.testing.assert_allclose(engine.forecast(("cond", "c"), 8).numpy(), 1.0, rtol=1e-9)
        np.testing.assert_allclose(engine.forecast(("uncond", "u"), 8).numpy(), 0.5, rtol=1e-9)


def test_guided_error_schedule_is_what_the_cache_plans_for_a_cfg_run():
    grid = flux_like_grid(20)
    cond, uncond = cfg_trajectories(grid, seed=7)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    config = ScheduleConfig(4.0, "optimized", warmup=1)
    plan = l2p_setup.l2p_plan(config, grid, stats, stats.summed_gram(), 1e-6, 3.0, setups.FitOptions(
        setups.CfgFit.PER_ROLE, setups.CfgSchedule.GUIDED))
    assert plan.planned == optimized_schedule(stats.gram, grid, 5, warmup=1, ridge=1e-6, mix=(3.0, -2.0))
    diff = l2p_setup.l2p_plan(config, grid, stats, stats.summed_gram(), 1e-6, 3.0, setups.FitOptions(
        setups.CfgFit.DIFFERENCE, setups.CfgSchedule.GUIDED))
    derived = stats.mixed_gram([{"uncond": 1.0}, {"cond": 1.0, "uncond": -1.0}])
    assert diff.planned == optimized_schedule(derived, grid, 5, warmup=1, ridge=1e-6, mix=(1.0, 3.0))
    streams = l2p_setup.l2p_plan(config, grid, stats, stats.summed_gram(), 1e-6, 3.0, setups.FitOptions(
        setups.CfgFit.PER_ROLE, setups.CfgSchedule.STREAMS))
    assert streams.planned == optimized_schedule(stats.summed_gram(), grid, 5, warmup=1, ridge=1e-6)


def test_shrink_cross_streams_keeps_the_streams_own_blocks_and_scales_the_rest():
    grid = StepGrid.uniform(5)
    cond, uncond = cfg_trajectories(grid, samples=3, dim=8, seed=8)
    joint = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid).gram
    half = shrink_cross_streams(joint, 2, 0.5)
    np.testing.assert_array_equal(half[:5, :5], joint[:5, :5])
    np.testing.assert_array_equal(half[5:, 5:], joint[5:, 5:])
    np.testing.assert_allclose(half[:5, 5:], 0.5 * joint[:5, 5:])
    assert np.linalg.eigvalsh(half).min() >= -1e-9 * np.abs(joint).max()  # still a Gram (PSD)
    np.testing.assert_array_equal(shrink_cross_streams(joint, 2, 1.0), joint)
    with pytest.raises(ValueError, match=r"keep must be in \[0, 1\]"):
        shrink_cross_streams(joint, 2, 1.5)


def test_the_default_cfg_schedule_halves_the_cross_stream_terms():
    assert setups.FitOptions().cfg_schedule is setups.CfgSchedule.GUIDED_HALF_CROSS
    assert setups.FitOptions().cfg_fit is setups.CfgFit.PER_ROLE and setups.FitOptions().cross_keep == 0.5
    grid = flux_like_grid(20)
    cond, uncond = cfg_trajectories(grid, seed=9)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    config = ScheduleConfig(4.0, "optimized", warmup=1)
    plan = l2p_setup.l2p_plan(config, grid, stats, stats.summed_gram(), 1e-6, 5.0, setups.FitOptions(
        setups.CfgFit.PER_ROLE, setups.CfgSchedule.GUIDED_HALF_CROSS))
    expected = optimized_schedule(shrink_cross_streams(stats.gram, 2, 0.5), grid, 5, warmup=1, ridge=1e-6,
                                  mix=(5.0, -4.0))
    assert plan.planned == expected


def test_a_sweep_can_override_the_share_of_cross_stream_terms():
    grid = flux_like_grid(20)
    cond, uncond = cfg_trajectories(grid, seed=10)
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    config = ScheduleConfig(4.0, "optimized", warmup=1)
    plan = l2p_setup.l2p_plan(config, grid, stats, stats.summed_gram(), 1e-6, 3.0, setups.FitOptions(
        setups.CfgFit.PER_ROLE, setups.CfgSchedule.GUIDED_HALF_CROSS, cross_stream_keep=0.8))
    expected = optimized_schedule(shrink_cross_streams(stats.gram, 2, 0.8), grid, 5, warmup=1, ridge=1e-6,
                                  mix=(3.0, -2.0))
    assert plan.planned == expected


def test_fit_options_are_validated_at_construction():
    with pytest.raises(ValueError, match="cfg_fit must be a CfgFit"):
        setups.FitOptions(cfg_fit="each stream, own statistics")
    with pytest.raises(ValueError, match=r"cross_stream_keep must be None or a number in \[0, 1\]"):
        setups.FitOptions(cross_stream_keep=1.5)
    with pytest.raises(ValueError, match="preserve_levels must be True or False"):
        setups.FitOptions(preserve_levels=1)
    assert setups.FitOptions(cross_stream_keep=0.8).cross_keep == 0.8
    assert setups.FitOptions(cfg_schedule=setups.CfgSchedule.STREAMS).cross_keep == 0.0


def test_calibrate_reports_the_guided_outputs_expected_quality_under_cfg():
    from comfyui_l2p.nodes.calibrate_setup import expected_quality_line

    grid = flux_like_grid(50)
    cond, _ = cfg_trajectories(grid, seed=11)
    one_stream = GramStats.from_trajectories({"cond": cond}, grid)
    # identical streams: the guided output is the cond stream, so the CFG line must equal the one-stream line
    twins = GramStats.from_trajectories({"cond": cond, "uncond": cond.copy()}, grid)
    line = expected_quality_line("f", one_stream, 1e-6, None)
    assert "4.55x" in line and "dB" in line
    assert expected_quality_line("f", twins, 1e-6, 3.0) == line
    cond2, uncond2 = cfg_trajectories(grid, seed=12)
    distinct = GramStats.from_trajectories({"cond": cond2, "uncond": uncond2}, grid)
    assert expected_quality_line("f", distinct, 1e-6, 3.0) != expected_quality_line("f", distinct, 1e-6, 5.0)
