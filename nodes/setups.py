"""What each node builds: the holder stored on the model and, per run, the predictor, plan and calibration sink.

The node classes only declare inputs; everything that turns inputs into behaviour is here, testable without
the node API. Every choice the UI offers is an enum whose values are the strings the UI shows.
"""
from __future__ import annotations

import enum
import os

import numpy as np

from ..predictors.fora import Fora
from ..predictors.grid import StepGrid, TimeAxis
from ..predictors.registry import METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor
from ..predictors.schedules import Placement, ScheduleConfig, adaptive_controller, computed_count, plan_schedule
from .architectures import family_of
from .plans import AdaptivePlan, EveryStepPlan, FixedPlan
from .report import ForcedReason, RunReport
from .run_state import L2PHolder, RunPieces

DEFAULT_WARMUP = 2
DEFAULT_RESIDUAL_BUDGET = 0.05
DEFAULT_RIDGE = 1e-3


class HistoryDevice(enum.Enum):
    MODEL = "model device"
    CPU = "cpu"


class GridPolicy(enum.Enum):
    REFUSE = "refuse"
    RESAMPLE = "resample"


class L2PMode(enum.Enum):
    DIRECT = "direct"
    ROLLOUT = "published rollout"


class CalibrationMode(enum.Enum):
    TEACHER_FORCED = "teacher-forced"
    ON_POLICY = "on-policy"


HISTORY_DEVICES = [d.value for d in HistoryDevice]
GRID_POLICIES = [p.value for p in GridPolicy]
L2P_MODES = [m.value for m in L2PMode]
CALIBRATION_MODES = [m.value for m in CalibrationMode]
TIME_AXES = [a.value for a in TimeAxis]
FORECAST_METHODS = list(METHOD_DISPLAY_NAMES)
L2P_PLACEMENTS = [p.value for p in (Placement.OPTIMIZED, Placement.EVEN, Placement.PROGRESSIVE, Placement.PUBLISHED,
                                    Placement.ADAPTIVE)]
FORECAST_PLACEMENTS = [p.value for p in (Placement.EVEN, Placement.PROGRESSIVE, Placement.PUBLISHED,
                                         Placement.ADAPTIVE)]


def make_plan(config: ScheduleConfig, grid: StepGrid, gram: np.ndarray | None = None, ridge: float = DEFAULT_RIDGE,
              order: int = 1):
    """The step plan for one run. speedup 1 computes every step, whatever the placement."""
    if computed_count(grid.num_steps, config.speedup) >= grid.num_steps:
        return EveryStepPlan(grid.num_steps)
    if config.placement is Placement.ADAPTIVE:
        return AdaptivePlan(adaptive_controller(config, grid.num_steps, order=order), warmup=config.warmup)
    steps = plan_schedule(config, grid, gram=gram, ridge=ridge)
    return FixedPlan(frozenset(steps), warmup=config.warmup,
                     last_step=grid.num_steps - 1 if config.compute_last else None)


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

    def start_run(grid: StepGrid, diffusion_model, report: RunReport) -> RunPieces:
        return RunPieces(predictor, make_plan(config, grid, order=order), offload=offload)

    return L2PHolder("Forecast Cache", kind.value, start_run)
