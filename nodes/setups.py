"""What each node builds: the holder stored on the model and, per run, the predictor, plan and calibration sink.

The node classes only declare inputs; everything that turns inputs into behaviour is here, testable without
the node API. Every choice the UI offers is an enum whose values are the strings the UI shows.
"""
from __future__ import annotations

import enum
import os

import numpy as np
import torch

from ..predictors.calibration import GramStats, TrajectoryRecorder
from ..predictors.lesa_engine import LesaEngine
from ..predictors.lesa_train import train_lesa
from ..predictors.trajectory_sample import TrajectorySample, TrajectorySampler
from ..predictors.calibration_file import extend_calibration_file, stats_from_file
from ..predictors.fit import DEFAULT_RIDGE, fit_paper_adam
from ..predictors.engine import ForecastEngine, RoutedEngine
from ..predictors.fora import Fora
from ..predictors.grid import StepGrid, TimeAxis
from ..predictors.registry import METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor
from ..predictors.l2p import L2PDirect, L2PRollout
from ..predictors.predictor_file import PredictorFile, PredictorFileError, load_predictor_file
from ..predictors.schedules import (
    Placement, ScheduleConfig, adaptive_controller, computed_count, expected_final_error, optimized_schedule,
    plan_schedule,
)
from ..predictors.transfer import resample_gram
from .architectures import family_of
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
    """What L2P fits under classifier-free guidance (both need a file calibrated with CFG).

    PER_ROLE is what the nodes use: on the reference model (python3 -m benchmark) it was 0.1-0.5 dB ahead of
    PER_STREAM. GUIDED fits the guided output's statistics exactly, yet it diverged at 4.55x and 5.56x (PSNR ~4 dB:
    large weights that teacher-forced statistics cannot see amplifying the trajectory's drift), so it stays a
    benchmark variant only.
    """

    PER_ROLE = "each stream, own statistics"  # cond fitted on the cond Gram, uncond on the uncond Gram
    PER_STREAM = "each stream, summed statistics"  # one weight vector per step for both, fitted on both Grams
    GUIDED = "guided output"  # one weight vector fitted on the Gram of u + g (c - u) at the run's scale g


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

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        return RunPieces(predictor, make_plan(config, context.grid, order=order), offload=offload)

    return L2PHolder("Forecast Cache", kind.value, start_run)


# ------------------------------------------------------------------------------------------------ L2P Cache
def _check_family(path: str, pf: PredictorFile, family: str) -> None:
    if pf.model_family != family:
        raise PredictorFileError(
            f"{path}: this predictor file was calibrated for model family '{pf.model_family}', but the model being"
            f" sampled is '{family}'. Choose a file calibrated for this model, or calibrate one with L2P Calibrate."
        )


def _run_stats(path: str, pf: PredictorFile, grid: StepGrid, policy: GridPolicy, report: RunReport) -> GramStats:
    """The file's statistics on the run's grid: as recorded, resampled when allowed, else a clear refusal."""
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


def _is_cfg(cfg_scale: float | None, stats: GramStats) -> bool:
    return cfg_scale is not None and cfg_scale != 1.0 and "uncond" in stats.roles


def l2p_cache_holder(path: str, *, speedup: float, placement: str, warmup: int, compute_last: bool,
                     residual_budget: float, history_device: str, mode: str, grid_policy: str,
                     cfg_fit: str = CfgFit.PER_ROLE.value) -> L2PHolder:
    """L2P Cache: a calibrated predictor file. The file is validated now; the grid and family at run start."""
    pf = load_predictor_file(path)
    config = _schedule_config(speedup, placement, warmup, compute_last, residual_budget)
    mode, policy, cfg_fit = L2PMode(mode), GridPolicy(grid_policy), CfgFit(cfg_fit)
    offload = HistoryDevice(history_device) is HistoryDevice.CPU
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

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        grid = context.grid
        _check_family(path, pf, family_of(context.diffusion_model))
        if not pf.has_gram:
            if grid.num_steps != pf.steps:
                raise PredictorFileError(
                    f"{path}: the weight matrix is for {pf.steps} steps, but this run samples {grid.num_steps}. Set"
                    f" the sampler to {pf.steps} steps, or calibrate this step count with L2P Calibrate."
                )
            return RunPieces(L2PRollout(pf.paper_matrix), make_plan(config, grid), offload=offload)
        stats = _run_stats(path, pf, grid, policy, report)
        gram = fit_gram(path, stats, context.cfg_scale, cfg_fit)
        if mode is L2PMode.LESA:
            model = lesa_model(path, pf)
            return RunPieces(Fora(), make_plan(config, grid, gram=gram, ridge=ridge, order=1), offload=offload,
                             make_engine=lambda g, off: LesaEngine(model, g, offload=off))
        if mode is L2PMode.DIRECT and cfg_fit is CfgFit.PER_ROLE and _is_cfg(context.cfg_scale, stats):
            engines = {r: L2PDirect(stats.role_gram(r), ridge=ridge) for r in stats.roles}
            default = L2PDirect(gram, ridge=ridge)
            return RunPieces(default, make_plan(config, grid, gram=gram, ridge=ridge), offload=offload,
                             make_engine=lambda g, off: RoutedEngine(
                                 {r: ForecastEngine(p, g, off) for r, p in engines.items()},
                                 ForecastEngine(default, g, off)))
        if mode is L2PMode.DIRECT:
            predictor = L2PDirect(gram, ridge=ridge)
        else:  # the published recipe: Adam from the identity, 201 full-batch steps (regularised by early stopping)
            predictor = L2PRollout(fit_paper_adam(gram, elements=float(stats.element_count * len(stats.roles))))
        return RunPieces(predictor, make_plan(config, grid, gram=gram, ridge=ridge), offload=offload)

    return L2PHolder("L2P Cache", f"L2P {mode.value} ({name})", start_run)


# LESA models trained this session, by file identity: training takes tens of seconds, so a graph that re-runs
# (or several cache nodes on one file) trains once.
_LESA_MODELS: dict[tuple, object] = {}


def lesa_model(path: str, pf: PredictorFile):
    """The file's LESA model, trained (once per session and file content) from the file's trajectory sample."""
    sample = TrajectorySample.from_arrays(pf.lesa, pf.roles) if "traj_values" in pf.lesa else None
    if sample is None or sample.size < 2:
        raise PredictorFileError(
            f"{path}: LESA trains on the element trajectories that L2P Calibrate samples, and this file holds none"
            f" (it was written by an older version or imported). Run L2P Calibrate into this file once more."
        )
    key = (os.path.abspath(path), sample.seen_count, sample.size)
    if key not in _LESA_MODELS:
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(min(threads, 2))  # small KAN batches: more threads only spin
            # ComfyUI executes graphs under inference_mode (execution.py); training needs autograd back
            with torch.inference_mode(False), torch.enable_grad():
                _LESA_MODELS[key] = train_lesa(sample)[0]
        finally:
            torch.set_num_threads(threads)
    return _LESA_MODELS[key]


# ------------------------------------------------------------------------------------------------ L2P Calibrate
REPORTED_SPEEDUPS = (4.55, 5.56, 7.14)


class CalibrationRecorder:
    """The calibration sink of one run: records the truth of every step, then extends the file atomically."""

    def __init__(self, path: str, grid: StepGrid, diffusion_model, ridge: float, mode: CalibrationMode,
                 cfg_scale: float | None = None, seed: int = 0) -> None:
        self.path, self.grid, self.ridge, self.mode, self.cfg_scale = path, grid, ridge, mode, cfg_scale
        self.seed = seed  # where the element sample looks: the file's trajectory count, so reruns reproduce
        self.on_policy = mode is CalibrationMode.ON_POLICY
        self.family = family_of(diffusion_model)
        self.model_class = type(diffusion_model).__name__
        self.recorder: TrajectoryRecorder | None = None
        self.sampler: TrajectorySampler | None = None  # LESA's training data: a fixed-size element sample
        self.latent_channels = 0

    def record(self, step: int, outputs: dict) -> None:
        if self.recorder is None:
            roles = tuple(r for r in ("cond", "uncond") if r in outputs) + tuple(
                sorted(r for r in outputs if r not in ("cond", "uncond")))
            self.recorder = TrajectoryRecorder(self.grid, roles=roles)
            self.sampler = TrajectorySampler(self.grid, roles=roles, seed=self.seed)
            self.latent_channels = int(next(iter(outputs.values())).shape[1])
        missing = set(self.recorder.roles) ^ set(outputs)
        if missing:
            raise ValueError(
                f"L2P Calibrate: step {step} has conditionings {sorted(outputs)} but the run started with"
                f" {list(self.recorder.roles)}; keep the positive/negative setup fixed during a calibration run."
            )
        self.recorder.record(step, outputs)
        self.sampler.record(step, outputs)

    def finish(self, success: bool, report: RunReport) -> None:
        if self.recorder is None:
            return
        if not success:
            self.recorder.abandon()  # a cancelled run never reaches the file
            self.sampler.abandon()
            report.notes.append(f"calibration run discarded; {self.path} left unchanged")
            return
        stats = self.recorder.finish()
        pf = extend_calibration_file(
            self.path, stats, model_family=self.family, model_class=self.model_class,
            latent_channels=self.latent_channels, ridge=self.ridge, fit_mode=self.mode.value,
            created_by="ComfyUI-L2P L2P Calibrate", trajectory_sample=self.sampler.finish(),
        )
        report.notes.append(f"calibration file {self.path}: {pf.sample_count} trajectories"
                            f" ({', '.join(pf.roles)}), {pf.steps} steps")
        report.notes.append(expected_quality_line(self.path, stats_from_file(pf, self.path), self.ridge,
                                                  self.cfg_scale))


def expected_quality_line(path: str, stats: GramStats, ridge: float, cfg_scale: float | None) -> str:
    """The expected final-latent quality (dB, like PSNR of the denoising displacement) at a few speedups, from the
    same statistics L2P Cache fits on for this guidance setup."""
    grid = stats.grid
    gram = fit_gram(path, stats, cfg_scale, CfgFit.PER_STREAM)
    d = np.abs(grid.dsigma())
    total = float(d @ gram @ d)
    parts = []
    for speedup in REPORTED_SPEEDUPS:
        k = computed_count(grid.num_steps, speedup)
        if k <= DEFAULT_WARMUP or k >= grid.num_steps:
            continue
        steps = optimized_schedule(gram, grid, k, warmup=DEFAULT_WARMUP, ridge=ridge)
        err = expected_final_error(gram, grid, steps, ridge)
        parts.append(f"{grid.num_steps / k:.2f}x: {10 * np.log10(total / max(err, 1e-300)):.1f} dB")
    return "expected quality with optimized schedules (teacher-forced): " + (", ".join(parts) or "n/a")


def calibrate_holder(path: str, *, ridge: float, mode: str, on_policy_speedup: float) -> L2PHolder:
    """L2P Calibrate: every run's truth is added to the file at ``path`` when the run finishes."""
    mode = CalibrationMode(mode)
    if mode is CalibrationMode.ON_POLICY and not os.path.exists(path):
        raise PredictorFileError(
            f"{path}: on-policy calibration follows an existing file's forecasts, but the file does not exist yet."
            f" Run teacher-forced calibration first (a few prompts), then switch to on-policy."
        )
    config = _schedule_config(on_policy_speedup, Placement.OPTIMIZED.value, DEFAULT_WARMUP, False,
                              DEFAULT_RESIDUAL_BUDGET)

    def start_run(context: RunContext, report: RunReport) -> RunPieces:
        grid = context.grid
        predictor, plan, gram, seed = Fora(), EveryStepPlan(grid.num_steps), None, 0
        if os.path.exists(path):  # refuse a mismatching file before any step runs, and leave it untouched
            pf = load_predictor_file(path, expect_grid=grid, expect_family=family_of(context.diffusion_model))
            seed = pf.sample_count or 0
            gram = fit_gram(path, stats_from_file(pf, path), context.cfg_scale, CfgFit.PER_STREAM)
            predictor = L2PDirect(gram, ridge=ridge)
        if mode is CalibrationMode.ON_POLICY:
            plan = make_plan(config, grid, gram=gram, ridge=ridge)
        sink = CalibrationRecorder(path, grid, context.diffusion_model, ridge, mode, context.cfg_scale, seed)
        return RunPieces(predictor, plan, calibration=sink)

    return L2PHolder("L2P Calibrate", f"{mode.value} -> {os.path.basename(path)}", start_run)
