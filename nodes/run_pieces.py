"""What a node's setup builds for one sampling run, and the two protocols the run state drives.

``L2PHolder.start_run(RunContext, RunReport) -> RunPieces``: the predictor (or an engine factory), the step plan
and, for L2P Calibrate, the calibration sink. ``run_calls.RunState`` runs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from ..predictors import StepGrid
from ..predictors.engine.linear_predictor import LinearPredictor
from .report import ForcedReason, RunReport


class StepPlan(Protocol):
    """Which steps are computed. ``decide`` is called once per step, in order; residuals arrive after."""

    def decide(self, step: int) -> tuple[bool, ForcedReason | None]: ...

    def report_residual(self, step: int, residual: float) -> None: ...

    @property
    def planned(self) -> tuple[int, ...] | None: ...

    notes: tuple[str, ...]  # lines for the run's report (e.g. a run too short for the speedup)


class CalibrationSink(Protocol):
    """Receives the true outputs of steps, all roles of a step together, and folds them in when the run ends.

    ``stops_on_bad_output``: a model output holding NaN/inf stops the run (L2P Calibrate: the user asked for a
    calibration, and it cannot have one); False drops this run's recording and lets the run finish (L2P Cache
    learning: the user asked for an image, and gets what the model gives)."""

    on_policy: bool
    stops_on_bad_output: bool

    def record(self, step: int, outputs: dict[str, torch.Tensor]) -> None: ...

    def finish(self, success: bool, report: RunReport) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a node's setup learns about a run before its first step."""

    grid: StepGrid  # the run's sample_sigmas
    diffusion_model: Any  # the transformer module (its class decides the model family)
    cfg_scale: float | None = None  # the guider's CFG scale (None when the guider has no single scale)
    model_patcher: Any = None  # the guider's ModelPatcher (model identity, model_sampling); None outside ComfyUI
    sampler: Any = None  # the run's Sampler (its name goes into calibration files); None outside ComfyUI
    family: str | None = None  # named by callers outside ComfyUI (the benchmark); None: the model and config say


@dataclass
class RunPieces:
    """What a node's setup builds for one run."""

    predictor: LinearPredictor
    plan: StepPlan
    offload: bool = False
    calibration: CalibrationSink | None = None
    # A predictor that is not a linear combination (LESA) brings its own engine: (grid, offload) -> engine with
    # ForecastEngine's methods. None: the linear ForecastEngine over ``predictor``.
    make_engine: Callable[[StepGrid, bool], Any] | None = None
