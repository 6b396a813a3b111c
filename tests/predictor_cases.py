"""The predictors the contract suite (test_predictor_contract.py) runs on. THE single place to add one.

A case builds a fresh predictor and says on which grid and computed steps the contract is checked. Learned
predictors (L2P) append their entries here, with a grid and computed steps their weights were fitted for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from comfyui_l2p.predictors.engine.linear_predictor import LinearPredictor
from comfyui_l2p.predictors.forecasters.foca import FoCa
from comfyui_l2p.predictors.forecasters.fora import Fora
from comfyui_l2p.predictors.calibration.fit import fit_paper_matrix
from comfyui_l2p.predictors.engine.grid import StepGrid, TimeAxis
from comfyui_l2p.predictors.forecasters.l2p import L2PDirect, L2PRollout
from comfyui_l2p.predictors.forecasters.spectrum import Spectrum
from comfyui_l2p.predictors.forecasters.taylorseer import TaylorSeer


def shifted_grid(num_steps: int, shift: float = 3.0) -> StepGrid:
    """A non-uniform flow-matching grid (FLUX-style time shift): sigma = shift t / (1 + (shift - 1) t)."""
    t = np.linspace(1.0, 0.0, num_steps + 1)
    return StepGrid(tuple(shift * t / (1.0 + (shift - 1.0) * t)))


CONTRACT_GRID = shifted_grid(14)


def contract_gram(num_steps: int = 14, seed: int = 0) -> np.ndarray:
    """float64 [S, S]: G of a few random-walk trajectories (correlated neighbouring steps, like sampler outputs)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(0.3 * rng.standard_normal((3, num_steps, 32)), axis=1) + rng.standard_normal((3, 1, 32))
    return np.einsum("nsd,ntd->st", x, x)


@dataclass(frozen=True)
class PredictorCase:
    """One predictor under contract.

    make: builds a fresh predictor (called more than once: two builds must behave identically).
    grid, computed: the run the contract replays; forecasts are asked for ``targets`` (all after ``computed``).
    preserves_constants: its weights sum to 1, so a constant output is forecast exactly. Only a method whose
        published form shrinks constants (Spectrum's ridge on T_0) sets False; the suite then checks the forecast
        of a constant is that constant times the weight sum.
    """

    id: str
    make: Callable[[], LinearPredictor]
    grid: StepGrid = CONTRACT_GRID
    computed: tuple[int, ...] = (0, 1, 3, 6, 8)
    targets: tuple[int, ...] = (9, 11, 13)
    preserves_constants: bool = True


CASES: list[PredictorCase] = [
    PredictorCase("fora", lambda: Fora()),
    PredictorCase("taylor1-step", lambda: TaylorSeer(order=1, axis=TimeAxis.STEP)),
    PredictorCase("taylor1-sigma", lambda: TaylorSeer(order=1, axis=TimeAxis.SIGMA)),
    PredictorCase("taylor2-step", lambda: TaylorSeer(order=2, axis=TimeAxis.STEP)),
    PredictorCase("taylor2-sigma", lambda: TaylorSeer(order=2, axis=TimeAxis.SIGMA)),
    PredictorCase("spectrum-step", lambda: Spectrum(axis=TimeAxis.STEP), preserves_constants=False),
    PredictorCase("spectrum-sigma", lambda: Spectrum(axis=TimeAxis.SIGMA), preserves_constants=False),
    PredictorCase("spectrum-step-t0-free", lambda: Spectrum(axis=TimeAxis.STEP, penalize_constant=False)),
    PredictorCase("spectrum-sigma-w1-t0-free",
                  lambda: Spectrum(axis=TimeAxis.SIGMA, blend=1.0, penalize_constant=False)),
    PredictorCase("foca-step", lambda: FoCa(axis=TimeAxis.STEP)),
    PredictorCase("foca-sigma", lambda: FoCa(axis=TimeAxis.SIGMA)),
    # learned: fitted weights need not sum to 1
    PredictorCase("l2p-rollout", lambda: L2PRollout(fit_paper_matrix(contract_gram(), 1e-3)),
                  preserves_constants=False),
    PredictorCase("l2p-direct", lambda: L2PDirect(contract_gram(), ridge=1e-3), preserves_constants=False),
    PredictorCase("l2p-direct-window2", lambda: L2PDirect(contract_gram(), ridge=1e-3, window=2),
                  preserves_constants=False),
]
