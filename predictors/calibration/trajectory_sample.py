"""A fixed-size random sample of single elements' full trajectories, for training non-linear predictors (LESA).

Why not the Gram matrix: the Gram (``gram.py``) is a sufficient statistic for every *linear* forecaster,
but a non-linear one needs the values themselves. Storing whole trajectories would grow with resolution, frames
and prompts, so we keep a uniform random sample of element trajectories instead:

* per run, ``TrajectorySampler`` picks ``per_run`` random element positions in every batch row (distinct within a
  row, seeded, the same positions for every role and step) and copies their values at every step as the run goes:
  float32 [N * M, R, S] in CPU memory for a run of N batch rows, M = min(per_run, elements per row). It never
  holds a whole output, so a run costs N * M * R * S * 4 bytes whatever the latent size.
* across runs, ``TrajectorySample.merge`` keeps at most ``capacity`` trajectories by reservoir sampling
  (Vitter's algorithm R, vectorised): after any sequence of merges the kept set is a uniform random subset of
  every sampled trajectory ever merged. Memory and file size are capacity * R * S * 4 bytes whatever the
  resolution, frame count or number of prompts.

One trajectory is one element position of one batch row, with all R roles (index r follows ``roles``) at all S
steps: values[t, r, s]. Roles are kept together so a predictor may use the cross-role structure (CFG).

File layout (the predictor file's opaque ``lesa`` dict, float32 arrays only; ``to_arrays``/``from_arrays``):
    traj_values  float32 [T, R, S]
    traj_sigmas  float32 [S+1]     the grid the trajectories were sampled on (float32: the dict holds float32 only)
    traj_seen    float32 [2]       sampled trajectories ever merged, as (seen // 2**24, seen % 2**24): each part is
                                   an integer float32 holds exactly, so counts stay exact up to 2**48
The role names are not stored here: they are the predictor file's own ``roles`` metadata, which the caller
passes to ``from_arrays`` (and which must have R names).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .gram import _check_roles
from .recorder import check_step_outputs
from ..engine.grid import StepGrid
from ..errors import CalibrationError

VALUES_KEY = "traj_values"
SIGMAS_KEY = "traj_sigmas"
SEEN_KEY = "traj_seen"
#: split of ``seen`` into two float32-exact integers
_SEEN_BASE = 1 << 24

# numpy's hypergeometric draw takes counts below this
_HYPERGEOMETRIC_LIMIT = 10**9

DEFAULT_PER_RUN = 4096
DEFAULT_CAPACITY = 16384


@dataclass(frozen=True, eq=False)
class TrajectorySample:
    """A uniform random sample of element trajectories. Immutable: ``merge`` returns a new one.

    values:     float32 [T, R, S]: T trajectories, R roles (in ``roles`` order), S steps.
    sigmas:     float64 [S+1]: the grid they were sampled on.
    roles:      the role names.
    seen_count: how many sampled trajectories were ever merged into this sample (>= T); T == seen_count until
                the capacity is reached, and the reservoir then keeps each seen one with probability T / seen.
    """

    values: np.ndarray
    sigmas: np.ndarray
    roles: tuple[str, ...]
    seen_count: int

    def __post_init__(self) -> None:
        roles = _check_roles(self.roles)
        sigmas = np.array(self.sigmas, dtype=np.float64).reshape(-1)
        StepGrid(tuple(sigmas.tolist()))  # strictly decreasing evaluation sigmas (ValueError otherwise)
        values = np.array(self.values, dtype=np.float32)  # private copy
        num_steps = sigmas.size - 1
        if values.ndim != 3 or values.shape[1:] != (len(roles), num_steps):
            raise ValueError(f"TrajectorySample.values must be [T, R, S] = [T, {len(roles)}, {num_steps}] for roles "
                             f"{roles} and {num_steps} steps, got {list(values.shape)}")
        if not np.all(np.isfinite(values)):
            raise ValueError("TrajectorySample.values holds NaN or infinite values")
        seen = int(self.seen_count)
        if seen < values.shape[0]:
            raise ValueError(f"seen_count ({seen}) cannot be below the number of kept trajectories "
                             f"({values.shape[0]})")
        values.flags.writeable = False
        sigmas.flags.writeable = False
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "sigmas", sigmas)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "seen_count", seen)

    @classmethod
    def empty(cls, grid: StepGrid, roles: Sequence[str] = ("cond",)) -> "TrajectorySample":
        return cls(np.zeros((0, len(tuple(roles)), grid.num_steps), np.float32), grid.array, tuple(roles), 0)

    @property
    def size(self) -> int:
        return int(self.values.shape[0])

    @property
    def grid(self) -> StepGrid:
        return StepGrid(tuple(self.sigmas.tolist()))

    def nbytes(self) -> int:
        return int(self.values.nbytes)

    # ------------------------------------------------------------------ reservoir
    def merge(self, new: "TrajectorySample", capacity: int = DEFAULT_CAPACITY,
              rng: np.random.Generator | None = None) -> "TrajectorySample":
        """This sample with ``new`` folded in, keeping at most ``capacity`` trajectories.

        ``new`` must be a uniform sample of its own source (e.g. one run's ``finish()``, or another merged
        sample whose seen_count is its source size) on the same grid and roles. Each of ``new``'s trajectories
        is offered to the reservoir in turn (algorithm R): the i-th trajectory ever offered is kept with
        probability capacity / i, replacing a uniformly chosen kept one. When ``new`` is itself subsampled (a
        merged file's reservoir, new.size < new.seen_count), or this one is subsampled below ``capacity``, the
        result is drawn from both by their seen counts instead (``_union``): uniform over both sources either way.
        """
        if not isinstance(new, TrajectorySample):
            raise TypeError(f"merge needs a TrajectorySample, got {type(new).__name__}")
        if new.roles != self.roles:
            raise ValueError(f"cannot merge trajectories of roles {new.roles} into a sample of roles {self.roles}")
        if new.sigmas.shape != self.sigmas.shape or not np.allclose(new.sigmas, self.sigmas, rtol=1e-5, atol=1e-7):
            raise ValueError(f"cannot merge trajectories sampled on another grid: expected sigmas "
                             f"{self.sigmas.tolist()}, found {new.sigmas.tolist()}")
        capacity = int(capacity)
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        rng = np.random.default_rng() if rng is None else rng
        if new.size < new.seen_count or self.size < min(self.seen_count, capacity):
            return self._union(new, capacity, rng)
        kept = self.values
        if kept.shape[0] > capacity:  # a smaller capacity than before: subsample uniformly first
            kept = kept[np.sort(rng.choice(kept.shape[0], capacity, replace=False))]
        kept = np.array(kept, copy=True)
        incoming = new.values
        fill = min(capacity - kept.shape[0], incoming.shape[0])
        kept = np.concatenate([kept, incoming[:fill]], axis=0)
        rest = incoming[fill:]
        if rest.shape[0]:
            # offer trajectory j of ``rest`` as the (offset + j + 1)-th ever seen: keep it iff a uniform draw in
            # [0, offset + j] falls below capacity, then it replaces that slot. Later offers overwrite earlier ones
            # in the same slot, exactly as the sequential algorithm would.
            offset = self.seen_count + fill
            draws = np.floor(rng.random(rest.shape[0]) * (offset + 1 + np.arange(rest.shape[0]))).astype(np.int64)
            hit = np.nonzero(draws < capacity)[0]
            slots = draws[hit]
            # the last offer per slot wins: unique over the reversed order keeps each slot's last hit
            _, last_rev = np.unique(slots[::-1], return_index=True)
            winners = hit[::-1][last_rev]
            kept[draws[winners]] = rest[winners]
        return TrajectorySample(kept, self.sigmas, self.roles, self.seen_count + new.size)

    def _union(self, new: "TrajectorySample", capacity: int, rng: np.random.Generator) -> "TrajectorySample":
        """A uniform sample of both sources from two uniform samples of them: how many come from each is
        hypergeometric in the seen counts, then that many are drawn from each sample. The size is capped by what
        a subsampled side can supply, so every draw stays uniform."""
        size = min(capacity, self.seen_count + new.seen_count)
        for part in (self, new):
            if part.size < part.seen_count:
                size = min(size, part.size)
        total = self.seen_count + new.seen_count
        if max(self.seen_count, new.seen_count) < _HYPERGEOMETRIC_LIMIT:
            take = int(rng.hypergeometric(self.seen_count, new.seen_count, size)) if size else 0
        else:  # numpy's limit; with size << total the binomial is the same draw to within size / total
            take = int(rng.binomial(size, self.seen_count / total))
        take = min(take, self.size, size)
        take = max(take, size - new.size)
        picks = [part.values[np.sort(rng.choice(part.size, n, replace=False))]
                 for part, n in ((self, take), (new, size - take))]
        return TrajectorySample(np.concatenate(picks, axis=0), self.sigmas, self.roles,
                                self.seen_count + new.seen_count)

    # ------------------------------------------------------------------ file arrays
    def to_arrays(self) -> dict[str, np.ndarray]:
        """float32 arrays for the predictor file's ``lesa`` dict (see the module docstring)."""
        seen = np.array([self.seen_count // _SEEN_BASE, self.seen_count % _SEEN_BASE], dtype=np.float32)
        return {VALUES_KEY: np.ascontiguousarray(self.values, dtype=np.float32),
                SIGMAS_KEY: self.sigmas.astype(np.float32), SEEN_KEY: seen}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], roles: Sequence[str]) -> "TrajectorySample":
        """Rebuild from ``to_arrays`` output (e.g. ``PredictorFile.lesa``) and the file's role names.

        Raises ValueError saying which array is missing or malformed."""
        missing = [k for k in (VALUES_KEY, SIGMAS_KEY, SEEN_KEY) if k not in arrays]
        if missing:
            raise ValueError(f"the predictor file holds no trajectory sample: missing lesa tensors {missing}. "
                             f"Calibrate with trajectory sampling enabled to train LESA")
        values = np.asarray(arrays[VALUES_KEY])
        roles = tuple(roles)
        if values.ndim != 3 or values.shape[1] != len(roles):
            raise ValueError(f"lesa tensor '{VALUES_KEY}' must be [T, R, S] with R = {len(roles)} roles {roles}, "
                             f"found {list(values.shape)}")
        sigmas = np.asarray(arrays[SIGMAS_KEY], dtype=np.float64).reshape(-1)
        if sigmas.size != values.shape[2] + 1:
            raise ValueError(f"lesa tensor '{SIGMAS_KEY}' must be [S+1] = [{values.shape[2] + 1}] for {values.shape[2]}"
                             f" steps, found {list(np.shape(arrays[SIGMAS_KEY]))}")
        seen_parts = np.asarray(arrays[SEEN_KEY], dtype=np.float64).reshape(-1)
        if seen_parts.size != 2 or np.any(seen_parts < 0) or np.any(seen_parts != np.round(seen_parts)) \
                or seen_parts[1] >= _SEEN_BASE:
            raise ValueError(f"lesa tensor '{SEEN_KEY}' must be 2 non-negative integers (high, low base 2**24), "
                             f"found {seen_parts.tolist()}")
        seen = int(seen_parts[0]) * _SEEN_BASE + int(seen_parts[1])
        return cls(values, sigmas, roles, seen)


class TrajectorySampler:
    """Samples element trajectories of one sampling run, step by step.

    Args:
        grid: the run's sigma grid (S+1 sigmas).
        roles: the stream roles every ``record`` call provides.
        per_run: element positions sampled per batch row (fewer when a row has fewer elements).
        seed: seeds the positions (the same seed and layout give the same positions).

    Memory: float32 [N * M, R, S] on the CPU, M = min(per_run, elements per row); nothing latent-sized.
    One sampler per run: after ``finish`` or ``abandon`` it refuses further use.
    """

    def __init__(self, grid: StepGrid, roles: Sequence[str] = ("cond",), per_run: int = DEFAULT_PER_RUN,
                 seed: int = 0) -> None:
        self.grid = grid
        self.roles = _check_roles(roles)
        self.per_run = int(per_run)
        if self.per_run < 1:
            raise ValueError(f"per_run must be >= 1, got {per_run}")
        self.seed = int(seed)
        self._layout: tuple | None = None
        self._index: torch.Tensor | None = None  # int64 [N * M] flat positions into an output [N, ...]
        self._values: np.ndarray | None = None  # float32 [N * M, R, S]
        self._recorded: list[int] = []
        self._closed = False

    @property
    def recorded_steps(self) -> tuple[int, ...]:
        return tuple(self._recorded)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this TrajectorySampler already finished or was abandoned; use one per run")

    def _start(self, shape: tuple[int, ...], layout: tuple) -> None:
        rows = int(shape[0])
        per_row = int(np.prod(shape[1:], dtype=np.int64))
        if per_row < 1:
            raise ValueError(f"outputs must have at least one element per batch row, got shape {list(shape)}")
        m = min(self.per_run, per_row)
        gen = torch.Generator().manual_seed(self.seed)
        # distinct positions within each row (randperm prefix), offset by the row's start in the flat tensor
        picks = [torch.randperm(per_row, generator=gen)[:m] + n * per_row for n in range(rows)]
        self._index = torch.cat(picks).to(torch.int64)  # int64 [N * M]
        self._values = np.zeros((rows * m, len(self.roles), self.grid.num_steps), dtype=np.float32)
        self._layout = layout

    def record(self, step: int, outputs: Mapping[str, torch.Tensor]) -> None:
        """Add step ``step`` (0..S-1, increasing): outputs[role] = that role's output [N, ...] for the run's N
        batch rows (row n of every role is the same sample)."""
        self._check_open()
        num_steps = self.grid.num_steps
        layout = check_step_outputs(step, outputs, self.roles, num_steps)
        first = outputs[self.roles[0]]
        if not first.dtype.is_floating_point:
            raise ValueError(f"outputs must be floating point, got {first.dtype}")
        if self._layout is None:
            self._start(layout[0], layout)
        elif self._layout != layout:
            raise ValueError(f"step {step}: output layout changed within one run, from {self._layout} to {layout}")
        if self._recorded and step <= self._recorded[-1]:
            raise ValueError(f"step {step} recorded after step {self._recorded[-1]}: steps of a run must increase "
                             f"and be recorded once each")
        index = self._index.to(first.device)
        for r, role in enumerate(self.roles):
            picked = outputs[role].detach().reshape(-1).index_select(0, index)  # [N * M], still on the device
            self._values[:, r, step] = picked.to(torch.float32).cpu().numpy()
        self._recorded.append(step)

    def finish(self) -> TrajectorySample:
        """The run's sample (seen_count = its size); refuses a run in which any step was not recorded."""
        self._check_open()
        if self._values is None:
            raise ValueError("nothing was recorded in this run: trajectory sampling needs every step's outputs")
        missing = sorted(set(range(self.grid.num_steps)) - set(self._recorded))
        if missing:
            raise CalibrationError(f"the run skipped steps {missing} of {self.grid.num_steps}: trajectory sampling needs "
                             f"the output of every step. Discarding this run")
        values = self._values
        self.abandon()
        return TrajectorySample(values, self.grid.array, self.roles, values.shape[0])

    def abandon(self) -> None:
        """Drop this run (cancelled or failed): frees its values and adds nothing anywhere."""
        self._values = None
        self._index = None
        self._closed = True
