"""L2P (learnable linear predictor): learned weights over earlier outputs, in two forms.

L2PRollout: the published L2P (methods.md section 1).
Formula:   one lower-triangular matrix W [S, S]; every step's value x_s enters the history, computed (its true
           output) or forecast, and a skipped step is x_s = sum_{j<s} W[s-1, j] x_j: an autoregressive rollout over
           ALL previous steps. W is fitted teacher-forced (``fit.fit_paper_matrix`` / ``fit.fit_paper_adam``) or
           loaded from the release's weight.txt; one matrix serves every schedule.
Unrolling: every x_s is a float64 weight vector over the computed outputs (computed steps are unit vectors), so the
           rollout runs on K-vectors (``fit.rollout_weights``) and the engine takes one weighted sum. O(S^2 K).
State:     the matrix (S^2 floats). history_limit None: a forecast reaches every computed output through the
           forecasts it feeds back, so the engine keeps all K computed outputs per stream.

L2PDirect: the direct form (DESIGN.md: the most reliable L2P measured so far).
Formula:   F_hat[t] = sum_i w_i F[c_i] over the computed steps c only (the most recent ``window`` of them), with w
           the ridge least-squares fit for exactly that target and computed set under the calibration Gram G
           (``fit.direct_weights``). Fitted on demand, so any schedule works, adaptive ones and forced extra
           computations included; no forecast is fed back.
State:     G (S^2 floats); the engine keeps ``window`` computed outputs per stream (all K when window is None).

Neighbours: the rollout and the direct form agree when every earlier step is computed (both are then the
teacher-forced one-step fit); they differ on gaps, where the rollout chains one-step forecasts trained on true
histories, and the direct form is fitted for the gap itself. FoCa also feeds its forecasts back, with fixed
formulas instead of learned weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from ..engine.linear_predictor import ForecastError, LinearPredictor
from ..calibration.fit import direct_weights, rollout_weights
from ..engine.grid import StepGrid


def _frozen_square(values, what: str) -> tuple[tuple[float, ...], ...]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(f"{what} must be a square [S, S] matrix with S >= 2, got shape {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return tuple(tuple(float(x) for x in row) for row in arr)


def _read_only(rows: tuple[tuple[float, ...], ...]) -> np.ndarray:
    arr = np.array(rows, dtype=np.float64)
    arr.setflags(write=False)
    return arr


def _check_grid_size(name: str, size: int, grid: StepGrid) -> None:
    if grid.num_steps != size:
        raise ValueError(f"{name} was fitted for {size} steps but the run has {grid.num_steps}: sample with "
                         f"{size} steps, or recalibrate (or resample the calibration) for {grid.num_steps}")


class _SquareMatrix:
    """What both L2P predictors expose about their [S, S] matrix (stored read-only in ``_array``)."""

    _array: np.ndarray

    @property
    def array(self) -> np.ndarray:
        """float64 [S, S], read-only."""
        return self._array

    @property
    def num_steps(self) -> int:
        return self._array.shape[0]


def unroll_schedule(matrix, computed_steps: Sequence[int], num_steps: int) -> dict[int, np.ndarray]:
    """The published rollout for one schedule: forecast step -> float64 [K] weights over the computed steps."""
    weights = rollout_weights(np.asarray(matrix, dtype=np.float64), computed_steps, num_steps)
    computed = set(int(s) for s in computed_steps)
    return {step: weights[step].copy() for step in range(num_steps) if step not in computed}


@dataclass(frozen=True)
class L2PRollout(_SquareMatrix, LinearPredictor):
    """The published L2P: ``matrix`` float64 [S, S], lower-triangular (row s-1 forecasts step s)."""

    name: ClassVar[str] = "l2p_rollout"
    matrix: tuple[tuple[float, ...], ...]
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows = _frozen_square(self.matrix, "L2P matrix")
        arr = _read_only(rows)
        upper = np.triu(arr, k=1)
        if np.any(upper != 0):
            i, j = np.argwhere(upper != 0)[0]
            raise ValueError(f"L2P matrix must be lower-triangular (row s-1 weighs steps 0..s-1), but entry "
                             f"[{i}, {j}] = {arr[i, j]:g} lies above the diagonal: is the matrix transposed?")
        object.__setattr__(self, "matrix", rows)
        object.__setattr__(self, "_array", arr)

    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        _check_grid_size(self.name, self.num_steps, grid)
        if computed[0] != 0:
            raise ForecastError(f"{self.name}: the rollout starts from step 0, which was not computed "
                                f"(computed steps: {computed}); compute step 0 (warm-up >= 1)")
        return rollout_weights(self._array, computed, target + 1)[target]


@dataclass(frozen=True)
class L2PDirect(_SquareMatrix, LinearPredictor):
    """Direct L2P: per-(target, computed set) ridge fit over the computed outputs under ``gram`` [S, S].

    gram:   the calibration Gram of the stream being forecast (``GramStats.role_gram`` / ``combined_gram``).
    ridge:  relative ridge (see ``fit.ridge_solve``), >= 0.
    window: fit over at most this many most recent computed outputs (None: all of them).
    preserve_level: constrain the weights to sum to 1 (``fit.level_preserving_solve``).
    prior:  a training-free predictor the ridge shrinks toward (its weights for the same target and computed
            steps) instead of toward 0; None: plain ridge.
    """

    name: ClassVar[str] = "l2p_direct"
    gram: tuple[tuple[float, ...], ...]
    ridge: float = 1e-4
    window: int | None = None
    preserve_level: bool = False
    prior: LinearPredictor | None = None
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.prior is not None and (not isinstance(self.prior, LinearPredictor) or self.preserve_level):
            raise ValueError(f"L2PDirect prior must be a LinearPredictor, without preserve_level; got {self.prior!r}")
        rows = _frozen_square(self.gram, "L2P calibration Gram")
        arr = _read_only(rows)
        if np.max(np.abs(arr - arr.T)) > 1e-9 * max(float(np.max(np.abs(np.diag(arr)))), 1e-300):
            raise ValueError("L2P calibration Gram must be symmetric")
        if not (isinstance(self.ridge, (int, float)) and np.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"L2PDirect ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int)
                                        or self.window < 1):
            raise ValueError(f"L2PDirect window must be a positive integer or None, got {self.window!r}")
        object.__setattr__(self, "gram", rows)
        object.__setattr__(self, "ridge", float(self.ridge))
        object.__setattr__(self, "_array", arr)

    @property
    def history_limit(self) -> int | None:
        return self.window

    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        _check_grid_size(self.name, self.num_steps, grid)
        prior = None if self.prior is None else self.prior.coefficients(target, computed, grid)
        return direct_weights(self._array, target, computed, self.ridge, self.preserve_level, prior)
