"""L2P Cache's learning mode (the predictor_file choice ``AUTO_FILE``): it learns each setup from the user's runs.

Each sampling run finds its setup's learned file in models/l2p/ (``predictors.files.learned``: the model, the
sigma grid and the guidance decide; the file is named from them and survives restarts), then does one of
(``LearningPolicy.action``, reported as ``report.learning``):
- RECORD while the file holds fewer than ``needed`` trajectories (batch rows count): every step is computed and
  recorded by L2P Calibrate's own recorder, then added to the file under its lock (re-read, merged, replaced
  atomically), so two processes learning one setup both count. A cancelled run adds nothing; a read-only or full
  folder loses only the run's recording, and the report says so.
- FORECAST once it holds enough: exactly what L2P Cache does with a pinned file (``l2p_cache_holder``).
- KEEP_LEARNING ("keep learning"): every ``keep_every``-th run past enough is a full run that is recorded too.
  A forecasting run cannot add to the file: the statistics are inner products between the outputs of every pair
  of steps of one true trajectory, and a forecasting run computes only a few steps, of a trajectory the
  forecasts have moved. Only full runs give the truth, so keeping learning costs full runs. On the reference
  model (``python3 -m benchmark.learning``; README, "Learning from your first images") the mean hardly moves past
  4 trajectories, the worst samples under CFG still gain: a choice, not the default.
- "stop learning" records nothing: it forecasts from what the file holds (fewer than asked: FORECAST_FEW), or
  computes every step when nothing was learned (UNLEARNED).
- "start over" moves the setup's file to models/l2p/archive/ (never deleted; it stays pinnable) at this node's
  first run of the setup, then learns again.
The per-node state (which setups started over, runs past enough for keep-learning) lives in the holder: one
entry per setup this node has sampled, never more.
"""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field

from ..predictors.calibration.fit import DEFAULT_RIDGE
from ..predictors.files.learned import LearnedFile, Setup, archive_learned_file, find_learned_file, guidance_token
from ..predictors.forecasters.fora import Fora
from .architectures import family_of_run
from .calibrate_setup import CalibrationRecorder
from .l2p_setup import check_cache_settings, l2p_cache_holder
from .model_identity import model_identity
from .node_errors import L2P_CACHE
from .plans import EveryStepPlan
from .provenance import run_scheduler
from .report import LearningAction, LearningStatus, RunReport
from .run_state import L2PHolder, RunContext, RunPieces
from .setups import CalibrationMode

AUTO_FILE = "auto: learn from my runs"
LEARNED_BY = "ComfyUI-L2P L2P Cache (learning)"
# How many trajectories a setup records before it forecasts, and how far learning tops the file up afterwards.
# Measured (python3 -m benchmark.trajectories, both reference models, with and without CFG; README, "How many
# calibration images are enough"): 4 trajectories are within 0.8 dB of all 42 in the mean in 11 of 12 cells (Qwen-Image
# with CFG at 4.55x: 2 dB below) and 16 within 1.1 dB in all 12; the worst samples move less predictably (README).
# So a setup forecasts from 4, and the default mode records one run in KEEP_LEARNING_EVERY until the file holds 16.
LEARNING_TRAJECTORIES = 4
TOP_UP_TRAJECTORIES = 16
KEEP_LEARNING_EVERY = 8  # "keep learning": one full run in this many, once the file holds enough


class Learning(enum.Enum):
    LEARN = "learn, then forecast"
    KEEP = "keep learning"
    STOP = "stop learning"
    START_OVER = "start over"


LEARNING_CHOICES = [m.value for m in Learning]


@dataclass(frozen=True)
class LearningPolicy:
    learning: Learning = Learning.LEARN
    needed: int = LEARNING_TRAJECTORIES
    keep_every: int = KEEP_LEARNING_EVERY
    top_up_until: int = TOP_UP_TRAJECTORIES  # LEARN: recorded runs (one in keep_every) until the file holds this

    def __post_init__(self) -> None:
        if not isinstance(self.learning, Learning):
            raise ValueError(f"learning must be one of {LEARNING_CHOICES}, got {self.learning!r}")
        if not (isinstance(self.needed, int) and self.needed >= 1):
            raise ValueError(f"learning_images must be a whole number >= 1, got {self.needed!r}")
        if not (isinstance(self.keep_every, int) and self.keep_every >= 2):
            raise ValueError(f"keep_every must be a whole number >= 2, got {self.keep_every!r}")
        if not (isinstance(self.top_up_until, int) and self.top_up_until >= 0):
            raise ValueError(f"top_up_until must be a whole number >= 0, got {self.top_up_until!r}")

    def action(self, trajectories: int, runs_past_enough: int) -> LearningAction:
        """What a run does when the setup's file holds ``trajectories`` and this node has made
        ``runs_past_enough`` runs of the setup since it held enough."""
        if trajectories < self.needed:
            if self.learning is Learning.STOP:
                return LearningAction.FORECAST_FEW if trajectories else LearningAction.UNLEARNED
            return LearningAction.RECORD
        keeps = self.learning is Learning.KEEP or (
            self.learning is Learning.LEARN and trajectories < self.top_up_until)  # the default tops up to 16
        if keeps and runs_past_enough % self.keep_every == self.keep_every - 1:
            return LearningAction.KEEP_LEARNING
        return LearningAction.FORECAST


def run_setup(context: RunContext) -> Setup:
    """The setup of a run, read from ComfyUI's objects at its start."""
    return Setup(family=family_of_run(context),
                 identity=model_identity(context.diffusion_model, context.model_patcher),
                 sigmas=tuple(float(s) for s in context.grid.array), guidance=guidance_token(context.cfg_scale),
                 scheduler=run_scheduler(context.model_patcher, context.grid.array, context.sampler))


@dataclass
class _NodeState:
    """What one learning node remembers between its runs, per setup key (bounded by the setups it samples)."""

    started_over: set[str] = field(default_factory=set)
    runs_past_enough: dict[str, int] = field(default_factory=dict)


class _LearningSink:
    """L2P Calibrate's recorder for a learning run, which then says in the report where learning stands."""

    on_policy = False
    stops_on_bad_output = False  # NaN/inf from the model: this run is not learned from, its image still returns

    def __init__(self, recorder: CalibrationRecorder, status: LearningStatus) -> None:
        self.recorder, self.status = recorder, status

    def record(self, step: int, outputs: dict) -> None:
        self.recorder.record(step, outputs)

    def finish(self, success: bool, report: RunReport) -> None:
        try:
            self.recorder.finish(success, report)
        finally:
            saved = self.recorder.saved
            self.status.saved = saved is not None
            if saved is not None:
                self.status.trajectories = int(saved.sample_count)


def learning_holder(folder: str, policy: LearningPolicy, cache_settings: dict,
                    lesa_settings: dict | None = None) -> L2PHolder:
    """L2P Cache in learning mode over ``folder`` (models/l2p/); ``cache_settings``: ``l2p_cache_holder``'s
    keyword arguments (speedup, placement, predictor ...) for the forecasting runs, validated now: a bad setting
    fails when the node runs, not at the first forecast after the learning runs. ``lesa_settings``: where and with
    which progress bar LESA trains when the forecasting runs need it (``l2p_cache_holder``'s lesa_* arguments)."""
    check_cache_settings(**cache_settings)
    state = _NodeState()

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        setup = run_setup(context)
        key = setup.key()
        found = find_learned_file(folder, setup)
        report.notes.extend(found.notes)
        if policy.learning is Learning.START_OVER and key not in state.started_over:
            state.started_over.add(key)
            found = _start_over(found, os.path.join(folder, setup.file_name()), report)
        past = state.runs_past_enough.get(key, 0)
        action = policy.action(found.trajectories, past)
        if found.trajectories >= policy.needed:
            state.runs_past_enough[key] = past + 1
        status = LearningStatus(os.path.basename(found.path), found.trajectories, policy.needed, action)
        report.learning = status
        steps = context.grid.num_steps
        if action.records:
            recorder = CalibrationRecorder(found.path, context, DEFAULT_RIDGE, CalibrationMode.TEACHER_FORCED,
                                           seed=found.trajectories, created_by=LEARNED_BY,
                                           extra_metadata=setup.metadata())
            return RunPieces(Fora(), EveryStepPlan(steps), calibration=_LearningSink(recorder, status))
        if action is LearningAction.UNLEARNED:
            return RunPieces(Fora(), EveryStepPlan(steps))
        return l2p_cache_holder(found.path, **cache_settings, **(lesa_settings or {})).start_run(context, report)

    mode = cache_settings.get("mode", "direct")
    return L2PHolder(L2P_CACHE, f"L2P {mode} (learning: {policy.learning.value})", start_run)


def _start_over(found: LearnedFile, fresh: str, report: RunReport) -> LearnedFile:
    """Archive the setup's file; learning starts again at ``fresh`` (the setup's own name, also when the archived
    file was found under the name of the same weights at another precision)."""
    try:
        archived = archive_learned_file(found.path)
    except OSError as err:
        report.notes.append(f"start over: could not move {found.path} aside ({err.strerror or err}); it is kept and"
                            f" learning continues in it")
        return found
    if archived is None:
        report.notes.append("start over: nothing learned for this setup yet")
    else:
        report.notes.append(f"start over: the learned file moved to {archived} (pin it to use it again); set"
                            f" learning back to '{Learning.LEARN.value}', or the next time this node runs it"
                            f" starts over again")
    return LearnedFile(fresh, None, found.notes)
