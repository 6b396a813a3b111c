"""Grid transfer: the spline operator, exactness on the same grid, symmetry/PSD, refusals, and closeness on smooth
trajectory statistics. (How well the transferred fits forecast is measured by scripts/transfer_experiment.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from comfyui_l2p.predictors.calibration.gram import GramStats
from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.calibration.transfer import resample_gram, spline_matrix

from predictor_cases import shifted_grid


def smooth_stats(grid: StepGrid, roles=("cond",), seed: int = 0, samples: int = 3) -> GramStats:
    """Statistics of F(sigma; n) = sum_k a_k(n) phi_k(sigma), exact on any grid: G = Phi A Phi^T per role pair."""
    rng = np.random.default_rng(seed)
    sig = grid.array[:-1]
    phi = np.stack([np.ones_like(sig), sig, np.cos(3 * sig), np.sin(5 * sig + 0.3), np.exp(-6 * sig)], axis=1)
    k = phi.shape[1]
    coefs = rng.standard_normal((len(roles), samples * 16, k))  # [R, N*D, K], roles share nothing but the basis
    coefs[1:] = 0.6 * coefs[:1] + 0.8 * coefs[1:]  # correlated roles (cond/uncond)
    feats = np.concatenate([phi @ c.T for c in coefs], axis=0)  # [R*S, N*D]
    return GramStats(feats @ feats.T, samples, samples * 16, grid, roles)


def test_spline_operator_reproduces_cubics_and_is_the_identity_on_its_knots():
    x = shifted_grid(11).array[:-1]  # decreasing, non-uniform
    new = np.linspace(x.min(), x.max(), 23)
    p = spline_matrix(x, new)
    for degree in range(4):
        y = (x - 0.3) ** degree
        np.testing.assert_allclose(p @ y, (new - 0.3) ** degree, atol=1e-12)
    assert np.array_equal(spline_matrix(x, x), np.eye(x.size))
    with pytest.raises(ValueError, match="leave the knot range"):
        spline_matrix(x, np.array([x.max() + 1.0]))


def test_few_knots_use_the_interpolating_polynomial():
    x = np.array([0.9, 0.5, 0.2])
    new = np.array([0.8, 0.3, 0.5])
    np.testing.assert_allclose(spline_matrix(x, new) @ (x ** 2 - x), new ** 2 - new, atol=1e-12)


@pytest.mark.parametrize("roles", [("cond",), ("cond", "uncond")])
def test_same_grid_is_exact(roles):
    stats = smooth_stats(shifted_grid(12), roles)
    out = resample_gram(stats, shifted_grid(12))
    np.testing.assert_allclose(out.gram, stats.gram, rtol=1e-12, atol=1e-12 * np.max(stats.gram))
    assert (out.sample_count, out.element_count, out.roles) == (stats.sample_count, stats.element_count, roles)


@pytest.mark.parametrize("roles", [("cond",), ("cond", "uncond")])
@pytest.mark.parametrize("steps, shift", [(20, 3.0), (28, 3.0), (28, 2.0), (50, 3.0)])
def test_resampled_gram_is_symmetric_psd_and_close_to_direct_calibration(roles, steps, shift):
    source = smooth_stats(shifted_grid(50), roles)
    target = shifted_grid(steps, shift)
    out = resample_gram(source, target)
    direct = smooth_stats(target, roles)  # the same samples, calibrated on the target grid
    size = len(roles) * steps
    assert out.gram.shape == (size, size) and out.grid == target
    assert np.array_equal(out.gram, out.gram.T)
    assert np.min(np.linalg.eigvalsh(out.gram)) >= -1e-10 * np.max(np.diag(out.gram))
    # smooth statistics interpolate closely (measured <= 5e-4 of the largest entry at 20 and 28 steps)
    assert np.max(np.abs(out.gram - direct.gram)) <= 5e-3 * np.max(np.abs(direct.gram))


def test_noisy_statistics_still_give_a_valid_gram():
    """A rough G (independent per-step noise, so correlations jump at the diagonal) still comes out PSD with the
    interpolated norms on its diagonal."""
    rng = np.random.default_rng(3)
    grid = shifted_grid(15)
    feats = rng.standard_normal((15, 40)) * np.linspace(3, 1, 15)[:, None]
    stats = GramStats(feats @ feats.T, 2, 40, grid)
    out = resample_gram(stats, shifted_grid(9, shift=2.0))
    assert np.min(np.linalg.eigvalsh(out.gram)) >= -1e-10 * np.max(np.diag(out.gram))
    assert np.all(np.diag(out.gram) > 0)
    norms = np.sqrt(np.diag(out.gram))
    corr = out.gram / np.outer(norms, norms)
    assert np.max(np.abs(corr)) <= 1.0 + 1e-12


def test_refuses_grids_outside_the_calibrated_range():
    stats = smooth_stats(shifted_grid(20))
    with pytest.raises(ValueError, match="leave the calibrated range"):
        resample_gram(stats, shifted_grid(50))  # reaches lower sigmas than the 20-step calibration
    with pytest.raises(ValueError, match="leave the calibrated range"):
        resample_gram(stats, StepGrid(tuple(np.linspace(1.2, 0.0, 11))))
    # float32 round-off of the same range is accepted
    sig = np.array(shifted_grid(20).array, dtype=np.float32).astype(np.float64)
    sig[0] *= 1.0 + 1e-6
    resample_gram(stats, StepGrid(tuple(sig)))


def test_refuses_statistics_it_cannot_interpolate():
    one = GramStats(np.ones((1, 1)), 1, 1, StepGrid((1.0, 0.0)))
    with pytest.raises(ValueError, match="1 step"):
        resample_gram(one, StepGrid((1.0, 0.0)))
    dead = np.diag([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="zero output energy at step 1"):
        resample_gram(GramStats(dead, 1, 1, StepGrid((1.0, 0.6, 0.3, 0.0))), StepGrid((1.0, 0.5, 0.0)))
