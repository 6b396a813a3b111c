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
from ..predictors.schedules import Placement, computed_count
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
ADAPTIVE = "adaptive"
L2P_PLACEMENTS = [Placement.OPTIMIZED.value, Placement.EVEN.value, Placement.PROGRESSIVE.value,
                  Placement.PUBLISHED.value, ADAPTIVE]
FORECAST_PLACEMENTS = [Placement.EVEN.value, Placement.PROGRESSIVE.value, Placement.PUBLISHED.value, ADAPTIVE]
