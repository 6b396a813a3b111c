"""Fits from the calibration Gram matrix G (float64 [S, S], G[i, j] = sum over samples of <F_i, F_j>).

Every least-squares objective over linear forecasts depends on the data only through G:
    E || F_t - sum_j w_j F_j ||^2 = G[t, t] - 2 w . G[C, t] + w^T G[C, C] w
so a fit is a small ridge solve. Ridge is relative: lambda * mean(diag(G[C, C])), so one lambda means the same
whatever the latent size, resolution or number of samples behind G.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def ridge_solve(gram: np.ndarray, target: int, sources: Sequence[int], ridge: float) -> np.ndarray:
    """Weights w (float64 [len(sources)]) minimising E||F_target - sum_j w_j F_sources[j]||^2 + ridge-penalty.

    ``ridge`` is relative to the mean energy of the sources; 0 gives the plain least-squares solution
    (minimum-norm when G[C, C] is singular).
    """
    idx = list(sources)
    a = gram[np.ix_(idx, idx)]
    b = gram[idx, target]
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if ridge == 0:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    scale = float(np.trace(a)) / len(idx)
    return np.linalg.solve(a + ridge * max(scale, 1e-300) * np.eye(len(idx)), b)


def direct_weights(gram: np.ndarray, target: int, computed: Sequence[int], ridge: float) -> np.ndarray:
    """The direct L2P fit: forecast step ``target`` from the computed steps only. float64 [len(computed)]."""
    return ridge_solve(gram, target, computed, ridge)


def forecast_error(gram: np.ndarray, target: int, sources: Sequence[int], weights: np.ndarray) -> float:
    """E||F_target - sum_j w_j F_sources[j]||^2 under the statistics in ``gram`` (same units as G)."""
    idx = list(sources)
    w = np.asarray(weights, dtype=np.float64)
    return float(gram[target, target] - 2.0 * w @ gram[idx, target] + w @ gram[np.ix_(idx, idx)] @ w)
