"""The sampling grid of one run, and the time axes predictors measure positions on.

A grid is ComfyUI's ``sample_sigmas``: S evaluation sigmas followed by the final sigma (usually 0), so
``len(sigmas) == S + 1``. Step ``s`` is the model evaluation at ``sigmas[s]``; Euler moves the latent by
``dsigma[s] = sigmas[s + 1] - sigmas[s]`` times the model output of that step.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class TimeAxis(enum.Enum):
    """Where a predictor places steps when it measures distances between them."""

    STEP = "step"  # the step index 0..S-1, as the published TaylorSeer, Spectrum and L2P code do
    SIGMA = "sigma"  # the noise level itself, which respects non-uniform schedules


# Relative tolerance for matching a sampler's sigma against the grid. Sigmas arrive as float32 tensors.
SIGMA_MATCH_RTOL = 1e-4


@dataclass(frozen=True)
class StepGrid:
    """The S+1 sigmas of one sampling run (float64, strictly decreasing but for a repeated final 0)."""

    sigmas: tuple[float, ...]
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.sigmas, dtype=np.float64)
        if arr.ndim != 1 or arr.size < 2:
            raise ValueError(f"StepGrid needs at least 2 sigmas (S evaluations + the final one), got {arr.size}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"StepGrid sigmas must be finite, got {arr.tolist()}")
        if np.any(np.diff(arr[:-1]) >= 0):
            raise ValueError(f"StepGrid evaluation sigmas must strictly decrease, got {arr.tolist()}")
        object.__setattr__(self, "_array", arr)

    @classmethod
    def from_sigmas(cls, sigmas) -> "StepGrid":
        """From any sequence or tensor of S+1 sigmas (e.g. ``transformer_options["sample_sigmas"]``)."""
        if hasattr(sigmas, "detach"):
            sigmas = sigmas.detach().float().cpu().numpy()
        return cls(tuple(float(s) for s in np.asarray(sigmas, dtype=np.float64).reshape(-1)))

    @classmethod
    def uniform(cls, num_steps: int, start: float = 1.0) -> "StepGrid":
        """Evenly spaced sigmas from ``start`` to 0: a stand-in grid for tests and for step-axis predictors."""
        return cls(tuple(np.linspace(start, 0.0, num_steps + 1)))

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    @property
    def array(self) -> np.ndarray:
        """float64 [S+1]."""
        return self._array

    def dsigma(self) -> np.ndarray:
        """float64 [S]: how far Euler moves along each step's output."""
        return np.diff(self._array)

    def positions(self, axis: TimeAxis) -> np.ndarray:
        """float64 [S]: the coordinate of every evaluation step on ``axis``."""
        if axis is TimeAxis.STEP:
            return np.arange(self.num_steps, dtype=np.float64)
        return self._array[:-1].copy()

    def step_of(self, sigma: float) -> int | None:
        """The step whose evaluation sigma equals ``sigma`` (within float32 noise), or None when off-grid."""
        evals = self._array[:-1]
        i = int(np.argmin(np.abs(evals - sigma)))
        tol = SIGMA_MATCH_RTOL * max(abs(float(evals[i])), 1e-6)
        return i if abs(float(evals[i]) - sigma) <= tol else None

    def matches(self, other: "StepGrid", rtol: float = 1e-3) -> bool:
        return self.num_steps == other.num_steps and bool(
            np.allclose(self._array, other._array, rtol=rtol, atol=1e-6)
        )
