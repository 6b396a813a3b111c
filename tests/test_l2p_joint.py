"""Joint L2P (each CFG stream from both streams' histories) against brute-force least squares."""
import numpy as np
import pytest
import torch

from comfyui_l2p.predictors import GramStats, StepGrid
from comfyui_l2p.predictors.engine.linear_predictor import ForecastError
from comfyui_l2p.predictors.forecasters.l2p_joint import JointL2PEngine


def test_joint_forecast_equals_least_squares_over_both_histories():
    grid = StepGrid.uniform(8)
    rng = np.random.default_rng(0)
    n, d = 6, 40
    cond, uncond = rng.normal(size=(n, 8, d)), rng.normal(size=(n, 8, d))
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    engine = JointL2PEngine(np.asarray(stats.gram), ("cond", "uncond"), 0.0, grid)
    computed, target, sample = (0, 2, 5), 6, 1
    for s in computed:
        engine.observe(("cond", "c"), s, torch.from_numpy(cond[sample, s]))
        engine.observe(("uncond", "u"), s, torch.from_numpy(uncond[sample, s]))
    # brute force: regress cond[:, target] on the six source vectors over all samples and elements
    design = np.stack([cond[:, s] for s in computed] + [uncond[:, s] for s in computed], axis=-1).reshape(-1, 6)
    weights = np.linalg.lstsq(design, cond[:, target].reshape(-1), rcond=None)[0]
    expected = np.stack([cond[sample, s] for s in computed] + [uncond[sample, s] for s in computed], -1) @ weights
    got = engine.forecast(("cond", "c"), target).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_joint_engine_uses_the_other_stream_when_it_explains_the_target():
    grid = StepGrid.uniform(6)
    rng = np.random.default_rng(1)
    uncond = rng.normal(size=(4, 6, 30))
    cond = 2.0 * np.roll(uncond, 1, axis=1)  # cond at step s is twice uncond at step s - 1
    stats = GramStats.from_trajectories({"cond": cond, "uncond": uncond}, grid)
    engine = JointL2PEngine(np.asarray(stats.gram), ("cond", "uncond"), 0.0, grid)
    for s in (0, 1, 3):
        engine.observe(("cond", "c"), s, torch.from_numpy(cond[0, s]))
        engine.observe(("uncond", "u"), s, torch.from_numpy(uncond[0, s]))
    np.testing.assert_allclose(engine.forecast(("cond", "c"), 4).numpy(), cond[0, 4], rtol=1e-6, atol=1e-8)


def test_joint_engine_refuses_unknown_roles_and_empty_streams():
    grid = StepGrid.uniform(4)
    engine = JointL2PEngine(np.eye(8), ("cond", "uncond"), 1e-6, grid)
    with pytest.raises(ForecastError, match="before any step"):
        engine.forecast(("cond", "c"), 2)
    engine.observe(("role5", "x"), 0, torch.ones(2))
    with pytest.raises(ForecastError, match="role5"):
        engine.forecast(("role5", "x"), 2)
