"""L2P Cache's pieces that read the calibration's per-trajectory Grams (``calibration.trajectory_grams``): the
spread schedule's per-trajectory search Grams, the safety net's margins, and the fit chosen by
leave-one-trajectory-out validation. A file made before the per-trajectory sample existed is refused by each, with
the fix (one more L2P Calibrate run into it); the default pieces never need it.
"""
from __future__ import annotations

import numpy as np

from ..predictors.calibration.gram import GramStats
from ..predictors.calibration.validation import FitCandidate, choose_fit
from ..predictors.files.predictor_file import PredictorFileError
from ..predictors.schedules.error_growth import ErrorGrowth
from ..predictors.schedules.optimizer import shrink_cross_streams
from ..predictors.schedules.safety_net import ResidualMargins
from .guidance import CFG_STREAMS, is_cfg_run
from .report import RunReport
from .setups import CfgFit, FitOptions


def _fit_streams(stats: GramStats, gram: np.ndarray, cfg_scale: float | None, options: FitOptions, source: str,
                 minimum: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(stream -> the Gram its weights are fitted on, stream -> the sampled trajectories' versions of it): per role
    for the per-role CFG fit, else the one fit on ``gram`` (fit_gram's statistics)."""
    if is_cfg_run(cfg_scale, stats) and options.cfg_fit is CfgFit.PER_ROLE:
        _require_trajectories(stats, minimum, source)
        return ({r: stats.role_gram(r) for r in stats.roles}, {r: stats.role_trajectory_grams(r) for r in stats.roles})
    return {"fit": gram}, {"fit": trajectory_search_grams(stats, cfg_scale, options, False, source, minimum)}


def margins(stats: GramStats, gram: np.ndarray, ridge: float, cfg_scale: float | None,
             options: FitOptions, source: str) -> ResidualMargins:
    """The safety net's margins for the run's fit."""
    pooled, per_trajectory = _fit_streams(stats, gram, cfg_scale, options, source, 1)
    return ResidualMargins(pooled, per_trajectory, ridge, options.safety_net)


def validated_fit(stats: GramStats, gram: np.ndarray, cfg_scale: float | None, options: FitOptions, plan, grid,
                  growth: ErrorGrowth, source: str, report: RunReport) -> FitCandidate:
    """The candidate fit (``options.fit_candidates``) with the smallest leave-one-trajectory-out error of the run's
    planned schedule (``calibration.validation``), noted in ``report``."""
    pooled, per_trajectory = _fit_streams(stats, gram, cfg_scale, options, source, 2)
    best, scores = choose_fit(pooled, per_trajectory, grid, plan.planned, options.fit_candidates,
                              growth.step_weights(grid))
    report.notes.append(f"fit chosen by leave-one-trajectory-out: {best.describe()} (of "
                        + ", ".join(f"{c.describe()} {v:.3g}" for c, v in zip(options.fit_candidates, scores)) + ")")
    return best


def _require_trajectories(stats: GramStats, minimum: int, source: str) -> None:
    if stats.trajectories is None or stats.trajectories.size < minimum:
        raise PredictorFileError(
            f"{source}: the spread schedule, the safety net and validated fits need per-trajectory statistics (at least"
            f" {minimum} trajectories), which this file does not hold (it was made before they existed, or holds fewer"
            f" runs). Run L2P Calibrate into it once more.")


def trajectory_search_grams(stats: GramStats, cfg_scale: float | None, options: FitOptions,
                             guided: bool, source: str, minimum: int = 2) -> np.ndarray:
    """float64 [T, ., .]: each sampled trajectory's version of the Gram the schedule search uses."""
    _require_trajectories(stats, minimum, source)
    if guided:
        streams, _ = CFG_STREAMS[options.cfg_fit]
        return np.stack([shrink_cross_streams(g, len(streams), options.cross_keep)
                         for g in stats.trajectory_mixed_grams(streams)])
    roles = stats.roles if "uncond" not in stats.roles or is_cfg_run(cfg_scale, stats) else ("cond",)
    return sum(stats.role_trajectory_grams(r) for r in roles)  # fit_gram's statistics, per trajectory
