"""L2P Cache's setup: a calibrated predictor file turned into the run's predictor and plan.

The file is validated when the node runs; the run's step grid, model family, model identity and guidance are
checked when sampling starts (RunContext), each mismatch refused with the file's name, expected versus found, and
the fix. A file calibrated on a LoRA or fine-tune of this model is used only when ``other_model`` allows it.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..predictors.calibration.gram import GramStats
from ..predictors.files.calibration_file import stats_from_file
from ..predictors.engine.history import ForecastEngine, RoutedEngine
from ..predictors.calibration.fit import fit_paper_adam
from ..predictors.forecasters.fora import Fora
from ..predictors.engine.grid import StepGrid
from ..predictors.forecasters.l2p import L2PDirect, L2PRollout
from ..predictors.forecasters.l2p_difference import DifferenceL2PEngine
from ..predictors.forecasters.l2p_joint import JointL2PEngine
from ..predictors.forecasters.lesa.engine import LesaEngine
from ..predictors.files.predictor_file import PredictorFile, PredictorFileError
from ..predictors.files.storage import load_predictor_file
from ..predictors.schedules import error_growth
from ..predictors.schedules.error_growth import ErrorGrowth
from ..predictors.schedules.optimizer import Spread
from ..predictors.schedules.placements import Placement
from ..predictors.calibration.validation import FitCandidate
from ..predictors.calibration.transfer import resample_gram
from ..predictors.files.identity import OtherModel
from .architectures import family_of_run
from .cfg_record import calibrated_cfg_scales
from .file_checks import check_family, check_sigma_range
from .guidance import cfg_error_model, fit_gram, is_cfg_run
from .lesa_setup import ProgressCallback, lesa_model
from .plans import FixedPlan, SafetyNetPlan
from .model_identity import check_file_identity, model_identity
from .node_errors import L2P_CACHE
from .report import RunReport
from .run_state import L2PHolder, RunContext, RunPieces
from .spread_setup import margins, trajectory_search_grams, validated_fit
from .setups import (
    DEFAULT_RIDGE, CfgFit, FitOptions, GridPolicy, HistoryDevice, L2PMode, _schedule_config, make_plan,
)


def _run_stats(path: str, pf: PredictorFile, grid: StepGrid, policy: GridPolicy, report: RunReport) -> GramStats:
    """The file's statistics on the run's grid (inside its calibrated range): as recorded, resampled when allowed,
    else a clear refusal."""
    stats = stats_from_file(pf, path)
    if stats.grid.matches(grid):
        return stats
    if policy is GridPolicy.REFUSE:
        raise PredictorFileError(
            f"{path}: calibrated on a {stats.num_steps}-step grid (sigmas {_short(stats.grid)}), but this run samples"
            f" {grid.num_steps} steps (sigmas {_short(grid)}). Calibrate at this step count, scheduler and denoise"
            f" with L2P Calibrate, or set step_grid_mismatch to 'resample' to interpolate the calibration."
        )
    try:
        resampled = resample_gram(stats, grid)
    except ValueError as err:
        raise PredictorFileError(f"{path}: cannot resample the calibration to this run's grid: {err}") from None
    report.notes.append(f"calibration resampled from {stats.num_steps} to {grid.num_steps} steps")
    return resampled


def _short(grid: StepGrid) -> str:
    a = grid.array
    return f"{a[0]:.4g} .. {a[-2]:.4g}" if len(a) > 2 else f"{a[0]:.4g}"


def _note_cfg_scale(pf: PredictorFile, stats: GramStats, cfg_scale: float | None, report: RunReport) -> None:
    """A CFG run at a scale the file was not calibrated at is allowed (nodes/cfg_record.py says why) and reported."""
    scales = calibrated_cfg_scales(pf.cfg_mode)
    if is_cfg_run(cfg_scale, stats) and scales and f"{float(cfg_scale):g}" not in scales:
        report.notes.append(f"calibrated at CFG {', '.join(scales)}, sampling at CFG {float(cfg_scale):g}: the fit"
                            f" carries over, at some cost for distant scales: calibrate near the scales you use")


def l2p_plan(config, grid: StepGrid, stats: GramStats, gram: np.ndarray, ridge: float, cfg_scale: float | None,
             options: FitOptions, growth: ErrorGrowth = error_growth.LEGACY, report: RunReport | None = None,
             source: str = "predictor file"):
    """The plan of an L2P run. The optimized placement searches on the guided output's error for a CFG run with a
    per-stream fit (``cfg_error_model``), else on the fit's Gram ``gram``; each step's error weighed by ``growth``;
    with ``options.spread_k`` > 0 on mean + k * std of the sampled trajectories' errors (``optimizer.Spread``).
    With ``options.safety_net`` a fixed plan gets the per-run safety net, noting its triggers in ``report``.
    ``source`` (the file) names refusals."""
    model = cfg_error_model(stats, cfg_scale, options) if is_cfg_run(cfg_scale, stats) else None
    search, mix = (gram, None) if model is None else model
    spread = None
    if options.spread_k and config.placement is Placement.OPTIMIZED:
        spread = Spread(trajectory_search_grams(stats, cfg_scale, options, model is not None, source),
                        options.spread_k)
    plan = make_plan(config, grid, gram=search, ridge=ridge, mix=mix, step_weights=growth.step_weights(grid),
                     spread=spread)
    if options.safety_net is None or type(plan) is not FixedPlan:  # every-step and adaptive plans need no net
        return plan
    if report is None:
        raise ValueError("the safety net reports what it adds: l2p_plan needs the run's report")
    return SafetyNetPlan(plan, margins(stats, gram, ridge, cfg_scale, options, source), report)


def schedule_growth(pf: PredictorFile, path: str, cfg_run: bool, options: FitOptions) -> ErrorGrowth:
    """The error-growth model of the run's schedule search: the options', else the one the file records for this
    guidance setup (files made before the model existed record none and keep the dsigma-only error)."""
    if options.growth is not None:
        return options.growth
    try:
        return error_growth.for_guidance(cfg_run, pf.extra, path)
    except ValueError as err:
        raise PredictorFileError(str(err)) from None


def _direct_cfg_pieces(plan, stats: GramStats, gram: np.ndarray, ridge: float, options: FitOptions,
                       offload: bool, prior=None) -> RunPieces:
    """The direct fit's pieces for a CFG run (two streams), by ``options.cfg_fit``."""
    fit, levels = options.cfg_fit, options.preserve_levels
    default = L2PDirect(gram, ridge=ridge, preserve_level=levels, prior=prior)  # what a stream of another role gets
    if fit is CfgFit.JOINT:
        joint = np.asarray(stats.gram)
        return RunPieces(default, plan, offload=offload,
                         make_engine=lambda g, off: JointL2PEngine(joint, stats.roles, ridge, g, off, levels))
    if fit is CfgFit.DIFFERENCE:
        ordered = stats.mixed_gram([{"cond": 1.0}, {"uncond": 1.0}])
        return RunPieces(default, plan, offload=offload,
                         make_engine=lambda g, off: DifferenceL2PEngine(ordered, ridge, g, off, levels))
    if fit is CfgFit.PER_ROLE:
        engines = {r: L2PDirect(stats.role_gram(r), ridge=ridge, preserve_level=levels, prior=prior)
                   for r in stats.roles}
        return RunPieces(default, plan, offload=offload,
                         make_engine=lambda g, off: RoutedEngine(
                             {r: ForecastEngine(p, g, off) for r, p in engines.items()},
                             ForecastEngine(default, g, off)))
    return RunPieces(default, plan, offload=offload)  # PER_STREAM / GUIDED: one fit on fit_gram's statistics


def _parsed_settings(speedup, placement, warmup, compute_last, residual_budget, history_device, mode, grid_policy,
                     other_model):
    """L2P Cache's node settings, validated: (schedule config, L2PMode, GridPolicy, offload, OtherModel)."""
    config = _schedule_config(speedup, placement, warmup, compute_last, residual_budget)
    offload = HistoryDevice(history_device) is HistoryDevice.CPU
    return config, L2PMode(mode), GridPolicy(grid_policy), offload, OtherModel(other_model)


def check_cache_settings(*, speedup: float, placement: str, warmup: int, compute_last: bool, residual_budget: float,
                         history_device: str, mode: str, grid_policy: str,
                         other_model: str = OtherModel.REFUSE.value) -> None:
    """Validate ``l2p_cache_holder``'s settings before any file exists (the learning mode forecasts later)."""
    _parsed_settings(speedup, placement, warmup, compute_last, residual_budget, history_device, mode, grid_policy,
                     other_model)


def l2p_cache_holder(path: str, *, speedup: float, placement: str, warmup: int, compute_last: bool,
                     residual_budget: float, history_device: str, mode: str, grid_policy: str,
                     options: FitOptions = FitOptions(), ridge: float | None = None,
                     other_model: str = OtherModel.REFUSE.value, lesa_progress: ProgressCallback | None = None,
                     lesa_device: torch.device | str = "cpu") -> L2PHolder:
    """L2P Cache: a calibrated predictor file. The file is validated now (and LESA's experts loaded or trained);
    the grid, family and model at run start.

    options: what the node does not show (FitOptions; the defaults are the node's).
    ridge: None uses the file's own ridge_lambda (on-policy calibration passes the one it calibrates with).
    other_model: whether a file calibrated on a LoRA / fine-tune of the sampled model is used (OtherModel).
    lesa_progress, lesa_device: LESA's training, when it is needed (``lesa_setup.lesa_model``)."""
    config, mode, policy, offload, allow_other = _parsed_settings(
        speedup, placement, warmup, compute_last, residual_budget, history_device, mode, grid_policy, other_model)
    pf = load_predictor_file(path)
    if ridge is None:
        ridge = pf.ridge_lambda if pf.ridge_lambda is not None else DEFAULT_RIDGE
    name = os.path.basename(path)
    if not pf.has_gram:
        if mode is not L2PMode.ROLLOUT:
            raise PredictorFileError(
                f"{path}: holds only a weight matrix (no calibration statistics), so the 'direct' predictor cannot be"
                f" fitted from it. Set predictor to 'published rollout', or calibrate with L2P Calibrate."
            )
        if config.placement is Placement.OPTIMIZED:
            raise PredictorFileError(
                f"{path}: 'optimized' placement needs calibration statistics, which this file does not hold. Choose"
                f" 'even' or 'published' placement, or calibrate with L2P Calibrate."
            )
    lesa = lesa_model(path, pf, lesa_progress, lesa_device) if mode is L2PMode.LESA and pf.has_gram else None

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        grid = context.grid
        family = family_of_run(context)
        check_family(path, pf, family)  # another model (config and class); then the sigma range; then the identity
        identity = model_identity(context.diffusion_model, context.model_patcher)
        if pf.has_gram:
            check_sigma_range(path, pf, grid, family, identity)  # e.g. the other Wan 2.2 expert's file
        note = check_file_identity(path, pf, identity, allow_other,
                                   "Calibrate this model with L2P Calibrate, or pick a file made for it.")
        if note:
            report.notes.append(note)
        if not pf.has_gram:
            if grid.num_steps != pf.steps:
                raise PredictorFileError(
                    f"{path}: the weight matrix is for {pf.steps} steps, but this run samples {grid.num_steps}. Set"
                    f" the sampler to {pf.steps} steps, or calibrate this step count with L2P Calibrate."
                )
            return RunPieces(L2PRollout(pf.paper_matrix), make_plan(config, grid), offload=offload)
        stats = _run_stats(path, pf, grid, policy, report)
        gram = fit_gram(path, stats, context.cfg_scale, options.cfg_fit)
        _note_cfg_scale(pf, stats, context.cfg_scale, report)
        cfg_run = is_cfg_run(context.cfg_scale, stats)
        growth = schedule_growth(pf, path, cfg_run, options)
        plan = l2p_plan(config, grid, stats, gram, ridge, context.cfg_scale, options, growth, report, path)
        if mode is L2PMode.LESA:
            return RunPieces(Fora(), plan, offload=offload,
                             make_engine=lambda g, off: LesaEngine(lesa, g, offload=off))
        fit = FitCandidate(ridge)
        if mode is L2PMode.DIRECT and options.fit_candidates and plan.planned is not None:
            fit = validated_fit(stats, gram, context.cfg_scale, options, plan, grid, growth, path, report)
        if mode is L2PMode.DIRECT and cfg_run:
            return _direct_cfg_pieces(plan, stats, gram, fit.ridge, options, offload, fit.prior)
        if mode is L2PMode.DIRECT:
            predictor = L2PDirect(gram, ridge=fit.ridge, preserve_level=options.preserve_levels, prior=fit.prior)
        else:  # the published recipe: Adam from the identity, 201 full-batch steps (regularised by early stopping)
            predictor = L2PRollout(fit_paper_adam(gram, elements=float(stats.element_count * len(stats.roles))))
        return RunPieces(predictor, plan, offload=offload)

    return L2PHolder(L2P_CACHE, f"L2P {mode.value} ({name})", start_run)
