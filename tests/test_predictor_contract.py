"""One contract every linear predictor passes, run on each entry of predictor_cases.CASES."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.engine.linear_predictor import ForecastError
from comfyui_l2p.predictors.engine.history import ForecastEngine
from comfyui_l2p.predictors.engine.grid import TimeAxis
from comfyui_l2p.predictors.forecasters.registry import (
    METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor,
)

from predictor_cases import CASES, PredictorCase

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPE = (2, 4, 3, 5)  # [batch, channels, height, width]: a small latent


def _case_params():
    return [pytest.param(case, id=case.id) for case in CASES]


def _outputs(case: PredictorCase, seed: int, dtype=torch.float32, device="cpu") -> dict[int, torch.Tensor]:
    """A random output per computed step of ``case`` (shape SHAPE)."""
    gen = torch.Generator().manual_seed(seed)
    return {s: torch.randn(SHAPE, generator=gen).to(dtype=dtype, device=device) for s in case.computed}


def _replay(engine: ForecastEngine, key, outputs: dict[int, torch.Tensor], targets) -> list[torch.Tensor]:
    for step, out in outputs.items():
        engine.observe(key, step, out)
    return [engine.forecast(key, t) for t in targets]


def _prefix_queries(case: PredictorCase):
    """(target, computed prefix) for every non-empty prefix of the computed steps and every later step."""
    for n in range(1, len(case.computed) + 1):
        prefix = case.computed[:n]
        for target in range(prefix[-1] + 1, case.grid.num_steps):
            yield target, prefix


def test_cases_are_well_formed():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), f"duplicate case ids: {ids}"
    for case in CASES:
        assert case.computed == tuple(sorted(set(case.computed))) and case.computed[0] >= 0, case.id
        assert all(case.computed[-1] < t < case.grid.num_steps for t in case.targets), case.id


@pytest.mark.parametrize("case", _case_params())
def test_reset_equals_a_fresh_engine(case):
    used = ForecastEngine(case.make(), case.grid)
    _replay(used, "cond", _outputs(case, seed=1), case.targets)
    _replay(used, "uncond", _outputs(case, seed=2), case.targets)
    used.reset()
    assert not used.has_history("cond") and used.history_bytes() == 0
    with pytest.raises(ForecastError):
        used.forecast("cond", case.targets[0])

    fresh = ForecastEngine(case.make(), case.grid)
    after_reset = _replay(used, "cond", _outputs(case, seed=3), case.targets)
    from_fresh = _replay(fresh, "cond", _outputs(case, seed=3), case.targets)
    for a, b in zip(after_reset, from_fresh):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("case", _case_params())
def test_forecast_keeps_shape_dtype_device_and_is_the_weighted_sum(case, dtype, device):
    engine = ForecastEngine(case.make(), case.grid)
    outputs = _outputs(case, seed=4, dtype=dtype, device=device)
    forecasts = _replay(engine, "cond", outputs, case.targets)
    for target, pred in zip(case.targets, forecasts):
        assert pred.shape == SHAPE and pred.dtype == dtype and pred.device.type == device
        coef = engine.coefficients("cond", target)
        kept = engine.computed_steps("cond")  # the engine keeps only the history the predictor may use
        reference = sum(float(c) * outputs[s].double() for c, s in zip(coef, kept))
        # one rounding to the output dtype, on top of an fp32 accumulation
        tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]
        scale = float(reference.abs().max())
        torch.testing.assert_close(pred.double(), reference, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("case", _case_params())
def test_streams_are_independent(case):
    out_a, out_b = _outputs(case, seed=5), _outputs(case, seed=6)
    only_a = _replay(ForecastEngine(case.make(), case.grid), "a", out_a, case.targets)
    b_steps = case.computed[:-1]  # stream b lags one computed step behind, with other outputs
    only_b = _replay(ForecastEngine(case.make(), case.grid), "b", {s: out_b[s] for s in b_steps}, case.targets)

    mixed = ForecastEngine(case.make(), case.grid)
    for step in case.computed:  # interleaved, as cond and uncond chunks arrive
        mixed.observe("a", step, out_a[step])
        if step in b_steps:
            mixed.observe("b", step, out_b[step])
    a_before = [mixed.forecast("a", t) for t in case.targets]
    mixed.observe("b", case.computed[-1], out_b[case.computed[-1]])  # b observed after a's forecasts
    for t, alone, before in zip(case.targets, only_a, a_before):
        assert torch.equal(before, alone)
        assert torch.equal(mixed.forecast("a", t), alone)

    lagging = ForecastEngine(case.make(), case.grid)
    for step in case.computed:
        lagging.observe("a", step, out_a[step])
        if step in b_steps:
            lagging.observe("b", step, out_b[step])
    for t, alone in zip(case.targets, only_b):
        assert torch.equal(lagging.forecast("b", t), alone)


@pytest.mark.parametrize("case", _case_params())
def test_forecasting_without_history_raises(case):
    predictor = case.make()
    engine = ForecastEngine(predictor, case.grid)
    with pytest.raises(ForecastError):
        engine.forecast("cond", case.targets[0])
    with pytest.raises(ForecastError):
        predictor.coefficients(case.targets[0], [], case.grid)
    engine.observe("cond", case.computed[0], torch.ones(SHAPE))
    with pytest.raises(ForecastError):  # another stream still has nothing
        engine.forecast("uncond", case.targets[0])
    with pytest.raises(ForecastError):  # forecasts only look ahead
        predictor.coefficients(case.computed[-1], case.computed, case.grid)


@pytest.mark.parametrize("case", _case_params())
def test_coefficients_are_finite_and_constants_are_handled(case):
    predictor = case.make()
    constant = torch.full(SHAPE, -2.5)
    for target, prefix in _prefix_queries(case):
        coef = predictor.coefficients(target, prefix, case.grid)
        assert coef.dtype == np.float64 and coef.shape == (len(prefix),)
        assert np.all(np.isfinite(coef)), (target, prefix, coef)
        engine = ForecastEngine(predictor, case.grid)
        for step in prefix:
            engine.observe("cond", step, constant)
        expected = constant * (1.0 if case.preserves_constants else float(coef.sum()))
        if case.preserves_constants:
            assert coef.sum() == pytest.approx(1.0, abs=1e-9), (target, prefix, coef)
        # fp32 accumulation: each term c_i * F_i is rounded once, relative to its own size
        tol = 4 * torch.finfo(torch.float32).eps * float(np.abs(coef).sum()) * abs(float(constant[0, 0, 0, 0]))
        torch.testing.assert_close(engine.forecast("cond", target), expected, rtol=0.0, atol=tol)


@pytest.mark.parametrize("case", _case_params())
def test_coefficients_are_deterministic(case):
    first, second = case.make(), case.make()
    for target, prefix in _prefix_queries(case):
        a = first.coefficients(target, prefix, case.grid)
        assert np.array_equal(a, first.coefficients(target, prefix, case.grid))
        assert np.array_equal(a, second.coefficients(target, prefix, case.grid))


# ---------------------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize("axis", list(TimeAxis), ids=lambda a: a.value)
@pytest.mark.parametrize("method", list(ForecastMethod), ids=lambda m: m.name)
def test_every_registered_method_is_under_contract(method, axis):
    built = build_predictor(method, ForecastSettings(axis=axis))
    assert any(case.make() == built for case in CASES), f"add {built!r} to tests/predictor_cases.py"


def test_registry_display_names_round_trip_and_unknown_names_are_refused():
    assert len(set(METHOD_DISPLAY_NAMES)) == len(ForecastMethod) == len(METHOD_DISPLAY_NAMES)
    for name in METHOD_DISPLAY_NAMES:
        assert ForecastMethod.from_display_name(name).display_name == name
    with pytest.raises(ValueError, match="unknown forecast method 'TeaCache'.*expected one of"):
        ForecastMethod.from_display_name("TeaCache")
    with pytest.raises(ValueError, match="ForecastMethod"):
        build_predictor("FoCa")


def test_registry_passes_spectrum_settings_through():
    settings = ForecastSettings(axis=TimeAxis.SIGMA, spectrum_degree=3, spectrum_ridge=0.5, spectrum_blend=0.25,
                                spectrum_penalize_constant=False)
    built = build_predictor(ForecastMethod.SPECTRUM, settings)
    assert (built.degree, built.ridge, built.blend, built.axis, built.penalize_constant) == (
        3, 0.5, 0.25, TimeAxis.SIGMA, False)
    with pytest.raises(ValueError, match="Spectrum degree"):
        build_predictor(ForecastMethod.SPECTRUM, ForecastSettings(spectrum_degree=0))
