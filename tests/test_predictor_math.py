"""Exact math on analytic sequences: what each training-free predictor reproduces exactly, and what it does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.engine.history import ForecastEngine
from comfyui_l2p.predictors.forecasters.foca import FoCa
from comfyui_l2p.predictors.forecasters.fora import Fora
from comfyui_l2p.predictors.engine.grid import StepGrid, TimeAxis
from comfyui_l2p.predictors.forecasters.spectrum import Spectrum, chebyshev_basis, unit_interval_coordinates
from comfyui_l2p.predictors.forecasters.taylorseer import TaylorSeer

from predictor_cases import shifted_grid

AXES = [pytest.param(TimeAxis.STEP, id="step"), pytest.param(TimeAxis.SIGMA, id="sigma")]
GRID = shifted_grid(20)  # non-uniform sigmas: step and sigma axes disagree
COMPUTED = (0, 2, 3, 7, 10, 12, 15)  # uneven gaps
EXACT = 1e-9  # relative error of an exact forecast (float64 round-off is ~1e-13 here)
INEXACT = 1e-6  # a forecast that is not exact misses by more than this (measured misses are >= 1e-3)


def polynomial(grid: StepGrid, axis: TimeAxis, degree: int, seed: int, dim: int = 6) -> np.ndarray:
    """float64 [S, dim]: F_s = sum_m a_m t_s^m with random vector coefficients a_m, on ``axis``; a_degree != 0."""
    t = grid.positions(axis)
    coef = np.random.default_rng(seed).standard_normal((degree + 1, dim))
    coef[degree] += np.sign(coef[degree]) * 0.5  # keep the leading coefficient away from 0
    return np.vander(t, degree + 1, increasing=True) @ coef


def worst_relative_error(predictor, grid: StepGrid, values: np.ndarray, computed=COMPUTED, min_history=1):
    """Largest ||F_hat - F|| / ||F|| over every prefix of ``computed`` (at least ``min_history`` long) and every
    later step of the grid, with F_hat = sum_i c_i F[computed_i]."""
    worst = 0.0
    for n in range(min_history, len(computed) + 1):
        prefix = computed[:n]
        for target in range(prefix[-1] + 1, grid.num_steps):
            coef = predictor.coefficients(target, prefix, grid)
            pred = coef @ values[list(prefix)]
            worst = max(worst, np.linalg.norm(pred - values[target]) / np.linalg.norm(values[target]))
    return worst


# ---------------------------------------------------------------------------------------------------- FORA
def test_fora_returns_the_last_computed_output():
    values = polynomial(GRID, TimeAxis.STEP, 3, seed=0)
    for n in range(1, len(COMPUTED) + 1):
        prefix = COMPUTED[:n]
        for target in range(prefix[-1] + 1, GRID.num_steps):
            coef = Fora().coefficients(target, prefix, GRID)
            np.testing.assert_array_equal(coef @ values[list(prefix)], values[prefix[-1]])


# ---------------------------------------------------------------------------------------------------- TaylorSeer
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("order", [1, 2])
def test_taylorseer_is_exact_on_polynomials_of_its_order_and_not_above(order, axis):
    predictor = TaylorSeer(order=order, axis=axis)
    for degree in range(order + 1):
        exact = worst_relative_error(predictor, GRID, polynomial(GRID, axis, degree, seed=degree),
                                     min_history=order + 1)
        assert exact < EXACT, (degree, exact)
    above = worst_relative_error(predictor, GRID, polynomial(GRID, axis, order + 1, seed=7), min_history=order + 1)
    assert above > INEXACT


def test_taylorseer_step_axis_is_not_exact_in_sigma_on_a_non_uniform_grid():
    values = polynomial(GRID, TimeAxis.SIGMA, 1, seed=3)
    assert worst_relative_error(TaylorSeer(order=1, axis=TimeAxis.SIGMA), GRID, values, min_history=2) < EXACT
    assert worst_relative_error(TaylorSeer(order=1, axis=TimeAxis.STEP), GRID, values, min_history=2) > INEXACT


# ---------------------------------------------------------------------------------------------------- Spectrum
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("degree", [2, 4])
def test_spectrum_chebyshev_reproduces_polynomials_up_to_its_degree_as_ridge_vanishes(degree, axis):
    def worst(ridge, poly_degree, min_history):
        predictor = Spectrum(degree=degree, ridge=ridge, blend=1.0, axis=axis)
        values = polynomial(GRID, axis, poly_degree, seed=10 + poly_degree)
        return worst_relative_error(predictor, GRID, values, min_history=min_history)

    for poly_degree in range(degree + 1):
        # lambda = 0: the least-squares fit through >= M+1 points is exact
        assert worst(0.0, poly_degree, degree + 1) < EXACT
        # the ridge bias is linear in lambda, so it vanishes with it, also for clustered early points ...
        assert worst(1e-12, poly_degree, degree + 1) < 0.02 * worst(1e-10, poly_degree, degree + 1)
        # ... and at lambda = 1e-10 it is already small once the points spread over the run
        assert worst(1e-10, poly_degree, len(COMPUTED)) < 1e-5
    above = worst_relative_error(Spectrum(degree=degree, ridge=1e-10, blend=1.0, axis=axis), GRID,
                                 polynomial(GRID, axis, degree + 1, seed=20), min_history=len(COMPUTED))
    assert above > 1e-3


@pytest.mark.parametrize("axis", AXES)
def test_spectrum_without_chebyshev_is_taylor1(axis):
    spectrum, taylor = Spectrum(blend=0.0, axis=axis), TaylorSeer(order=1, axis=axis)
    for n in range(1, len(COMPUTED) + 1):
        prefix = COMPUTED[:n]
        for target in range(prefix[-1] + 1, GRID.num_steps):
            np.testing.assert_array_equal(spectrum.coefficients(target, prefix, GRID),
                                          taylor.coefficients(target, prefix, GRID))


@pytest.mark.parametrize("axis", AXES)
def test_spectrum_blend_is_the_convex_mix_of_taylor1_and_the_ridge_hat_row(axis):
    prefix, target = COMPUTED[:5], 13
    mixed = Spectrum(blend=0.3, axis=axis).coefficients(target, prefix, GRID)
    taylor = TaylorSeer(order=1, axis=axis).coefficients(target, prefix, GRID)
    cheb = Spectrum(blend=1.0, axis=axis).coefficients(target, prefix, GRID)
    np.testing.assert_allclose(mixed, 0.7 * taylor + 0.3 * cheb, rtol=0, atol=1e-14)


@pytest.mark.parametrize("penalize_constant", [True, False])
@pytest.mark.parametrize("axis", AXES)
def test_spectrum_hat_row_is_the_ridge_regression_forecast(axis, penalize_constant):
    # Independent route: the ridge fit as an augmented least-squares problem [X; sqrt(lambda) D] beta = [H; 0],
    # then the forecast x(tau*) beta, against the hat-row weights applied to the same data H.
    ridge, degree, target = 0.1, 4, 18
    predictor = Spectrum(degree=degree, ridge=ridge, blend=1.0, axis=axis, penalize_constant=penalize_constant)
    data = np.random.default_rng(5).standard_normal((GRID.num_steps, 8))
    for n in (2, 4, len(COMPUTED)):  # fewer, as many and more points than basis functions
        prefix = list(COMPUTED[:n])
        tau = unit_interval_coordinates(GRID, axis)
        design = chebyshev_basis(tau[prefix], degree)
        penalty = np.sqrt(ridge) * np.eye(degree + 1)
        if not penalize_constant:
            penalty = penalty[1:]
        beta = np.linalg.lstsq(np.vstack([design, penalty]),
                               np.vstack([data[prefix], np.zeros((len(penalty), data.shape[1]))]), rcond=None)[0]
        expected = chebyshev_basis(tau[[target]], degree)[0] @ beta
        np.testing.assert_allclose(predictor.coefficients(target, prefix, GRID) @ data[prefix], expected,
                                   rtol=1e-10, atol=1e-12)


def test_spectrum_published_ridge_shrinks_constants_and_t0_free_ridge_keeps_them():
    prefix, target = (0, 1, 2), 9
    published = Spectrum(blend=1.0).coefficients(target, prefix, GRID).sum()
    t0_free = Spectrum(blend=1.0, penalize_constant=False).coefficients(target, prefix, GRID).sum()
    assert published < 0.99  # a constant output is forecast scaled towards 0
    assert t0_free == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("axis", AXES)
def test_spectrum_maps_the_runs_own_range_onto_minus_one_to_one(axis):
    for steps in (8, 28, 50):
        tau = unit_interval_coordinates(shifted_grid(steps), axis)
        assert tau[0] == -1.0 and tau[-1] == pytest.approx(1.0, abs=1e-15)
        assert np.all(np.diff(tau) > 0)


def test_spectrum_sigma_axis_on_a_uniform_grid_equals_the_step_axis_and_ignores_sigma_scale():
    uniform = StepGrid.uniform(20)
    scaled = StepGrid(tuple(7.0 * s for s in GRID.sigmas))
    for n in (1, 2, 5, len(COMPUTED)):
        prefix = COMPUTED[:n]
        for target in (prefix[-1] + 1, 19):
            np.testing.assert_allclose(Spectrum(axis=TimeAxis.SIGMA).coefficients(target, prefix, uniform),
                                       Spectrum(axis=TimeAxis.STEP).coefficients(target, prefix, uniform),
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(Spectrum(axis=TimeAxis.SIGMA).coefficients(target, prefix, scaled),
                                       Spectrum(axis=TimeAxis.SIGMA).coefficients(target, prefix, GRID),
                                       rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("axis", AXES)
def test_spectrum_with_one_computed_step_reuses_it(axis):
    for blend in (0.0, 0.5, 1.0):
        np.testing.assert_array_equal(Spectrum(blend=blend, axis=axis).coefficients(7, (3,), GRID), [1.0])


@pytest.mark.parametrize("kwargs", [dict(degree=0), dict(degree=13), dict(degree=2.0), dict(ridge=-1.0),
                                    dict(ridge=float("nan")), dict(blend=1.5), dict(axis="step")])
def test_spectrum_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="Spectrum"):
        Spectrum(**kwargs)


# ---------------------------------------------------------------------------------------------------- FoCa
UNIFORM = StepGrid.uniform(20)


WARMED_UP = {"even": (0, 1, 4, 7, 10, 13, 16), "uneven": (0, 1, 2, 5, 11, 14, 15), "late": (3, 4, 9, 10, 17)}


@pytest.mark.parametrize("computed", list(WARMED_UP.values()), ids=list(WARMED_UP))
@pytest.mark.parametrize("axis", AXES)
def test_foca_is_exact_on_sequences_linear_in_its_axis_after_two_adjacent_computed_steps(axis, computed):
    for grid in (UNIFORM, GRID):  # uniform and non-uniform sigma spacing
        for degree in (0, 1):
            values = polynomial(grid, axis, degree, seed=30 + degree)
            assert worst_relative_error(FoCa(axis=axis), grid, values, computed=computed, min_history=2) < EXACT


@pytest.mark.parametrize("axis", AXES)
def test_foca_reuse_before_a_second_value_spoils_linear_sequences_but_not_constants(axis):
    # the first computed step is followed by a forecast: it reuses the value, and that stale forecast is
    # F_{k-1} when the next anchor arrives, so later forecasts of a linear sequence stay off
    computed = (0, 3, 6, 9, 12, 15)
    for grid in (UNIFORM, GRID):
        constant = polynomial(grid, axis, 0, seed=32)
        assert worst_relative_error(FoCa(axis=axis), grid, constant, computed=computed) < EXACT
        linear = polynomial(grid, axis, 1, seed=33)
        assert worst_relative_error(FoCa(axis=axis), grid, linear, computed=computed, min_history=3) > INEXACT


@pytest.mark.parametrize("axis", AXES)
def test_foca_is_not_exact_on_quadratics(axis):
    values = polynomial(GRID, axis, 2, seed=40)
    assert worst_relative_error(FoCa(axis=axis), GRID, values, computed=WARMED_UP["uneven"], min_history=2) > INEXACT


def test_foca_step_axis_is_not_exact_in_sigma_on_a_non_uniform_grid():
    values = polynomial(GRID, TimeAxis.SIGMA, 1, seed=41)
    assert worst_relative_error(FoCa(axis=TimeAxis.STEP), GRID, values, computed=WARMED_UP["uneven"],
                                min_history=2) > INEXACT


def foca_brute_force(outputs: dict[int, torch.Tensor], grid: StepGrid, axis: TimeAxis) -> dict[int, torch.Tensor]:
    """FoCa materialised step by step on tensors: the value of every step from the first computed one to the end.

    Written from the rule, not the engine's rolling windows: the previous two values are looked up by step, the
    anchors are the last two computed steps before the current one.
    """
    t = grid.positions(axis)
    first = min(outputs)
    values: dict[int, torch.Tensor] = {}
    for s in range(first, grid.num_steps):
        if s in outputs:
            values[s] = outputs[s]
            continue
        if s - 2 < first:  # one value only
            values[s] = values[s - 1]
            continue
        slope = (values[s - 1] - values[s - 2]) / (t[s - 1] - t[s - 2])
        anchors = [a for a in sorted(outputs) if a < s][-2:]
        if len(anchors) == 2:
            a_prev, a = anchors
            slope = 0.5 * (slope + (outputs[a] - outputs[a_prev]) / (t[a] - t[a_prev]))
        values[s] = values[s - 1] + (t[s] - t[s - 1]) * slope
    return values


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("computed", [(0, 1, 2, 5, 9, 10, 15), (2, 6, 7, 13), (1, 9)], ids=["dense", "late", "two"])
def test_foca_engine_equals_the_brute_force_recursion_on_tensors(axis, computed):
    grid = shifted_grid(18)
    gen = torch.Generator().manual_seed(sum(computed))
    outputs = {s: torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) for s in computed}
    truth = foca_brute_force(outputs, grid, axis)
    engine = ForecastEngine(FoCa(axis=axis), grid)
    checked = 0
    for s in range(computed[0], grid.num_steps):
        if s in outputs:
            engine.observe("cond", s, outputs[s])
            continue
        coef = engine.coefficients("cond", s)
        tol = 4 * torch.finfo(torch.float32).eps * float(np.abs(coef).sum()) * float(truth[s].abs().max() + 1)
        torch.testing.assert_close(engine.forecast("cond", s), truth[s], rtol=0, atol=tol)
        checked += 1
    assert checked == grid.num_steps - computed[0] - len(computed)


def test_foca_reduces_to_the_h1_reconstruction_when_anchors_are_adjacent():
    # cache-dit's uniform-step rule: P = 2 F_k - F_{k-1} + (1/2) [(A - A_prev) - (F_k - F_{k-1})]
    computed, grid = (0, 1, 2, 3), StepGrid.uniform(10)
    gen = torch.Generator().manual_seed(0)
    outputs = {s: torch.randn(5, generator=gen, dtype=torch.float64) for s in computed}
    f_prev, f_cur, anchor_prev, anchor = outputs[2], outputs[3], outputs[2], outputs[3]
    engine = ForecastEngine(FoCa(), grid)
    for s in computed:
        engine.observe("cond", s, outputs[s])
    for target in range(4, 10):
        p = 2 * f_cur - f_prev + 0.5 * ((anchor - anchor_prev) - (f_cur - f_prev))
        f_prev, f_cur = f_cur, p
        torch.testing.assert_close(engine.forecast("cond", target), p, rtol=1e-5, atol=1e-5)


def test_foca_with_one_computed_step_reuses_it():
    for target in range(4, 12):
        np.testing.assert_array_equal(FoCa().coefficients(target, (3,), GRID), [1.0])
