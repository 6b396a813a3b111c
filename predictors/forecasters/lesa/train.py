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

import numpy as np
import torch

from ...engine.grid import StepGrid
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


class _Batchable:
    """Forward pass of LESA over element sequences X [B, S] and all pairs at once."""

    def __init__(self, model: LesaModel, grid: StepGrid, pairs: ForecastPairs) -> None:
        self.model = model
        sig = torch.as_tensor(grid.array[:-1], dtype=torch.float32)
        self.hist_idx = torch.as_tensor(pairs.hist)  # [P, m]
        self.target_idx = torch.as_tensor(pairs.target)  # [P]
        self.hist_sigma = sig[self.hist_idx]  # [P, m]
        self.target_sigma = sig[self.target_idx]  # [P]
        experts = [model.expert_of(float(s)) for s in grid.array[pairs.target]]
        self.groups = [torch.as_tensor([p for p, e in enumerate(experts) if e == ex], dtype=torch.int64)
                       for ex in range(model.num_experts)]

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(phi [B, P, F], baseline [B, P], truth [B, P]) for sequences x [B, S]."""
        hist = x[:, self.hist_idx]  # [B, P, m]
        phi, base = self.model.inputs(hist, self.hist_sigma, self.target_sigma)
        return phi, base, x[:, self.target_idx]

    def predict(self, phi: torch.Tensor, base: torch.Tensor, experts) -> torch.Tensor:
        """[B, P] forecasts."""
        pred = base.clone()
        for ex, group in enumerate(self.groups):
            if group.numel() == 0:
                continue
            sub = phi[:, group].reshape(-1, phi.shape[-1])  # [B * Pe, F]
            out = self.model.expert_forward(ex, sub, experts[ex]).reshape(phi.shape[0], -1)
            pred[:, group] = base[:, group] + self.model.out_scale * out
        return pred


def _standardisation(model: LesaModel, batcher: _Batchable, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      float, float]:
    value_scale = float(torch.sqrt(torch.mean(x.double() ** 2)).clamp_min(1e-12))
    probe = LesaModel(model.history, model.baseline, model.kan, model.stage_upper, model.experts,
                      model.feature_shift, model.feature_scale, value_scale, 1.0)
    phi, base = probe.inputs(x[:, batcher.hist_idx], batcher.hist_sigma, batcher.target_sigma)
    flat = phi.reshape(-1, phi.shape[-1]).double()
    shift = flat.mean(0)
    spread = flat.std(0)
    spread = torch.where(spread > 1e-8 * (1 + shift.abs()), spread, torch.ones_like(spread))
    out_scale = float(torch.sqrt(torch.mean((x[:, batcher.target_idx] - base).double() ** 2)).clamp_min(1e-12))
    return shift.float(), spread.float(), value_scale, out_scale


def _errors(batcher: _Batchable, pairs_weights: torch.Tensor, x: torch.Tensor, experts, chunk: int = 1024
            ) -> tuple[float, float, float, float]:
    """(forecast err baseline, lesa, final err baseline, lesa), relative, over sequences x [B, S]."""
    sums = np.zeros(6)
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            phi, base, truth = batcher.raw(x[start:start + chunk])
            pred = batcher.predict(phi, base, experts)
            for i, est in enumerate((base, pred)):
                err = est - truth
                sums[i] += float((err.double() ** 2).sum())
                sums[3 + i] += float(((err.double() @ pairs_weights.T) ** 2).sum())
            sums[2] += float((truth.double() ** 2).sum())
            sums[5] += float(((truth.double() @ pairs_weights.T) ** 2).sum())
    return (float(np.sqrt(sums[0] / sums[2])), float(np.sqrt(sums[1] / sums[2])),
            float(np.sqrt(sums[3] / sums[5])), float(np.sqrt(sums[4] / sums[5])))


def train_lesa(sample: TrajectorySample, grid: StepGrid | None = None,
               config: LesaTrainConfig = LesaTrainConfig()) -> tuple[LesaModel, LesaTrainReport]:
    """Train LESA's experts on ``sample`` (on its own grid unless ``grid``, which must match it)."""
    started = time.perf_counter()
    sample_grid = sample.grid
    if grid is None:
        grid = sample_grid
    elif not grid.matches(sample_grid):
        raise ValueError(f"train_lesa: the trajectory sample was recorded on {sample_grid.num_steps} steps "
                         f"{list(sample_grid.sigmas)}, not on the given grid {list(grid.sigmas)}")
    seqs = torch.from_numpy(np.array(sample.values.reshape(-1, grid.num_steps), dtype=np.float32))  # [T*R, S], row t*R + r
    num_traj = sample.size
    if num_traj < 2:
        raise ValueError(f"train_lesa needs at least 2 sampled trajectories, the sample has {num_traj}")
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(num_traj, generator=gen)
    n_hold = int(round(config.holdout_fraction * num_traj))
    roles = len(sample.roles)
    rows = lambda traj: (traj[:, None] * roles + torch.arange(roles)).reshape(-1)  # noqa: E731
    train_x = seqs[rows(order[n_hold:])]
    hold_x = seqs[rows(order[:n_hold])]

    schedules = training_schedules(grid.num_steps, config.speedups, config.warmup)
    if not schedules:
        raise ValueError(f"no schedule with speedups {config.speedups} fits {grid.num_steps} steps")
    pairs = forecast_pairs(grid, schedules, config.history)
    nf = num_features(config.history)
    widths = (nf, config.hidden, 1) if config.hidden > 0 else (nf, 1)
    kan = KanShape(widths, grid_size=config.grid_size)
    experts = [init_params(kan, gen) for _ in range(config.num_experts)]
    model = LesaModel(config.history, config.baseline, kan, stage_edges(grid.array, config.num_experts),
                      tuple(experts), torch.zeros(nf), torch.ones(nf), 1.0, 1.0)
    batcher = _Batchable(model, grid, pairs)
    shift, spread, value_scale, out_scale = _standardisation(model, batcher, train_x[:4096])
    model = LesaModel(config.history, config.baseline, kan, model.stage_upper, tuple(experts), shift, spread,
                      value_scale, out_scale)
    batcher.model = model
    weights = torch.as_tensor(pairs.weights, dtype=torch.float32)  # [K, P]

    params = [t.requires_grad_(True) for ex in experts for t in ex.values()]
    batch = max(1, min(config.batch, config.rows_per_iter // int(pairs.target.size), train_x.shape[0]))
    losses = []
    for phase, iters, lr in ((1, config.phase1_iters, config.lr_phase1), (2, config.phase2_iters, config.lr_phase2)):
        if iters == 0:
            continue
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(iters):
            pick = torch.randint(0, train_x.shape[0], (batch,), generator=gen)
            phi, base, truth = batcher.raw(train_x[pick])
            err = (batcher.predict(phi, base, experts) - truth) / out_scale  # [B, P]
            if phase == 1:
                loss = err.pow(2).mean()
            else:
                loss = (err @ weights.T).pow(2).mean() / weights.sum(1).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    trained = tuple({k: v.detach().clone() for k, v in ex.items()} for ex in experts)
    model = LesaModel(config.history, config.baseline, kan, model.stage_upper, trained, shift, spread,
                      value_scale, out_scale)
    batcher.model = model
    errs = _errors(batcher, weights.double(), (hold_x if n_hold else train_x).double().float(), trained)
    report = LesaTrainReport(time.perf_counter() - started, int(train_x.shape[0]), int(hold_x.shape[0]),
                             int(pairs.target.size), len(schedules), *errs, losses=tuple(losses))
    return model, report
