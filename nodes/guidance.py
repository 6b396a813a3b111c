"""What L2P fits and schedules on for a run's guidance: the Gram of the fit (``fit_gram``), whether a run uses
true CFG (``is_cfg_run``), and the CFG error model of the schedule search (``cfg_error_model``). Shared by L2P Cache
(``l2p_setup``), its per-trajectory pieces (``spread_setup``) and L2P Calibrate's quality line."""
from __future__ import annotations

import numpy as np

from ..predictors.calibration.gram import GramStats
from ..predictors.files.predictor_file import PredictorFileError
from ..predictors.schedules.optimizer import shrink_cross_streams
from .setups import CfgFit, CfgSchedule, FitOptions


def fit_gram(path: str, stats: GramStats, cfg_scale: float | None, cfg_fit: CfgFit) -> np.ndarray:
    """The [S, S] Gram L2P fits and schedules on for this run's guidance.

    PER_ROLE / PER_STREAM: each stream's own error, summed over the streams (PER_ROLE schedules on this and fits
    each stream on its own block). GUIDED: guidance multiplies the
    difference of the cond and uncond forecasts, so the error that reaches the image is that of u + g (c - u);
    GUIDED fits one weight vector on exactly that combination's statistics (see CfgFit for why it is not used).
    """
    cfg_run = cfg_scale is not None and cfg_scale != 1.0
    if "uncond" not in stats.roles:
        if cfg_run:
            raise PredictorFileError(
                f"{path}: calibrated without CFG (streams {', '.join(stats.roles)}), but this run uses CFG"
                f" {cfg_scale:g} (cond and uncond). Calibrate with the same CFG setup (L2P Calibrate with a negative prompt and"
                f" cfg > 1) into another file."
            )
        return stats.summed_gram()
    if not cfg_run:
        return stats.role_gram("cond")  # cfg 1: ComfyUI drops the uncond stream
    if cfg_fit is CfgFit.GUIDED:
        return stats.combined_gram({"cond": cfg_scale, "uncond": 1.0 - cfg_scale})
    return stats.summed_gram()


def is_cfg_run(cfg_scale: float | None, stats: GramStats) -> bool:
    """True when the run uses true CFG (a scale other than 1) and the statistics hold the uncond stream."""
    return cfg_scale is not None and cfg_scale != 1.0 and "uncond" in stats.roles


# The streams each CFG fit forecasts from its own history, as combinations of the recorded roles, and how each
# stream's error enters the guided output u + g (c - u) (a function of g).
CFG_STREAMS = {
    CfgFit.PER_ROLE: ([{"cond": 1.0}, {"uncond": 1.0}], lambda g: (g, 1.0 - g)),
    CfgFit.DIFFERENCE: ([{"uncond": 1.0}, {"cond": 1.0, "uncond": -1.0}], lambda g: (1.0, g)),
}


def cfg_error_model(stats: GramStats, cfg_scale: float, options: FitOptions,
                    keep: float | None = None) -> tuple[np.ndarray, tuple[float, ...]] | None:
    """(joint Gram of the forecast streams, their weights in the guided output) for the schedule search of a CFG
    run, with ``keep`` (default: the options') of the cross-stream terms; None when the fit or the schedule is
    not modelled per stream (the summed statistics are used then)."""
    if options.cfg_schedule is CfgSchedule.STREAMS or options.cfg_fit not in CFG_STREAMS:
        return None
    streams, mix = CFG_STREAMS[options.cfg_fit]
    joint = shrink_cross_streams(stats.mixed_gram(streams), len(streams), options.cross_keep if keep is None else keep)
    return joint, mix(cfg_scale)
