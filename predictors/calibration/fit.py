"""Fits from the calibration Gram matrix G (float64 [S, S], G[i, j] = sum over samples of <F_i, F_j>).

Every least-squares objective over linear forecasts depends on the data only through G:
    E || F_t - sum_j w_j F_j ||^2 = G[t, t] - 2 w . G[C, t] + w^T G[C, C] w
so a fit is a small ridge solve. Ridge is relative: lambda * mean(diag(G[C, C])), so one lambda means the same
whatever the latent size, resolution or number of samples behind G.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# Relative ridge of the direct fit. Measured on the reference model (python3 -m benchmark.sweep): quality rises
# steadily from 1e-1 down to 1e-5 (+5..8 dB over 1e-3) and is flat below; 1e-6 keeps a guard against singular G.
DEFAULT_RIDGE = 1e-6


def ridge_solve(gram: np.ndarray, target: int, sources: Sequence[int], ridge: float,
                prior: np.ndarray | None = None) -> np.ndarray:
    """Weights w (float64 [len(sources)]) minimising E||F_target - sum_j w_j F_sources[j]||^2 + ridge-penalty.

    ``ridge`` is relative to the mean energy of the sources; 0 gives the plain least-squares solution
    (minimum-norm when G[C, C] is singular). ``prior`` (weights over the sources, e.g. a training-free
    predictor's): the penalty is on w - prior, so the fit shrinks toward it instead of toward 0.
    """
    idx = list(sources)
    a = gram[np.ix_(idx, idx)]
    b = gram[idx, target]
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if ridge == 0:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    scale = max(float(np.trace(a)) / len(idx), 1e-300)
    if prior is not None:
        b = b + ridge * scale * np.asarray(prior, dtype=np.float64)
    return np.linalg.solve(a + ridge * scale * np.eye(len(idx)), b)


def level_preserving_solve(gram: np.ndarray, target: int, sources: Sequence[int], ridge: float,
                           groups: Sequence[int], sums: Sequence[float]) -> np.ndarray:
    """``ridge_solve`` under equality constraints: the weights of the sources in group k sum to ``sums[k]``.

    groups: a group index per source (0..len(sums)-1). With one group summing to 1 the forecast of a signal that
    is constant over the steps is exact, whatever the statistics: a drift common to the history passes through
    at gain 1, neither damped nor amplified. Solved via the KKT system [A C^T; C 0] [w; mu] = [b; sums].
    float64 [len(sources)].
    """
    idx = list(sources)
    if len(groups) != len(idx):
        raise ValueError(f"need one group per source, got {len(groups)} groups for {len(idx)} sources")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    a = gram[np.ix_(idx, idx)].astype(np.float64, copy=True)
    b = gram[idx, target].astype(np.float64, copy=True)
    scale = max(float(np.trace(a)) / len(idx), 1e-300)
    a += ridge * scale * np.eye(len(idx))
    c = np.zeros((len(sums), len(idx)))
    c[np.asarray(groups), np.arange(len(idx))] = 1.0
    kkt = np.block([[a / scale, c.T], [c, np.zeros((len(sums), len(sums)))]])
    rhs = np.concatenate([b / scale, np.asarray(sums, dtype=np.float64)])
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:len(idx)]


def direct_weights(gram: np.ndarray, target: int, computed: Sequence[int], ridge: float,
                   preserve_level: bool = False, prior: np.ndarray | None = None) -> np.ndarray:
    """The direct L2P fit: forecast step ``target`` from the computed steps only. float64 [len(computed)].

    preserve_level: the weights sum to 1 (``level_preserving_solve`` with one group). prior: shrink toward these
    weights instead of 0 (``ridge_solve``)."""
    if preserve_level:
        if prior is not None:
            raise ValueError("a prior and preserve_level cannot be combined")
        return level_preserving_solve(gram, target, computed, ridge, [0] * len(computed), [1.0])
    return ridge_solve(gram, target, computed, ridge, prior)


def forecast_error(gram: np.ndarray, target: int, sources: Sequence[int], weights: np.ndarray) -> float:
    """E||F_target - sum_j w_j F_sources[j]||^2 under the statistics in ``gram`` (same units as G)."""
    idx = list(sources)
    w = np.asarray(weights, dtype=np.float64)
    return float(gram[target, target] - 2.0 * w @ gram[idx, target] + w @ gram[np.ix_(idx, idx)] @ w)


# ---------------------------------------------------------------------------------------------- the paper's fit
def _check_square(gram: np.ndarray, what: str = "gram") -> np.ndarray:
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] < 1:
        raise ValueError(f"{what} must be a square float64 [S, S] matrix, got shape {list(gram.shape)}")
    return gram


def fit_paper_matrix(gram: np.ndarray, ridge: float) -> np.ndarray:
    """The paper's teacher-forced objective solved in closed form. float64 [S, S], lower-triangular.

    Row s-1 holds the weights (columns 0..s-1) predicting F_s from the true F_0..F_{s-1}, each row its own ridge
    solve (the rows of the paper's loss are independent). Row S-1 predicts nothing (there is no step S) and stays
    the identity row, as in the paper's initialisation.
    """
    gram = _check_square(gram)
    size = gram.shape[0]
    matrix = np.zeros((size, size))
    for step in range(1, size):
        matrix[step - 1, :step] = ridge_solve(gram, step, range(step), ridge)
    matrix[size - 1, size - 1] = 1.0
    return matrix


def paper_loss_and_grad(gram: np.ndarray, matrix: np.ndarray, elements: float) -> tuple[float, np.ndarray]:
    """The paper's training loss and its gradient, from G alone.

    The paper minimises mean((W_masked @ X)[:, :S-1] - X[:, 1:])^2 over X [N, S, D]. With G = sum_n X_n X_n^T
    and V = W_masked[:S-1] ([S-1, S]), the summed squared error is
        tr(V G V^T) - 2 tr(V G[:, 1:]) + tr(G[1:, 1:]),
    and the mean divides it by (S-1) * N * D = (S-1) * ``elements``. Gradient (float64 [S, S]) of that mean with
    respect to the unmasked W: 2 (V G - G[1:, :]) / ((S-1) * elements) on rows 0..S-2 times the mask, 0 on row S-1.
    """
    size = gram.shape[0]
    mask = np.tril(np.ones((size, size)))
    v = (matrix * mask)[:-1]
    norm = (size - 1) * float(elements)
    vg = v @ gram
    sse = float(np.sum(vg * v) - 2.0 * np.sum(v * gram[1:, :]) + np.trace(gram[1:, 1:]))
    grad = np.zeros((size, size))
    grad[:-1] = 2.0 * (vg - gram[1:, :]) / norm
    return sse / norm, grad * mask


#: the release's optimiser loop runs 201 full-batch Adam steps (epochs 0..200) and writes W after the last one
PAPER_ADAM_ITERS = 201
PAPER_ADAM_LR = 0.01


def fit_paper_adam(gram: np.ndarray, lr: float = PAPER_ADAM_LR, iters: int = PAPER_ADAM_ITERS, *,
                   elements: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> np.ndarray:
    """The paper's fit, computed from G: Adam on the masked lower-triangular W from the identity, full batch.

    ``elements`` is N * D, the number of elements per step behind G (``GramStats.element_count``): the loss is the
    paper's mean squared error, and Adam's eps makes the iterates depend (slightly) on that normalisation.
    The Adam update is torch.optim.Adam's (bias-corrected, no weight decay). float64 [S, S].
    """
    gram = _check_square(gram)
    if not elements > 0:
        raise ValueError(f"elements must be > 0 (samples times elements per sample), got {elements}")
    if iters < 0 or lr <= 0:
        raise ValueError(f"need iters >= 0 and lr > 0, got iters={iters}, lr={lr}")
    size = gram.shape[0]
    matrix = np.eye(size)
    m = np.zeros_like(matrix)
    v = np.zeros_like(matrix)
    beta1, beta2 = betas
    for it in range(1, iters + 1):
        _, grad = paper_loss_and_grad(gram, matrix, elements)
        m = beta1 * m + (1.0 - beta1) * grad
        v = beta2 * v + (1.0 - beta2) * grad * grad
        step_size = lr / (1.0 - beta1 ** it)
        denom = np.sqrt(v) / np.sqrt(1.0 - beta2 ** it) + eps
        matrix = matrix - step_size * m / denom
    return matrix


def fit_paper_adam_on_trajectories(trajectories, lr: float = PAPER_ADAM_LR, iters: int = PAPER_ADAM_ITERS,
                                   ) -> np.ndarray:
    """Reference for ``fit_paper_adam``: the release's training loop on materialised trajectories X [N, S, D].

    torch autograd and torch.optim.Adam in float64 on the CPU; loss = mean((W*mask @ X)[:, :-1] - X[:, 1:])^2.
    Memory is the whole of X: use it for parity checks on small data only.
    """
    import torch  # local: the rest of this module is numpy only

    x = torch.as_tensor(trajectories).to(torch.float64)
    if x.ndim != 3:
        raise ValueError(f"trajectories must be [N, S, D], got shape {list(x.shape)}")
    size = x.shape[1]
    mask = torch.tril(torch.ones(size, size, dtype=torch.float64))
    weight = torch.eye(size, dtype=torch.float64).requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    for _ in range(iters):
        pred = torch.matmul(weight * mask, x)[:, :-1]
        loss = (pred - x[:, 1:]).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return weight.detach().numpy().copy()


# ---------------------------------------------------------------------------------------------- rollouts
def rollout_weights(matrix: np.ndarray, computed_steps: Sequence[int], num_steps: int) -> np.ndarray:
    """The published autoregressive rollout, unrolled. float64 [num_steps, K] over the K computed steps.

    History x_0..x_{s-1} holds every earlier step, computed (its true output) or forecast, and a forecast is
    x_s = sum_{j<s} W[s-1, j] x_j. Each x_s is a weight vector over the computed outputs (a computed step is a unit
    vector), so row s is the forecast of step s as weights over the computed outputs. Rows of computed steps are
    unit vectors. Step 0 must be computed.
    """
    matrix = _check_square(matrix, "L2P matrix")
    computed = tuple(int(s) for s in computed_steps)
    if not computed or computed[0] != 0:
        raise ValueError(f"the L2P rollout starts from step 0, which must be computed; computed steps: {computed}")
    if any(b <= a for a, b in zip(computed, computed[1:])) or computed[-1] >= num_steps:
        raise ValueError(f"computed steps must increase within 0..{num_steps - 1}, got {computed}")
    if num_steps > matrix.shape[0]:
        raise ValueError(f"an L2P matrix of size {matrix.shape[0]} covers at most {matrix.shape[0]} steps, "
                         f"asked for {num_steps}")
    slot_of = {step: k for k, step in enumerate(computed)}
    out = np.zeros((num_steps, len(computed)))
    for step in range(num_steps):
        if step in slot_of:
            out[step, slot_of[step]] = 1.0
        else:
            out[step] = matrix[step - 1, :step] @ out[:step]
    return out


def rollout_error(gram: np.ndarray, matrix: np.ndarray, computed_steps: Sequence[int]) -> np.ndarray:
    """float64 [S]: E||x_s - F_s||^2 of the published rollout with ``computed_steps`` (0 at computed steps), under
    the statistics in ``gram`` (same units as G: summed over samples). Weight and sum it as the schedule needs,
    e.g. by dsigma^2 for the per-step error that reaches an Euler sampler's result."""
    gram = _check_square(gram)
    computed = tuple(int(s) for s in computed_steps)
    weights = rollout_weights(matrix, computed, gram.shape[0])
    errors = np.zeros(gram.shape[0])
    for step in range(gram.shape[0]):
        if step not in computed:
            errors[step] = forecast_error(gram, step, computed, weights[step])
    return errors
