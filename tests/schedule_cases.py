"""Synthetic calibration data for the schedule tests (test_schedules.py, test_schedule_search.py, test_cfg_streams.py):
a shifted flow-matching grid, smooth trajectories, their Gram, a schedule's error measured on the trajectories, and
the final-error coefficients built step by step (also test_validation.py)."""
import numpy as np

from comfyui_l2p.predictors.calibration import fit
from comfyui_l2p.predictors.engine.grid import StepGrid


def flux_like_grid(num_steps: int, shift: float = 3.0) -> StepGrid:
    """Shifted flow-matching sigmas (non-uniform dsigma), as FLUX/SD3 schedules use."""
    t = np.linspace(1.0, 0.0, num_steps + 1)
    return StepGrid(tuple(shift * t / (1 + (shift - 1) * t)))


def smooth_trajectories(grid: StepGrid, samples: int, dim: int, seed: int, noise: float = 0.01) -> np.ndarray:
    """float64 [samples, S, dim]: outputs that vary smoothly with sigma, plus a little per-step noise."""
    rng = np.random.default_rng(seed)
    sig = grid.array[:-1]
    basis = np.stack([np.cos(np.pi * m * sig / sig[0]) for m in range(6)], axis=1)  # [S, 6]
    coef = rng.normal(size=(samples, 6, dim)) / (1.0 + np.arange(6))[None, :, None] ** 1.5
    return np.einsum("sm,nmd->nsd", basis, coef) + noise * rng.normal(size=(samples, grid.num_steps, dim))


def gram_of(traj: np.ndarray) -> np.ndarray:
    return np.einsum("nsd,ntd->st", traj, traj)


def random_gram(num_steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(num_steps, num_steps + 3))
    return a @ a.T


def materialised_final_error(traj, grid, computed, ridge, step_weights=None) -> float:
    """Forecast every skipped step from the computed steps before it, integrate the errors with Euler's dsigma
    (or step_weights) and sum the squared error of the final latent over all samples."""
    d = np.abs(grid.dsigma()) if step_weights is None else step_weights
    gram = gram_of(traj)
    err = np.zeros((traj.shape[0], traj.shape[2]))
    for s in range(grid.num_steps):
        if s in computed:
            continue
        past = [c for c in computed if c < s]
        w = fit.direct_weights(gram, s, past, ridge)
        err += d[s] * (np.einsum("j,njd->nd", w, traj[:, past]) - traj[:, s])
    return float(np.sum(err**2))


def brute_force_coefficients(gram: np.ndarray, grid: StepGrid, computed, ridge: float, prior=None) -> np.ndarray:
    """float64 [S]: the final-latent error's coefficients c (the error is c^T G c), built step by step from the
    direct fit of each forecast step on ``gram`` (shrunk toward ``prior``'s weights when given): what
    ``optimizer.final_error_coefficients`` computes in one pass."""
    d = np.abs(grid.dsigma())
    coef = np.zeros(grid.num_steps)
    for s in range(grid.num_steps):
        if s in computed:
            continue
        past = [c for c in computed if c < s]
        shrink_to = None if prior is None else prior.coefficients(s, past, grid)
        coef[past] += d[s] * fit.direct_weights(gram, s, past, ridge, prior=shrink_to)
        coef[s] -= d[s]
    return coef

