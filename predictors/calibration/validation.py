"""Choosing the fit by leave-one-trajectory-out validation inside a file's statistics.

Formula: for a candidate fit (relative ridge lambda, and optionally a training-free predictor the ridge shrinks
toward, ``fit.ridge_solve``'s prior) and a schedule C, hold out each sampled trajectory n: fit on G - G_n (the
pooled Gram without it), and measure n's own final-latent error c_n^T G_n c_n (``schedules.optimizer``'s
coefficients, with the schedule search's step weights). The score is the sum over the sampled trajectories and the
streams; the candidate with the smallest score wins. Exact for every trajectory in the sample
(``trajectory_grams``), because G_n is exactly what n added to G.

State: none. Cost: candidates x trajectories x streams x one schedule's K small solves (milliseconds at 50 steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..engine.grid import StepGrid
from ..engine.linear_predictor import LinearPredictor
from ..schedules.optimizer import final_error_coefficients


@dataclass(frozen=True)
class FitCandidate:
    """One fit to validate: a relative ridge (>= 0) and what it shrinks toward (None: zero)."""

    ridge: float
    prior: LinearPredictor | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.ridge, (int, float)) and np.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"FitCandidate.ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.prior is not None and not isinstance(self.prior, LinearPredictor):
            raise ValueError(f"FitCandidate.prior must be a LinearPredictor or None, got {self.prior!r}")

    def describe(self) -> str:
        toward = "" if self.prior is None else f" toward {self.prior.name}"
        return f"ridge {self.ridge:g}{toward}"


def leave_one_out_scores(pooled: Mapping[str, np.ndarray], trajectories: Mapping[str, np.ndarray], grid: StepGrid,
                         computed: Sequence[int], candidates: Sequence[FitCandidate],
                         step_weights=None) -> np.ndarray:
    """float64 [len(candidates)]: the summed held-out final-latent error of each candidate (module docstring).

    pooled: stream -> float64 [S, S], the Gram the stream is fitted on; trajectories: stream -> float64 [T, S, S],
    the sampled trajectories' blocks of it (T >= 2: one is held out, the rest must remain)."""
    if set(pooled) != set(trajectories) or not pooled:
        raise ValueError(f"validation needs the same streams pooled and per trajectory, got {sorted(pooled)} and"
                         f" {sorted(trajectories)}")
    scores = np.zeros(len(candidates))
    for stream, grams in trajectories.items():
        grams = np.asarray(grams, dtype=np.float64)
        if grams.ndim != 3 or grams.shape[0] < 2:
            raise ValueError(f"stream {stream!r}: leave-one-out needs at least 2 sampled trajectories, got"
                             f" {list(grams.shape)}")
        for held_out in grams:
            rest = pooled[stream] - held_out
            for i, cand in enumerate(candidates):
                c = final_error_coefficients(rest, grid, computed, cand.ridge, step_weights, prior=cand.prior)
                scores[i] += float(c @ held_out @ c)
    return scores


def choose_fit(pooled, trajectories, grid: StepGrid, computed: Sequence[int], candidates: Sequence[FitCandidate],
               step_weights=None) -> tuple[FitCandidate, np.ndarray]:
    """(the candidate with the smallest leave-one-out score, every candidate's score)."""
    if not candidates:
        raise ValueError("choose_fit needs at least one candidate")
    scores = leave_one_out_scores(pooled, trajectories, grid, computed, candidates, step_weights)
    return candidates[int(np.argmin(scores))], scores
