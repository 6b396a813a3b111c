"""Fits from G against brute force on materialised trajectories: direct ridge fits, the paper's closed form and Adam,
and the expected rollout error."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.calibration.gram import GramStats
from comfyui_l2p.predictors.calibration.fit import (
    direct_weights, fit_paper_adam, fit_paper_adam_on_trajectories, fit_paper_matrix, forecast_error,
    paper_loss_and_grad, rollout_error, rollout_weights,
)
from comfyui_l2p.predictors.engine.grid import StepGrid

EXACT = 1e-9


def random_trajectories(n: int, s: int, d: int, seed: int) -> np.ndarray:
    """float64 [n, s, d]: smooth-ish random trajectories (a random walk over steps, so steps are correlated)."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.standard_normal((n, s, d)), axis=1) + 2.0 * rng.standard_normal((n, 1, d))


def gram_of(x: np.ndarray) -> np.ndarray:
    """float64 [S, S] = sum over samples of X_n X_n^T."""
    return np.einsum("nsd,ntd->st", x, x)


def stack_rows(x: np.ndarray, steps) -> np.ndarray:
    """[N*D, len(steps)]: each column one step's outputs over all samples and elements."""
    return np.stack([x[:, s].reshape(-1) for s in steps], axis=1)


def recurrence_trajectories(n: int, s: int, d: int, a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """[n, s, d] with F_t = a_t F_{t-1} + b_t F_{t-2} + e_t, where F_0, F_1 and the innovations e_t (t >= 2) are
    orthogonal directions of the flattened [n*d] space: the recurrence is then the unique least-squares fit."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n * d, s)))  # orthonormal columns
    cols = [3.0 * q[:, 0], 2.0 * q[:, 1] + 0.5 * q[:, 0]]
    for t in range(2, s):
        cols.append(a[t] * cols[t - 1] + b[t] * cols[t - 2] + 0.7 * q[:, t])
    return np.stack(cols, axis=0).reshape(s, n, d).transpose(1, 0, 2).copy()


# ---------------------------------------------------------------------------------------------- direct fit
@pytest.mark.parametrize("ridge", [0.0, 0.05])
def test_direct_fit_equals_brute_force_least_squares(ridge):
    x = random_trajectories(3, 12, 40, seed=0)
    gram = gram_of(x)
    for target, computed in [(5, (0, 1, 3)), (11, (0, 2, 4, 7, 9)), (6, (5,))]:
        a = stack_rows(x, computed)
        y = x[:, target].reshape(-1)
        if ridge > 0:
            # the same relative scaling: lambda * mean squared norm of the sources
            lam = ridge * np.mean(np.sum(a * a, axis=0))
            a = np.vstack([a, np.sqrt(lam) * np.eye(len(computed))])
            y = np.concatenate([y, np.zeros(len(computed))])
        expected = np.linalg.lstsq(a, y, rcond=None)[0]
        got = direct_weights(gram, target, computed, ridge)
        np.testing.assert_allclose(got, expected, rtol=EXACT, atol=EXACT)
        # and the error predicted from G is the empirical error
        resid = x[:, target].reshape(-1) - stack_rows(x, computed) @ got
        assert forecast_error(gram, target, computed, got) == pytest.approx(resid @ resid, rel=1e-9)


# ---------------------------------------------------------------------------------------------- paper: closed form
def test_paper_matrix_recovers_a_linear_recurrence():
    s = 9
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 1.5, s), rng.uniform(-0.6, 0.6, s)
    x = recurrence_trajectories(4, s, 30, a, b, seed=2)
    w = fit_paper_matrix(gram_of(x), ridge=0.0)
    expected = np.zeros((s, s))
    expected[0, 0] = w[0, 0]  # F_1 from F_0 alone is not part of the recurrence: checked below
    for t in range(2, s):
        expected[t - 1, t - 1], expected[t - 1, t - 2] = a[t], b[t]
    expected[s - 1, s - 1] = 1.0
    np.testing.assert_allclose(w, expected, atol=1e-10)
    # row 0: the least-squares multiple of F_0 closest to F_1
    f0, f1 = x[:, 0].reshape(-1), x[:, 1].reshape(-1)
    assert w[0, 0] == pytest.approx(f0 @ f1 / (f0 @ f0), rel=1e-12)


def test_paper_matrix_shape_and_exact_recurrence_rolls_out_exactly():
    s = 8
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 1.5, s), rng.uniform(-0.6, 0.6, s)
    # no innovations: every step is exactly a_t F_{t-1} + b_t F_{t-2}, so a rollout from steps 0 and 1 is exact
    f = np.zeros((5, s, 20))
    f[:, 0], f[:, 1] = rng.standard_normal((5, 20)), rng.standard_normal((5, 20))
    for t in range(2, s):
        f[:, t] = a[t] * f[:, t - 1] + b[t] * f[:, t - 2]
    gram = gram_of(f)
    w = fit_paper_matrix(gram, ridge=0.0)
    assert np.all(np.triu(w, 1) == 0) and w[s - 1].tolist() == [0.0] * (s - 1) + [1.0]
    err = rollout_error(gram, w, (0, 1))
    assert np.max(err) <= 1e-9 * np.trace(gram)


def test_paper_matrix_ridge_shrinks_toward_zero():
    gram = gram_of(random_trajectories(2, 6, 10, seed=4))
    w0, w1 = fit_paper_matrix(gram, 0.0), fit_paper_matrix(gram, 10.0)
    assert np.sum(w1[:-1] ** 2) < np.sum(w0[:-1] ** 2)


# ---------------------------------------------------------------------------------------------- paper: Adam
def test_paper_loss_and_gradient_equal_autograd_on_trajectories():
    x = random_trajectories(3, 7, 11, seed=5)
    rng = np.random.default_rng(6)
    w = np.tril(rng.standard_normal((7, 7)))
    loss, grad = paper_loss_and_grad(gram_of(x), w, elements=3 * 11)
    wt = torch.tensor(w, requires_grad=True)
    mask = torch.tril(torch.ones(7, 7, dtype=torch.float64))
    xt = torch.tensor(x)
    ref = (torch.matmul(wt * mask, xt)[:, :-1] - xt[:, 1:]).pow(2).mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("iters", [1, 201])
def test_adam_on_gram_equals_adam_on_trajectories(iters):
    x = random_trajectories(4, 10, 25, seed=7)
    stats = GramStats.from_trajectories({"cond": x}, StepGrid.uniform(10))
    on_gram = fit_paper_adam(stats.role_gram("cond"), iters=iters, elements=stats.element_count)
    on_data = fit_paper_adam_on_trajectories(x, iters=iters)
    np.testing.assert_allclose(on_gram, on_data, rtol=0, atol=1e-10)
    assert np.all(np.triu(on_gram, 1) == 0) and on_gram[-1, -1] == 1.0  # mask and the untrained last row
    if iters > 1:
        assert not np.allclose(on_gram, np.eye(10))  # it did train


def test_long_adam_approaches_the_closed_form():
    s = 6
    rng = np.random.default_rng(8)
    a, b = rng.uniform(0.5, 1.2, s), rng.uniform(-0.4, 0.4, s)
    x = recurrence_trajectories(2, s, 16, a, b, seed=9)  # well-conditioned: orthogonal innovations
    gram = gram_of(x)
    closed = fit_paper_matrix(gram, ridge=0.0)
    short = fit_paper_adam(gram, iters=201, elements=2 * 16)
    long = fit_paper_adam(gram, iters=4000, elements=2 * 16)
    assert np.max(np.abs(long - closed)) < 1e-3
    assert np.max(np.abs(long - closed)) < 0.1 * np.max(np.abs(short - closed))


# ---------------------------------------------------------------------------------------------- rollouts
def test_rollout_error_equals_the_materialised_rollout():
    s = 10
    x = random_trajectories(3, s, 15, seed=10)
    gram = gram_of(x)
    w = fit_paper_matrix(gram, ridge=1e-3)
    computed = (0, 1, 4, 7)
    # materialise the published rollout sample by sample
    hist = np.zeros_like(x)
    for t in range(s):
        hist[:, t] = x[:, t] if t in computed else np.einsum("j,njd->nd", w[t - 1, :t], hist[:, :t])
    empirical = np.sum((hist - x) ** 2, axis=(0, 2))
    np.testing.assert_allclose(rollout_error(gram, w, computed), empirical, rtol=1e-9, atol=1e-9)
    unrolled = rollout_weights(w, computed, s)
    np.testing.assert_allclose(np.einsum("tk,nkd->ntd", unrolled, x[:, list(computed)]), hist, atol=1e-10)


def test_rollout_needs_step_zero():
    with pytest.raises(ValueError, match="step 0"):
        rollout_weights(np.eye(5), (1, 3), 5)
    with pytest.raises(ValueError, match="square"):
        fit_paper_matrix(np.ones((3, 4)), 0.0)
    with pytest.raises(ValueError, match="elements"):
        fit_paper_adam(np.eye(3), elements=0)
