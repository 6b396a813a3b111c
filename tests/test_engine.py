"""The engine: history per stream, fp32 accumulation, pruning, offload, residuals."""
import numpy as np
import pytest
import torch

from comfyui_l2p.predictors import ForecastEngine, ForecastError, Fora, StepGrid, TaylorSeer


def test_weighted_sum_matches_coefficients_and_keeps_dtype():
    grid = StepGrid.uniform(10)
    eng = ForecastEngine(TaylorSeer(order=2), grid)
    outs = {s: torch.randn(2, 3, 4, dtype=torch.bfloat16) for s in (0, 2, 4)}
    for s, o in outs.items():
        eng.observe("a", s, o)
    pred = eng.forecast("a", 6)
    c = eng.coefficients("a", 6)
    ref = sum(float(ci) * outs[s].float() for ci, s in zip(c, (0, 2, 4)))
    assert pred.dtype == torch.bfloat16 and pred.shape == (2, 3, 4)
    torch.testing.assert_close(pred.float(), ref.to(torch.bfloat16).float())


def test_history_is_pruned_to_what_the_predictor_needs():
    eng = ForecastEngine(Fora(), StepGrid.uniform(10))
    for s in range(5):
        eng.observe("a", s, torch.full((3,), float(s)))
    assert eng.computed_steps("a") == (4,)
    assert torch.equal(eng.forecast("a", 7), torch.full((3,), 4.0))


def test_forecast_before_observation_raises():
    eng = ForecastEngine(Fora(), StepGrid.uniform(10))
    with pytest.raises(ForecastError, match="before any step was computed"):
        eng.forecast("a", 3)


def test_layout_change_resets_the_stream():
    eng = ForecastEngine(TaylorSeer(order=1), StepGrid.uniform(10))
    eng.observe("a", 0, torch.zeros(4))
    eng.observe("a", 1, torch.zeros(2, 2))
    assert eng.computed_steps("a") == (1,)


def test_a_stream_that_moves_device_keeps_its_history():
    """The multi-GPU split may run a stream on another device from one step to the next (its conds changed):
    the history is kept and forecasts are formed where the stream's newest output is. ("meta" stands in for a
    second device on a CPU-only machine: shapes and devices are real, values are not.)"""
    eng = ForecastEngine(TaylorSeer(order=1), StepGrid.uniform(10))
    eng.observe("a", 0, torch.zeros(2, 3))
    eng.observe("a", 1, torch.empty(2, 3, device="meta"))
    assert eng.computed_steps("a") == (0, 1)
    assert eng.forecast("a", 2).device.type == "meta"


def test_offload_keeps_history_on_cpu_and_returns_on_output_device():
    eng = ForecastEngine(TaylorSeer(order=1), StepGrid.uniform(10), offload=True)
    eng.observe("a", 0, torch.zeros(3))
    eng.observe("a", 1, torch.ones(3))
    assert all(t.device.type == "cpu" for t in eng.streams["a"].outputs)
    torch.testing.assert_close(eng.forecast("a", 3), torch.full((3,), 3.0))


def test_residual_measures_the_forecast_that_would_have_been_made():
    eng = ForecastEngine(Fora(), StepGrid.uniform(10))
    assert eng.residual("a", 0, torch.ones(3)) is None
    eng.observe("a", 0, torch.ones(3))
    assert eng.residual("a", 1, 2 * torch.ones(3)) == pytest.approx(0.5)
    assert np.isclose(eng.residual("a", 1, torch.ones(3)), 0.0)


def test_routed_engine_forecasts_each_role_with_its_own_predictor():
    from comfyui_l2p.predictors.engine.history import RoutedEngine

    grid = StepGrid.uniform(10)
    routed = RoutedEngine({"uncond": ForecastEngine(Fora(), grid)}, ForecastEngine(TaylorSeer(order=1), grid))
    for key in (("cond", "a"), ("uncond", "b")):
        routed.observe(key, 0, torch.zeros(2))
        routed.observe(key, 1, torch.ones(2))
    assert torch.equal(routed.forecast(("cond", "a"), 3), torch.full((2,), 3.0))  # TaylorSeer-1 extrapolates
    assert torch.equal(routed.forecast(("uncond", "b"), 3), torch.ones(2))  # FORA holds
    assert routed.history_bytes() == 3 * 2 * 4  # Taylor keeps 2 outputs, FORA 1
    routed.reset()
    assert not routed.has_history(("cond", "a")) and not routed.has_history(("uncond", "b"))
