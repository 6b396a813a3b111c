"""The two L2P predictors: the published rollout unrolled exactly, the direct fit on demand, and their refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.engine.linear_predictor import ForecastError
from comfyui_l2p.predictors.engine.history import ForecastEngine
from comfyui_l2p.predictors.calibration.fit import direct_weights, fit_paper_matrix
from comfyui_l2p.predictors.forecasters.l2p import L2PDirect, L2PRollout, unroll_schedule
from comfyui_l2p.predictors.schedules.placements import PUBLISHED_L2P_50, even_schedule

from predictor_cases import shifted_grid

GRID50 = shifted_grid(50)


def walk_gram(s: int, seed: int, n: int = 3, d: int = 64) -> np.ndarray:
    """G of random-walk trajectories [n, s, d] (neighbouring steps correlated, like sampler outputs)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(0.3 * rng.standard_normal((n, s, d)), axis=1) + rng.standard_normal((n, 1, d))
    return np.einsum("nsd,ntd->st", x, x)


@pytest.fixture(scope="module")
def paper_matrix() -> np.ndarray:
    return fit_paper_matrix(walk_gram(50, seed=0), ridge=1e-3)


def test_published_rollout_materialised_equals_the_unrolled_weights(paper_matrix):
    """The release's loop: every step (computed or forecast) appended to the history, x_s = W[s-1, :s] @ history."""
    schedule = PUBLISHED_L2P_50[7]
    truth = torch.randn(50, 2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    history: list[torch.Tensor] = []
    predictor = L2PRollout(paper_matrix)
    unrolled = unroll_schedule(paper_matrix, schedule, 50)
    assert sorted(unrolled) == [s for s in range(50) if s not in schedule]
    engine = ForecastEngine(predictor, GRID50)
    for step in range(50):
        if step in schedule:
            value = truth[step]
            engine.observe("cond", step, truth[step])
        else:
            value = sum(float(paper_matrix[step - 1, j]) * history[j] for j in range(step))
            computed = tuple(s for s in schedule if s < step)
            coef = predictor.coefficients(step, computed, GRID50)
            from_weights = sum(float(c) * truth[s] for c, s in zip(coef, computed))
            # exact in float64: the unrolled weights over computed outputs ARE the rollout
            torch.testing.assert_close(from_weights, value, rtol=1e-11, atol=1e-11)
            np.testing.assert_allclose(coef, unrolled[step][:len(computed)], rtol=1e-12, atol=1e-14)
            assert np.all(unrolled[step][len(computed):] == 0)  # later computed steps play no part
            # the engine forms the same sum (its accumulation is float32)
            torch.testing.assert_close(engine.forecast("cond", step), value, rtol=1e-5, atol=1e-5 * value.abs().max())
        history.append(value)


def test_rollout_with_every_step_computed_is_the_one_step_fit(paper_matrix):
    gram = walk_gram(50, seed=0)
    direct = L2PDirect(gram, ridge=1e-3)
    rollout = L2PRollout(paper_matrix)
    for target in (1, 7, 30, 49):
        computed = tuple(range(target))
        np.testing.assert_allclose(rollout.coefficients(target, computed, GRID50),
                                   direct.coefficients(target, computed, GRID50), rtol=1e-12, atol=1e-12)


def test_rollout_refusals(paper_matrix):
    rollout = L2PRollout(paper_matrix)
    with pytest.raises(ForecastError, match="step 0"):
        rollout.coefficients(5, (1, 2), GRID50)
    with pytest.raises(ValueError, match="fitted for 50 steps but the run has 28"):
        rollout.coefficients(5, (0, 2), shifted_grid(28))
    upper = np.eye(4)
    upper[0, 2] = 0.5
    with pytest.raises(ValueError, match="transposed"):
        L2PRollout(upper)
    with pytest.raises(ValueError, match="square"):
        L2PRollout(np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        L2PRollout(np.full((3, 3), np.nan))


def test_predictors_are_immutable_and_hashable(paper_matrix):
    a, b = L2PRollout(paper_matrix), L2PRollout(paper_matrix.copy())
    assert a == b and hash(a) == hash(b) and a.history_limit is None
    with pytest.raises(ValueError):
        a.array[1, 0] = 3.0
    gram = walk_gram(10, seed=2)
    d1, d2 = L2PDirect(gram, 0.1, 3), L2PDirect(gram.tolist(), 0.1, 3)
    assert d1 == d2 and hash(d1) == hash(d2) and d1.history_limit == 3
    assert d1 != L2PDirect(gram, 0.2, 3)
    with pytest.raises(Exception):
        d1.ridge = 1.0  # frozen


def test_direct_fits_any_schedule_on_demand():
    gram = walk_gram(20, seed=3)
    grid = shifted_grid(20)
    predictor = L2PDirect(gram, ridge=0.01)
    # an adaptive schedule with a forced extra computation: weights are fitted for exactly this computed set
    computed = (0, 1, 5, 6, 11)
    for target in (7, 13, 19):
        known = tuple(c for c in computed if c < target)
        np.testing.assert_array_equal(predictor.coefficients(target, known, grid),
                                      direct_weights(gram, target, known, 0.01))
    windowed = L2PDirect(gram, ridge=0.01, window=2)
    coef = windowed.coefficients(13, computed, grid)
    np.testing.assert_array_equal(coef[:3], 0.0)
    np.testing.assert_array_equal(coef[3:], direct_weights(gram, 13, (6, 11), 0.01))


def test_direct_forecasts_through_the_engine():
    s = 12
    grid = shifted_grid(s)
    rng = np.random.default_rng(4)
    x = np.cumsum(rng.standard_normal((2, s, 30)), axis=1)
    gram = np.einsum("nsd,ntd->st", x, x)
    schedule = even_schedule(s, 4, warmup=2)
    engine = ForecastEngine(L2PDirect(gram, ridge=0.0), grid)
    for step in range(s):
        if step in schedule:
            engine.observe("cond", step, torch.tensor(x[:, step]))
            continue
        computed = [c for c in schedule if c < step]
        a = np.stack([x[:, c].reshape(-1) for c in computed], axis=1)
        w = np.linalg.lstsq(a, x[:, step].reshape(-1), rcond=None)[0]
        expected = torch.tensor(np.einsum("k,knd->nd", w, x[:, computed].transpose(1, 0, 2)))
        torch.testing.assert_close(engine.forecast("cond", step), expected, rtol=1e-5, atol=1e-5)


def test_direct_refusals():
    gram = walk_gram(6, seed=5)
    with pytest.raises(ValueError, match="fitted for 6 steps but the run has 7"):
        L2PDirect(gram).coefficients(3, (0, 1), shifted_grid(7))
    with pytest.raises(ValueError, match="ridge"):
        L2PDirect(gram, ridge=-1.0)
    with pytest.raises(ValueError, match="window"):
        L2PDirect(gram, window=0)
    asym = gram.copy()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        L2PDirect(asym)
