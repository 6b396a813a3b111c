"""L2P Calibrate's setup: every step's truth recorded, then added to the predictor file when the run ends.

What the file gains per run: the joint Gram over (stream, step) (``TrajectoryRecorder``: kilobytes, whatever the
resolution), the run's provenance and model identity and, with ``lesa_sample`` only, a fixed-size sample of
element trajectories for LESA (``TrajectorySampler``: megabytes, so it is off unless LESA is wanted). A cancelled
run never reaches the file. The file is extended under its lock (re-read, merged, replaced atomically:
``predictors.files.update``), so processes calibrating into one file all count. A file that cannot be written
(read-only or full folder) loses only this run's recording: the image is returned and the report says why.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..predictors.calibration.gram import GramStats
from ..predictors.calibration.recorder import TrajectoryRecorder
from ..predictors.files.calibration_file import stats_from_file
from ..predictors.files.identity import OtherModel
from ..predictors.files.update import extend_calibration_file
from ..predictors.forecasters.fora import Fora
from ..predictors.errors import CalibrationError
from ..predictors.files.predictor_file import PredictorFile, PredictorFileError
from ..predictors.files.storage import load_predictor_file
from ..predictors.schedules import error_growth
from ..predictors.schedules.error_growth import ErrorGrowth
from ..predictors.schedules.placements import Placement, computed_count, expected_final_error, optimized_schedule
from ..predictors.calibration.trajectory_sample import TrajectorySampler
from .architectures import family_of_run
from .cfg_record import cfg_record
from .l2p_setup import cfg_error_model, fit_gram, is_cfg_run, l2p_cache_holder, schedule_growth
from .model_identity import check_file_identity, model_identity
from .node_errors import L2P_CALIBRATE
from .plans import EveryStepPlan
from .provenance import contributor_note, run_provenance
from .report import RunReport, logger
from .run_state import L2PHolder, RunContext, RunPieces
from .setups import (
    DEFAULT_L2P_WARMUP, DEFAULT_RESIDUAL_BUDGET, CalibrationMode, CfgFit, FitOptions, GridPolicy, HistoryDevice,
    L2PMode,
)


REPORTED_SPEEDUPS = (4.55, 5.56, 7.14)
# the report's curve (the node's plot): a few points from light to aggressive, a schedule search each (~0.1-0.5 s
# for 50 steps on a CPU core)
PLOTTED_SPEEDUPS = (2.0, 3.0, 4.55, 5.56, 7.14, 10.0)
CREATED_BY = "ComfyUI-L2P L2P Calibrate"
OTHER_FILE_FIX = "Choose another file_name for this model: a calibration file holds one model's runs"


class CalibrationRecorder:
    """The calibration sink of one run: records the truth of every step, then extends the file under its lock."""

    stops_on_bad_output = True  # NaN/inf from the model stops a calibration run (output_guard.py)

    def __init__(self, path: str, context: RunContext, ridge: float, mode: CalibrationMode, seed: int = 0, *,
                 lesa_sample: bool = False, created_by: str = CREATED_BY,
                 extra_metadata: dict[str, str] | None = None) -> None:
        self.path, self.context, self.grid, self.ridge, self.mode = path, context, context.grid, ridge, mode
        self.created_by = created_by
        self.extra_metadata = dict(extra_metadata or {})  # added to the run's provenance (e.g. a learned setup)
        self.saved: PredictorFile | None = None  # the file after this run was added to it
        self.lost: str | None = None  # why this run's recording was lost, when it was
        self.cfg_scale = context.cfg_scale
        self.seed = seed  # where the element sample looks: the file's trajectory count, so reruns reproduce
        self.on_policy = mode is CalibrationMode.ON_POLICY
        self.family = family_of_run(context)
        self.model_class = type(context.diffusion_model).__name__
        self.identity = model_identity(context.diffusion_model, context.model_patcher)
        self.recorder: TrajectoryRecorder | None = None
        self.lesa_sample = lesa_sample
        self.sampler: TrajectorySampler | None = None  # LESA's training data (lesa_sample): an element sample
        self.latent_channels = 0

    def record(self, step: int, outputs: dict) -> None:
        if self.recorder is None:
            roles = tuple(r for r in ("cond", "uncond") if r in outputs) + tuple(
                sorted(r for r in outputs if r not in ("cond", "uncond")))
            self.recorder = TrajectoryRecorder(self.grid, roles=roles)
            if self.lesa_sample:
                self.sampler = TrajectorySampler(self.grid, roles=roles, seed=self.seed)
            self.latent_channels = int(next(iter(outputs.values())).shape[1])
        missing = set(self.recorder.roles) ^ set(outputs)
        if missing:
            raise CalibrationError(
                f"step {step} has conditionings {sorted(outputs)} but the run started with"
                f" {list(self.recorder.roles)}; keep the positive/negative setup fixed during a calibration run."
            )
        self.recorder.record(step, outputs)
        if self.sampler is not None:
            self.sampler.record(step, outputs)

    def finish(self, success: bool, report: RunReport) -> None:
        if self.recorder is None:
            return
        if not success:
            self.recorder.abandon()  # a cancelled run never reaches the file
            if self.sampler is not None:
                self.sampler.abandon()
            report.notes.append(f"calibration run discarded; {self.path} left unchanged")
            return
        stats = self.recorder.finish()
        fields, extra = run_provenance(self.context.model_patcher, self.context.sampler, self.grid.array,
                                       self.identity, stats.sample_count)
        sample = None if self.sampler is None else self.sampler.finish()
        try:
            result = extend_calibration_file(
                self.path, stats, sample, extra={**extra, **error_growth.to_metadata(), **self.extra_metadata},
                model_family=self.family, model_class=self.model_class, latent_channels=self.latent_channels,
                ridge=self.ridge, fit_mode=self.mode.value, created_by=self.created_by,
                cfg_mode=cfg_record(None, self.recorder.roles, self.cfg_scale), **fields,
            )
        except (OSError, PredictorFileError) as err:  # the image is fine; only this run's recording is lost
            self.lost = report.recording_lost = recording_lost_note(self.path, err)
            report.notes.append(self.lost)
            logger.warning("[L2P] %s", self.lost)
            return
        pf = self.saved = result.file
        report.recorded = pf.sample_count
        report.notes.append(f"calibration file {self.path}: {pf.sample_count} trajectories"
                            f" ({', '.join(pf.roles)}), {pf.steps} steps; {contributor_note()}")
        report.notes.extend(result.notes)
        stats = stats_from_file(pf, self.path)  # a refit adopts the current schedule error model (error_growth)
        growth = schedule_growth(pf, self.path, is_cfg_run(self.cfg_scale, stats), FitOptions())
        report.quality = expected_quality(self.path, stats, self.ridge, self.cfg_scale, growth)
        report.notes.append(quality_line(report.quality))


def recording_lost_note(path: str, err: BaseException) -> str:
    """The report's line when a finished run cannot be added to its file (the run itself has succeeded)."""
    if isinstance(err, OSError):
        why = f"the folder {os.path.dirname(path)} cannot be written ({err.strerror or err})"
        fix = "make the folder writable or free disk space, then calibrate again"
    else:
        why, fix = str(err), "fix the file as the message says, then calibrate again"
    return f"calibration NOT saved: this run's recording is lost because {why}; {path} is unchanged. To keep" \
           f" recordings, {fix}"


def expected_quality(path: str, stats: GramStats, ridge: float, cfg_scale: float | None,
                     growth: ErrorGrowth = error_growth.LEGACY,
                     speedups: tuple[float, ...] = PLOTTED_SPEEDUPS) -> tuple[tuple[float, float], ...]:
    """(speedup, expected dB) of the final latent (like PSNR of the denoising displacement) at ``speedups`` (each
    rounded to whole passes; those the grid cannot take left out), with the schedules and fits L2P Cache uses by
    default for this guidance setup (its schedule search weighs steps by ``growth``); under CFG, of the guided
    output. The quality itself is the teacher-forced error (dsigma only)."""
    grid = stats.grid
    gram = fit_gram(path, stats, cfg_scale, CfgFit.PER_STREAM)
    mix, search, exact = None, gram, gram
    if is_cfg_run(cfg_scale, stats):
        options = FitOptions()
        search, mix = cfg_error_model(stats, cfg_scale, options)  # what L2P Cache's schedule search minimises
        exact = cfg_error_model(stats, cfg_scale, options, keep=1.0)[0]  # the guided output's own statistics
        gram = stats.combined_gram({"cond": cfg_scale, "uncond": 1.0 - cfg_scale})
    d = np.abs(grid.dsigma())
    total = float(d @ gram @ d)
    points, counts = [], sorted({computed_count(grid.num_steps, s) for s in speedups}, reverse=True)
    for k in counts:
        if k <= DEFAULT_L2P_WARMUP or k >= grid.num_steps:
            continue
        steps = optimized_schedule(search, grid, k, warmup=DEFAULT_L2P_WARMUP, ridge=ridge, mix=mix,
                                   step_weights=growth.step_weights(grid))
        err = expected_final_error(exact, grid, steps, ridge, mix=mix)
        points.append((grid.num_steps / k, float(10 * np.log10(total / max(err, 1e-300)))))
    return tuple(points)


def quality_line(points: tuple[tuple[float, float], ...]) -> str:
    parts = [f"{speedup:.2f}x: {db:.1f} dB" for speedup, db in points]
    return "expected quality with optimized schedules (teacher-forced): " + (", ".join(parts) or "n/a")


def expected_quality_line(path: str, stats: GramStats, ridge: float, cfg_scale: float | None,
                          growth: ErrorGrowth = error_growth.LEGACY) -> str:
    """``expected_quality`` at REPORTED_SPEEDUPS, as the report's line."""
    return quality_line(expected_quality(path, stats, ridge, cfg_scale, growth, REPORTED_SPEEDUPS))


def calibrate_holder(path: str, *, ridge: float, mode: str, on_policy_speedup: float,
                     lesa_sample: bool = False) -> L2PHolder:
    """L2P Calibrate: every run's truth is added to the file at ``path`` when the run finishes; with
    ``lesa_sample`` also a sample of element trajectories (LESA's training data, megabytes)."""
    mode = CalibrationMode(mode)
    if mode is CalibrationMode.ON_POLICY and not os.path.exists(path):
        raise PredictorFileError(
            f"{path}: on-policy calibration follows an existing file's forecasts, but the file does not exist yet."
            f" Run teacher-forced calibration first (a few prompts), then switch to on-policy."
        )

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        grid = context.grid
        predictor, plan, seed = Fora(), EveryStepPlan(grid.num_steps), 0
        pieces, note = None, None
        sink = CalibrationRecorder(path, context, ridge, mode, lesa_sample=lesa_sample)
        if os.path.exists(path):  # refuse a mismatching file before any step runs, and leave it untouched
            pf = load_predictor_file(path, expect_grid=grid, expect_family=family_of_run(context))
            stats_from_file(pf, path)  # an imported weight matrix cannot be extended: said now, not after the run
            note = check_file_identity(path, pf, sink.identity, OtherModel.REFUSE, OTHER_FILE_FIX)
            sink.seed = pf.sample_count or 0
        if mode is CalibrationMode.ON_POLICY:
            # follow exactly what L2P Cache does with this file by default (fit, CFG handling, schedule), so the
            # recorded trajectories drift the way the cache's runs drift
            pieces = l2p_cache_holder(
                path, speedup=on_policy_speedup, placement=Placement.OPTIMIZED.value, warmup=DEFAULT_L2P_WARMUP,
                compute_last=False, residual_budget=DEFAULT_RESIDUAL_BUDGET,
                history_device=HistoryDevice.MODEL.value, mode=L2PMode.DIRECT.value,
                grid_policy=GridPolicy.REFUSE.value, ridge=ridge,
            ).start_run(context, report)
        if note and note not in report.notes:  # on-policy: L2P Cache's setup may have said it already
            report.notes.append(note)
        if pieces is None:
            return RunPieces(predictor, plan, calibration=sink)
        return dataclasses.replace(pieces, calibration=sink)

    return L2PHolder(L2P_CALIBRATE, f"{mode.value} -> {os.path.basename(path)}", start_run)
