"""Training LESA from a trajectory sample, in two phases.

Data: a ``TrajectorySample`` (float32 [T, R, S]); every (trajectory, role) row is one element sequence and all
roles share the experts. A fraction of the trajectories is held out to report how much LESA beats its baseline.

Which forecasts are trained: the ones the runtime will make. For every speedup in ``speedups`` we take the even
schedule with ``warmup`` warm-up steps (with and without the last step computed); every skipped step t of such a
schedule after its first computed step gives a pair (history = the last m computed steps before t, target t).
Pairs shared by several schedules are trained once. The runtime feeds only TRUE computed outputs into the
history (forecasts never enter it; see ``lesa.py``), so history values are always true values here too.

Phase 1 (teacher-forced, per forecast): minimise the mean squared error of every pair's forecast against the
true output, each pair weighted equally, in out_scale units.
Phase 2 (closed-loop over a run): minimise the error that reaches the result. Euler integrates
x_final = x_T + sum_s dsigma_s F_s, so along one schedule the forecast errors accumulate as
sum_t dsigma_t (F_hat_t - F_t); the loss is its mean square over elements and schedules, back-propagated through
every forecast of the run jointly, so the experts learn which errors compound and which cancel.
What phase 2 cannot see from stored trajectories: how a forecast error moves the latent and thereby the later true
outputs (that needs the model). Calibrating on-policy (RunState's calibration sink records the true output at
forecast steps while the run follows the forecasts) puts such trajectories into the sample.

Optimiser: Adam, fixed iteration counts, minibatches of element sequences drawn with a seeded generator, the
same result for the same sample and config (single-threaded determinism of torch on CPU).
Choices where the paper is silent: everything above except "two phases: ground-truth guided, then closed-loop".
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...engine.grid import StepGrid
from .batch import PairBatcher
from .model import Baseline, LesaModel, num_features, stage_edges
from .kan import KanShape, init_params
from ...schedules.placements import computed_count, even_schedule
from ...calibration.trajectory_sample import TrajectorySample


@dataclass(frozen=True)
class LesaTrainConfig:
    history: int = 3
    num_experts: int = 3
    hidden: int = 8  # 0: a single KAN layer
    grid_size: int = 6
    baseline: Baseline = Baseline.LINEAR
    speedups: tuple[float, ...] = (3, 4, 5, 6, 7, 8)
    warmup: int = 2
    phase1_iters: int = 300
    phase2_iters: int = 150
    batch: int = 256  # element sequences per iteration, at most
    rows_per_iter: int = 40_000  # at most this many (sequence, pair) forecasts per iteration: bounds the time
                                 # per iteration whatever the step count (S = 50 has ~2.5x the pairs of S = 28)
    lr_phase1: float = 1e-2
    lr_phase2: float = 3e-3
    holdout_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.baseline, Baseline):
            raise ValueError(f"baseline must be a Baseline, got {self.baseline!r}")
        for name in ("history", "num_experts", "grid_size", "batch", "rows_per_iter"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LesaTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden < 0 or self.phase1_iters < 0 or self.phase2_iters < 0 or self.warmup < 1:
            raise ValueError("LesaTrainConfig: hidden and iteration counts must be >= 0, warmup >= 1")
        if not self.speedups or any(float(s) < 1 for s in self.speedups):
            raise ValueError(f"LesaTrainConfig.speedups must be a non-empty list of numbers >= 1, got {self.speedups}")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")


@dataclass(frozen=True)
class ForecastPairs:
    """The (history, target) pairs of a set of schedules.

    hist:    int64 [P, m] history steps, oldest first, padded by repeating the oldest.
    target:  int64 [P].
    weights: float64 [K, P]: |dsigma_t| where pair p is a forecast of schedule k, else 0.
    schedules: the K schedules.
    """

    hist: np.ndarray
    target: np.ndarray
    weights: np.ndarray
    schedules: tuple[tuple[int, ...], ...]


def training_schedules(num_steps: int, speedups, warmup: int) -> tuple[tuple[int, ...], ...]:
    """Even schedules for each speedup, with and without the last step; those that cannot exist are skipped."""
    out = []
    for speedup in speedups:
        k = computed_count(num_steps, float(speedup))
        for last in (False, True):
            try:
                sched = even_schedule(num_steps, k, warmup=min(warmup, k), compute_last=last)
            except ValueError:
                continue
            if len(sched) < num_steps and sched not in out:
                out.append(sched)
    return tuple(out)


def forecast_pairs(grid: StepGrid, schedules, history: int) -> ForecastPairs:
    index: dict[tuple[tuple[int, ...], int], int] = {}
    hist, target, entries = [], [], []
    dsig = np.abs(grid.dsigma())
    for k, sched in enumerate(schedules):
        computed = set(sched)
        for t in range(sched[0] + 1, grid.num_steps):
            if t in computed:
                continue
            before = [s for s in sched if s < t][-history:]
            before = [before[0]] * (history - len(before)) + before
            key = (tuple(before), t)
            if key not in index:
                index[key] = len(hist)
                hist.append(before)
                target.append(t)
            entries.append((k, index[key], dsig[t]))
    if not hist:
        raise ValueError("the training schedules forecast no step; lower the warm-up or raise the speedups")
    weights = np.zeros((len(schedules), len(hist)))
    for k, p, w in entries:
        weights[k, p] = w
    return ForecastPairs(np.asarray(hist, np.int64), np.asarray(target, np.int64), weights, tuple(schedules))


@dataclass(frozen=True)
class LesaTrainReport:
    """Held-out errors (relative: ||error|| / ||truth||, over held-out element sequences) and timing."""

    seconds: float
    train_sequences: int
    holdout_sequences: int
    pairs: int
    schedules: int
    forecast_error_baseline: float  # phase-1 metric: every pair's forecast
    forecast_error_lesa: float
    final_error_baseline: float  # phase-2 metric: dsigma-weighted accumulated error per schedule
    final_error_lesa: float
    losses: tuple[float, ...] = field(default=(), repr=False)


ProgressCallback = Callable[[int, int], None]  # (iterations done, iterations in all), after every iteration

#: at most this many held-out sequences are evaluated for the report (enough for its 2-3 significant digits)
REPORT_SEQUENCES = 1024


def train_lesa(sample: TrajectorySample, grid: StepGrid | None = None,
               config: LesaTrainConfig = LesaTrainConfig(), progress: ProgressCallback | None = None,
               device: torch.device | str = "cpu") -> tuple[LesaModel, LesaTrainReport]:
    """Train LESA's experts on ``sample`` (on its own grid unless ``grid``, which must match it).

    progress: called as (done, total) after every optimiser iteration (e.g. a progress bar).
    device: where training runs (a GPU is much faster); the random draws are made on the CPU, so a run is
    reproducible per device, and the model comes back on the CPU.
    """
    started = time.perf_counter()
    sample_grid = sample.grid
    if grid is None:
        grid = sample_grid
    elif not grid.matches(sample_grid):
        raise ValueError(f"train_lesa: the trajectory sample was recorded on {sample_grid.num_steps} steps "
                         f"{list(sample_grid.sigmas)}, not on the given grid {list(grid.sigmas)}")
    device = torch.device(device)
    seqs = torch.from_numpy(np.array(sample.values.reshape(-1, grid.num_steps), dtype=np.float32))  # [T*R, S], row t*R + r
    num_traj = sample.size
    if num_traj < 2:
        raise ValueError(f"train_lesa needs at least 2 sampled trajectories, the sample has {num_traj}")
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(num_traj, generator=gen)
    n_hold = int(round(config.holdout_fraction * num_traj))
    roles = len(sample.roles)
    rows = lambda traj: (traj[:, None] * roles + torch.arange(roles)).reshape(-1)  # noqa: E731
    train_x = seqs[rows(order[n_hold:])].to(device)
    hold_x = seqs[rows(order[:n_hold])].to(device)

    schedules = training_schedules(grid.num_steps, config.speedups, config.warmup)
    if not schedules:
        raise ValueError(f"no schedule with speedups {config.speedups} fits {grid.num_steps} steps")
    pairs = forecast_pairs(grid, schedules, config.history)
    nf = num_features(config.history)
    widths = (nf, config.hidden, 1) if config.hidden > 0 else (nf, 1)
    kan = KanShape(widths, grid_size=config.grid_size)
    experts = [{k: v.to(device) for k, v in init_params(kan, gen).items()} for _ in range(config.num_experts)]
    model = LesaModel(config.history, config.baseline, kan, stage_edges(grid.array, config.num_experts),
                      tuple(experts), torch.zeros(nf), torch.ones(nf), 1.0, 1.0)
    batcher = PairBatcher(model, grid, pairs, device)
    shift, spread, value_scale, out_scale = batcher.standardisation(train_x[:4096])
    batcher.model = model = LesaModel(config.history, config.baseline, kan, model.stage_upper, tuple(experts),
                                      shift, spread, value_scale, out_scale)
    weights = batcher.weights  # [K, P]

    params = [t.requires_grad_(True) for ex in experts for t in ex.values()]
    batch = max(1, min(config.batch, config.rows_per_iter // batcher.num_pairs, train_x.shape[0]))
    total = config.phase1_iters + config.phase2_iters
    losses = []
    for phase, iters, lr in ((1, config.phase1_iters, config.lr_phase1), (2, config.phase2_iters, config.lr_phase2)):
        if iters == 0:
            continue
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(iters):
            pick = torch.randint(0, train_x.shape[0], (batch,), generator=gen).to(device)
            phi, base, truth = batcher.raw(train_x[pick])
            err = (batcher.predict(phi, base, experts) - truth) / out_scale  # [P, B]
            if phase == 1:
                loss = err.pow(2).mean()
            else:
                loss = (weights @ err).pow(2).mean() / weights.sum(1).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(len(losses), total)
    trained = tuple({k: v.detach().to("cpu", copy=True) for k, v in ex.items()} for ex in experts)
    model = LesaModel(config.history, config.baseline, kan, model.stage_upper, trained, shift, spread,
                      value_scale, out_scale)
    batcher.model = model
    evaluated = (hold_x if n_hold else train_x)[:REPORT_SEQUENCES]
    errs = batcher.errors(evaluated, tuple({k: v.to(device) for k, v in ex.items()} for ex in trained))
    report = LesaTrainReport(time.perf_counter() - started, int(train_x.shape[0]), int(hold_x.shape[0]),
                             int(pairs.target.size), len(schedules), *errs, losses=tuple(losses))
    return model, report
