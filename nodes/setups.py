"""What the nodes build: the choices the UI offers (enums whose values are the strings the UI shows), the step
plan of a run, and Forecast Cache's setup. L2P Cache's setup is in ``l2p_setup.py``, L2P Calibrate's in
``calibrate_setup.py``. The node classes only declare inputs; everything that turns inputs into behaviour is in
these files, testable without the node API.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..predictors.calibration.fit import DEFAULT_RIDGE
from ..predictors.calibration.validation import FitCandidate
from ..predictors.files.identity import OtherModel
from ..predictors.engine.grid import StepGrid, TimeAxis
from ..predictors.forecasters.registry import METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor
from ..predictors.schedules.error_growth import ErrorGrowth
from ..predictors.schedules.safety_net import SafetyNet
from ..predictors.schedules.placements import Placement, ScheduleConfig, adaptive_controller, plan_schedule
from .plans import AdaptivePlan, EveryStepPlan, FixedPlan
from .report import RunReport
from .run_state import L2PHolder, RunContext, RunPieces

# Warm-up guards: training-free predictors need two computed steps for a slope; L2P's optimized placement does
# better starting from one (benchmark.sweep on the reference model), free to compute step 1 when it pays.
DEFAULT_WARMUP = 2
DEFAULT_L2P_WARMUP = 1
DEFAULT_RESIDUAL_BUDGET = 0.05


class HistoryDevice(enum.Enum):
    MODEL = "model device"
    CPU = "cpu"


class GridPolicy(enum.Enum):
    REFUSE = "refuse"
    RESAMPLE = "resample"


class L2PMode(enum.Enum):
    DIRECT = "direct"
    ROLLOUT = "published rollout"
    LESA = "LESA (non-linear, stage-aware)"


class CfgFit(enum.Enum):
    """What L2P fits under classifier-free guidance (all but PER_ROLE need a file calibrated with CFG; measured
    with python3 -m benchmark, CFG 3, at 4.55x / 5.56x / 7.14x, on the FLUX and the Qwen-Image reference models).

    PER_ROLE is what the nodes use: FLUX 47.2 / 45.2 / 40.0 dB, Qwen-Image 47.1 / 44.9 / 40.1 dB with the default
    schedule (CfgSchedule), all measured with the schedule's dsigma-only error model (before
    ``schedules.error_growth``; the README has the current default's numbers). With the streams' schedule, PER_STREAM was 0.1-0.5 dB behind it on FLUX and mixed on
    Qwen-Image (+2.3 / -0.1 / -0.6 dB). The cross-stream fits exploit the streams' correlation and lose: JOINT by
    3-6 dB; DIFFERENCE (c - u and u) by 6-9 dB, and it diverges (weights of 1e5) on the schedules the guided
    error picks. Their guided forecasts shrink the guidance (weights summing to about 2.6 on cond and -1.6 on
    uncond instead of 3 and -2, python3 -m benchmark.weights): damping the hard-to-forecast difference is the
    teacher-forced optimum, but it under-guides every skipped step the same way, and that bias adds up over the
    run. Constraining the weights to keep the levels (``preserve_levels``) recovers 0.1-3.7 dB of that and still
    loses to PER_ROLE. GUIDED (one weight vector on the guided output's statistics) diverged at 4.55x on both
    models: its optimum puts weights of 1e5 on the history. Only PER_ROLE is offered in the node; the rest stay
    benchmark variants.
    """

    PER_ROLE = "each stream, own statistics"  # cond fitted on the cond Gram, uncond on the uncond Gram
    PER_STREAM = "each stream, summed statistics"  # one weight vector per step for both, fitted on both Grams
    GUIDED = "guided output"  # one weight vector fitted on the Gram of u + g (c - u) at the run's scale g
    JOINT = "both streams"  # each stream forecast from both streams' histories (joint Gram over role and step)
    DIFFERENCE = "difference and uncond"  # c - u and u, each from its own history and own statistics


class CfgSchedule(enum.Enum):
    """What the optimized placement minimises under CFG (PER_ROLE and DIFFERENCE fits; the others use STREAMS).

    GUIDED: the exact teacher-forced error of the guided output u + g (c - u) that the sampler integrates,
    propagated to the final latent, for the fit in use (``schedules.optimizer``'s ``mix``), cross-stream
    correlations included. STREAMS: the streams' errors summed, under one fit shared by both (their summed Gram);
    it picks the same schedules as GUIDED with the cross-stream terms dropped. GUIDED_HALF_CROSS (the default):
    GUIDED with the cross-stream terms halved (``schedules.optimizer.shrink_cross_streams``, keep 0.5).

    Measured (python3 -m benchmark, CFG 3, 4.55x / 5.56x / 7.14x, PSNR mean (worst), with the dsigma-only error
    model that preceded ``schedules.error_growth``):
    - FLUX reference:  STREAMS 47.24 (41.51) / 45.24 (40.46) / 39.03 (35.70); GUIDED 45.82 (35.81) / 43.13 (32.53)
      / 39.71 (31.04); half 47.24 (41.51) / 45.24 (40.46) / 39.99 (35.34).
    - Qwen-Image reference: STREAMS 44.41 (33.77) / 42.78 (33.00) / 37.95 (30.77); GUIDED 45.69 (36.19) / 44.67
      (37.37) / 40.32 (34.06); half 47.13 (38.49) / 44.92 (36.64) / 40.11 (34.69).
    Each extreme fails on one model: the cross terms are how much the two streams' errors cancel under guidance,
    measured teacher-forced; a drifting run honours part of that. Keeping 0.5 or 0.65 of them gave identical
    results on both models, 0.8 differed only at 4.55x (-0.1 dB), 0.35 and below matched STREAMS
    (python3 -m benchmark.sweep --scenario cfg --cross-keeps ... [--model qwen]).
    """

    GUIDED_HALF_CROSS = "guided output's error, cross-stream terms halved"
    GUIDED = "guided output's error"
    STREAMS = "streams' errors"

    @property
    def cross_stream_keep(self) -> float:
        """How much of the calibrated cross-stream terms the error model keeps (STREAMS: none)."""
        return {CfgSchedule.GUIDED_HALF_CROSS: 0.5, CfgSchedule.GUIDED: 1.0, CfgSchedule.STREAMS: 0.0}[self]


@dataclass(frozen=True)
class FitOptions:
    """How L2P Cache fits and schedules beyond what the node shows. The defaults are what the node does; the
    benchmark's variants and sweeps vary the rest.

    cfg_fit / cfg_schedule: see CfgFit and CfgSchedule. preserve_levels: constrain the direct fits' weights to keep
    a constant signal's level (``fit.level_preserving_solve``). cross_stream_keep: override cfg_schedule's share of
    the cross-stream terms, in [0, 1] (None: the schedule's own). growth: the optimized placement's error-growth
    model (``schedules.error_growth``; None: the one the file records for the run's guidance). spread_k: > 0
    searches the optimized schedule on mean + k * std of the calibration trajectories' errors (``optimizer.Spread``;
    0: the mean, the default). safety_net: the per-run safety net's settings (``schedules.safety_net``; None: off).
    fit_candidates: direct fits (ridge, prior) to choose from by leave-one-trajectory-out validation on the run's
    schedule (``calibration.validation``; empty: the file's ridge).
    """

    cfg_fit: CfgFit = CfgFit.PER_ROLE
    cfg_schedule: CfgSchedule = CfgSchedule.GUIDED_HALF_CROSS
    preserve_levels: bool = False
    cross_stream_keep: float | None = None
    growth: ErrorGrowth | None = None
    spread_k: float = 0.0
    safety_net: SafetyNet | None = None
    fit_candidates: tuple[FitCandidate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.cfg_fit, CfgFit) or not isinstance(self.cfg_schedule, CfgSchedule):
            raise ValueError(f"FitOptions: cfg_fit must be a CfgFit and cfg_schedule a CfgSchedule, got"
                             f" {self.cfg_fit!r} and {self.cfg_schedule!r}")
        if not isinstance(self.preserve_levels, bool):
            raise ValueError(f"FitOptions: preserve_levels must be True or False, got {self.preserve_levels!r}")
        if self.growth is not None and not isinstance(self.growth, ErrorGrowth):
            raise ValueError(f"FitOptions: growth must be None or an ErrorGrowth, got {self.growth!r}")
        if not isinstance(self.fit_candidates, tuple) or not all(isinstance(c, FitCandidate)
                                                                  for c in self.fit_candidates):
            raise ValueError(f"FitOptions: fit_candidates must be a tuple of FitCandidate, got {self.fit_candidates!r}")
        if self.safety_net is not None and not isinstance(self.safety_net, SafetyNet):
            raise ValueError(f"FitOptions: safety_net must be None or a SafetyNet, got {self.safety_net!r}")
        if isinstance(self.spread_k, bool) or not isinstance(self.spread_k, (int, float)) \
                or not (np.isfinite(self.spread_k) and self.spread_k >= 0):
            raise ValueError(f"FitOptions: spread_k must be a number >= 0, got {self.spread_k!r}")
        keep = self.cross_stream_keep
        if keep is not None and not (isinstance(keep, (int, float)) and 0.0 <= keep <= 1.0):
            raise ValueError(f"FitOptions: cross_stream_keep must be None or a number in [0, 1], got {keep!r}")

    @property
    def cross_keep(self) -> float:
        """The share of the cross-stream terms the CFG schedule search keeps."""
        return self.cfg_schedule.cross_stream_keep if self.cross_stream_keep is None else float(self.cross_stream_keep)


class CalibrationMode(enum.Enum):
    TEACHER_FORCED = "teacher-forced"
    ON_POLICY = "on-policy"


HISTORY_DEVICES = [d.value for d in HistoryDevice]
GRID_POLICIES = [p.value for p in GridPolicy]
L2P_MODES = [m.value for m in L2PMode]
CALIBRATION_MODES = [m.value for m in CalibrationMode]
OTHER_MODEL_CHOICES = [m.value for m in OtherModel]
TIME_AXES = [a.value for a in TimeAxis]
FORECAST_METHODS = list(METHOD_DISPLAY_NAMES)
L2P_PLACEMENTS = [p.value for p in (Placement.OPTIMIZED, Placement.EVEN, Placement.PROGRESSIVE, Placement.PUBLISHED,
                                    Placement.ADAPTIVE)]
FORECAST_PLACEMENTS = [p.value for p in (Placement.EVEN, Placement.PROGRESSIVE, Placement.PUBLISHED,
                                         Placement.ADAPTIVE)]


def make_plan(config: ScheduleConfig, grid: StepGrid, gram: np.ndarray | None = None, ridge: float = DEFAULT_RIDGE,
              order: int = 1, mix=None, step_weights=None, spread=None):
    """The step plan for one run. speedup 1 computes every step, whatever the placement; a run too short for the
    speedup computes its guards or every step, and the plan's notes say so (``schedules.budget``).

    gram / mix / step_weights / spread: the optimized placement's error model (``schedules.plan_schedule``)."""
    budget = config.budget(grid.num_steps)
    notes = (budget.note,) if budget.note else ()
    if budget.every_step:
        return EveryStepPlan(grid.num_steps, notes)
    if config.placement is Placement.ADAPTIVE:
        return AdaptivePlan(adaptive_controller(config, grid.num_steps, order=order), warmup=config.warmup)
    steps = plan_schedule(config, grid, gram=gram, ridge=ridge, step_weights=step_weights, mix=mix, spread=spread)
    return FixedPlan(frozenset(steps), warmup=config.warmup,
                     last_step=grid.num_steps - 1 if config.compute_last else None, notes=notes)


def _schedule_config(speedup, placement, warmup, compute_last, residual_budget) -> ScheduleConfig:
    return ScheduleConfig(speedup=float(speedup), placement=Placement(placement), warmup=int(warmup),
                          compute_last=bool(compute_last), residual_budget=float(residual_budget))


def forecast_cache_holder(*, method: str, time_axis: str, speedup: float, placement: str, warmup: int,
                          compute_last: bool, residual_budget: float, history_device: str, spectrum_degree: int = 4,
                          spectrum_lambda: float = 0.1, spectrum_blend: float = 0.5) -> L2PHolder:
    """Forecast Cache: a training-free predictor; everything is validated here, at graph time."""
    kind = ForecastMethod.from_display_name(method)
    settings = ForecastSettings(axis=TimeAxis(time_axis), spectrum_degree=int(spectrum_degree),
                                spectrum_ridge=float(spectrum_lambda), spectrum_blend=float(spectrum_blend))
    predictor = build_predictor(kind, settings)
    config = _schedule_config(speedup, placement, warmup, compute_last, residual_budget)
    offload = HistoryDevice(history_device) is HistoryDevice.CPU
    order = {ForecastMethod.FORA: 0, ForecastMethod.TAYLOR2: 2}.get(kind, 1)

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        return RunPieces(predictor, make_plan(config, context.grid, order=order), offload=offload)

    return L2PHolder("Forecast Cache", kind.value, start_run)
