"""Calibration statistics: the joint Gram matrix of the model outputs along sampling trajectories.

What is kept: for R stream roles (("cond",) for guidance-distilled models, ("cond", "uncond") for true CFG) and
S steps, the float64 Gram matrix over (role, step)

    G[r*S + i, q*S + j] = sum over samples n of <F^r_i(n), F^q_j(n)>     (float64 [R*S, R*S])

where F^r_i(n) is the flattened model output of role r at step i for sample n (one batch row). Every
least-squares fit of a linear forecaster depends on the data only through G (see ``fit.py``), and because G
holds the cross-role terms, the Gram of any fixed linear combination of roles, e.g. the guided output
u + g (c - u), is ``A G A^T`` (``GramStats.combined_gram``). G is a sum over samples and elements, so statistics
of the same setup merge by adding, and memory and file size do not grow with resolution, frames or prompts.

Also kept: the number of samples (trajectories) and of elements (summed over samples, per role) behind G, for
the paper's mean-squared-error normalisation, the sigma grid (S+1) the trajectories were sampled on, and a bounded
sample of single trajectories' Grams (``trajectory_grams.TrajectoryGrams``: the spread behind G), merged with G.

Recording during sampling runs is ``recorder.TrajectoryRecorder``; the chunked inner products behind it are in
``inner_products.py``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..engine.grid import StepGrid
from .trajectory_grams import ARRAY_KEYS as TRAJECTORY_KEYS, DEFAULT_CAPACITY
from .trajectory_grams import TrajectoryGrams

#: array keys of ``GramStats.to_arrays`` (the file layer stores them as tensors)
GRAM_KEY = "gram"
SAMPLE_COUNT_KEY = "sample_count"
ELEMENT_COUNT_KEY = "element_count"
SIGMAS_KEY = "sigmas"
#: metadata key of the comma-separated role names
ROLES_KEY = "roles"

_ROLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")

def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    roles = tuple(roles)
    if not roles:
        raise ValueError("calibration needs at least one stream role, e.g. ('cond',)")
    for role in roles:
        if not isinstance(role, str) or not _ROLE_NAME.match(role):
            raise ValueError(f"stream role names must be non-empty [A-Za-z0-9_] strings, got {role!r}")
    if len(set(roles)) != len(roles):
        raise ValueError(f"stream roles must be distinct, got {roles}")
    return roles


# ---------------------------------------------------------------------------------------------- the statistic
@dataclass(frozen=True, eq=False)
class GramStats:
    """The calibration statistic. Immutable: ``merge`` returns a new one.

    gram:          float64 [R*S, R*S], index r*S + s = role r at step s; symmetric positive semi-definite.
    sample_count:  trajectories (batch rows) accumulated.
    element_count: elements per role summed over those samples (N * D when every sample has D elements).
    grid:          the S+1 sigmas the trajectories were sampled on.
    roles:         the stream role names, in G's block order.
    trajectories:  a bounded sample of single trajectories' Grams (same layout as gram), or None when the
                   statistics were recorded without them (files made before they existed).
    """

    gram: np.ndarray
    sample_count: int
    element_count: int
    grid: StepGrid
    roles: tuple[str, ...] = ("cond",)
    trajectories: TrajectoryGrams | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", _check_roles(self.roles))
        if not isinstance(self.grid, StepGrid):
            raise ValueError(f"GramStats.grid must be a StepGrid, got {type(self.grid).__name__}")
        size = len(self.roles) * self.grid.num_steps
        gram = np.array(self.gram, dtype=np.float64)  # a private copy: callers cannot mutate it afterwards
        if gram.shape != (size, size):
            raise ValueError(
                f"GramStats.gram must be [R*S, R*S] = [{size}, {size}] for roles {self.roles} and "
                f"{self.grid.num_steps} steps, got {list(gram.shape)}")
        if not np.all(np.isfinite(gram)):
            raise ValueError("GramStats.gram contains NaN or infinite values")
        scale = max(float(np.max(np.abs(np.diag(gram)))) if size else 0.0, 1e-300)
        if np.max(np.abs(gram - gram.T)) > 1e-9 * scale:
            raise ValueError("GramStats.gram must be symmetric (it is a sum of inner products)")
        if np.any(np.diag(gram) < 0):
            raise ValueError("GramStats.gram has negative diagonal entries (squared norms)")
        gram.setflags(write=False)
        object.__setattr__(self, "gram", gram)
        for name in ("sample_count", "element_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) < 0:
                raise ValueError(f"GramStats.{name} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.element_count < self.sample_count:
            raise ValueError(f"GramStats.element_count ({self.element_count}) cannot be below sample_count "
                             f"({self.sample_count}): every sample has at least one element")
        traj = self.trajectories
        if traj is not None:
            if not isinstance(traj, TrajectoryGrams):
                raise ValueError(f"GramStats.trajectories must be TrajectoryGrams or None, got {type(traj).__name__}")
            if traj.size and traj.dim != size:
                raise ValueError(f"GramStats.trajectories hold [{traj.dim}, {traj.dim}] Grams, expected [{size}, {size}]"
                                 f" for roles {self.roles} and {self.grid.num_steps} steps")
            if traj.seen_count > self.sample_count:
                raise ValueError(f"GramStats.trajectories were offered {traj.seen_count} trajectories, more than the"
                                 f" {self.sample_count} behind the Gram")

    # ------------------------------------------------------------------ shape
    @property
    def num_steps(self) -> int:
        return self.grid.num_steps

    @property
    def elements_per_sample(self) -> float:
        """D: elements of one role's output per sample (a mean when samples differ in size)."""
        return self.element_count / max(self.sample_count, 1)

    def role_index(self, role: str) -> int:
        try:
            return self.roles.index(role)
        except ValueError:
            raise KeyError(f"role {role!r} is not in these statistics; recorded roles are {self.roles}") from None

    # ------------------------------------------------------------------ derived Grams
    def role_gram(self, role: str) -> np.ndarray:
        """float64 [S, S]: the Gram of one role's outputs."""
        r, s = self.role_index(role), self.num_steps
        return self.gram[r * s:(r + 1) * s, r * s:(r + 1) * s].copy()

    def summed_gram(self) -> np.ndarray:
        """float64 [S, S]: the sum of every role's own block, i.e. the statistics of all streams' errors together
        when each stream is forecast from its own history (no cross-stream terms)."""
        return sum(self.role_gram(r) for r in self.roles)

    def combined_gram(self, role_weights: Mapping[str, float]) -> np.ndarray:
        """float64 [S, S]: the Gram of sum_r w_r F^r, e.g. {"cond": g, "uncond": 1 - g} for CFG u + g (c - u).

        Roles left out have weight 0.
        """
        return self.mixed_gram([role_weights])

    def mixed_gram(self, streams: Sequence[Mapping[str, float]]) -> np.ndarray:
        """float64 [M*S, M*S]: the joint Gram of M derived streams, stream m = sum_r w_mr F^r, e.g.
        [{"uncond": 1}, {"cond": 1, "uncond": -1}] for (u, c - u). Roles left out have weight 0."""
        combine = self._combination(streams)
        out = combine @ self.gram @ combine.T
        return 0.5 * (out + out.T)

    def trajectory_mixed_grams(self, streams: Sequence[Mapping[str, float]]) -> np.ndarray:
        """float64 [T, M*S, M*S]: ``mixed_gram`` of each sampled trajectory (T = 0 when none were kept)."""
        combine = self._combination(streams)
        if self.trajectories is None or not self.trajectories.size:
            return np.zeros((0, combine.shape[0], combine.shape[0]))
        out = np.einsum("ij,tjk,lk->til", combine, self.trajectories.grams, combine)
        return 0.5 * (out + np.swapaxes(out, 1, 2))

    def _combination(self, streams: Sequence[Mapping[str, float]]) -> np.ndarray:
        """float64 [M*S, R*S]: the linear map from the roles' outputs to the derived streams'."""
        weights = np.zeros((len(streams), len(self.roles)))
        for m, role_weights in enumerate(streams):
            for role, w in role_weights.items():
                weights[m, self.role_index(role)] = float(w)
        if not streams or not np.all(np.isfinite(weights)):
            raise ValueError(f"derived streams need finite role weights, got {list(streams)}")
        return np.kron(weights, np.eye(self.num_steps))

    # ------------------------------------------------------------------ merging
    def check_compatible(self, other: "GramStats") -> None:
        """Raise ValueError saying what differs when ``other`` was not recorded on the same setup."""
        if not isinstance(other, GramStats):
            raise TypeError(f"can only merge GramStats with GramStats, got {type(other).__name__}")
        if self.roles != other.roles:
            raise ValueError(f"cannot merge calibrations with different stream roles: {self.roles} vs {other.roles}")
        if self.num_steps != other.num_steps:
            raise ValueError(f"cannot merge calibrations with different step counts: {self.num_steps} vs "
                             f"{other.num_steps}; calibrate with the same number of steps (or resample first)")
        if not self.grid.matches(other.grid):
            raise ValueError(
                "cannot merge calibrations recorded on different sigma grids (scheduler, shift or denoise differ): "
                f"{np.round(self.grid.array, 4).tolist()} vs {np.round(other.grid.array, 4).tolist()}")

    def merge(self, other: "GramStats", capacity: int = DEFAULT_CAPACITY) -> "GramStats":
        """The statistics of both calibrations together (G, samples and elements add; the trajectory samples merge,
        keeping at most ``capacity``). Keeps this grid. A pure function of the two statistics' contents."""
        self.check_compatible(other)
        parts = [t for t in (self.trajectories, other.trajectories) if t is not None]
        trajectories = None
        if parts:  # statistics recorded without a sample (older files) add nothing to it
            trajectories = TrajectoryGrams.empty(self.gram.shape[0])
            for part in parts:
                trajectories = trajectories.merge(part, capacity)
        return GramStats(self.gram + other.gram, self.sample_count + other.sample_count,
                         self.element_count + other.element_count, self.grid, self.roles, trajectories)

    def role_trajectory_grams(self, role: str) -> np.ndarray:
        """float64 [T, S, S]: one role's block of every sampled trajectory's Gram (T = 0 when none were kept)."""
        r, s = self.role_index(role), self.num_steps
        if self.trajectories is None or not self.trajectories.size:
            return np.zeros((0, s, s))
        return self.trajectories.blocks(r * s, (r + 1) * s).copy()

    def __add__(self, other: "GramStats") -> "GramStats":
        return self.merge(other)

    # ------------------------------------------------------------------ plain arrays (the file layer)
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """(arrays, metadata): "gram" float64 [R*S, R*S], "sample_count" int64 [1], "element_count" int64 [1],
        "sigmas" float64 [S+1], the trajectory sample's arrays when there is one (``TrajectoryGrams.to_arrays``);
        metadata "roles" = the comma-separated role names."""
        arrays = {
            GRAM_KEY: np.array(self.gram, dtype=np.float64),
            SAMPLE_COUNT_KEY: np.array([self.sample_count], dtype=np.int64),
            ELEMENT_COUNT_KEY: np.array([self.element_count], dtype=np.int64),
            SIGMAS_KEY: np.array(self.grid.array, dtype=np.float64),
        }
        if self.trajectories is not None:
            arrays.update(self.trajectories.to_arrays())
        return arrays, {ROLES_KEY: ",".join(self.roles)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str],
                    source: str = "calibration arrays") -> "GramStats":
        """Inverse of ``to_arrays``. ``source`` (e.g. the file name) prefixes every error message."""
        def fail(msg: str) -> ValueError:
            return ValueError(f"{source}: {msg}")

        for key in (GRAM_KEY, SAMPLE_COUNT_KEY, ELEMENT_COUNT_KEY, SIGMAS_KEY):
            if key not in arrays:
                raise fail(f"missing array {key!r}; found {sorted(arrays)}. Re-run L2P Calibrate to rebuild it")
        if ROLES_KEY not in metadata:
            raise fail(f"missing metadata {ROLES_KEY!r}; found {sorted(metadata)}")
        gram = np.asarray(arrays[GRAM_KEY])
        sigmas = np.asarray(arrays[SIGMAS_KEY])
        counts = {}
        for key in (SAMPLE_COUNT_KEY, ELEMENT_COUNT_KEY):
            arr = np.asarray(arrays[key])
            if arr.shape != (1,) or not np.issubdtype(arr.dtype, np.integer):
                raise fail(f"{key!r} must be an integer array of shape [1], got {arr.dtype} {list(arr.shape)}")
            counts[key] = int(arr[0])
        if gram.dtype != np.float64:
            raise fail(f"{GRAM_KEY!r} must be float64 (float32 loses the precision of the fits), got {gram.dtype}")
        if sigmas.ndim != 1:
            raise fail(f"{SIGMAS_KEY!r} must be 1-D [S+1], got shape {list(sigmas.shape)}")
        roles = tuple(metadata[ROLES_KEY].split(","))
        try:
            grid = StepGrid(tuple(float(s) for s in sigmas))
            stats = cls(gram, counts[SAMPLE_COUNT_KEY], counts[ELEMENT_COUNT_KEY], grid, roles)
            if not any(k in arrays for k in TRAJECTORY_KEYS):
                return stats
            trajectories = TrajectoryGrams.from_arrays(arrays, len(roles) * grid.num_steps)
            return cls(stats.gram, stats.sample_count, stats.element_count, grid, roles, trajectories)
        except ValueError as exc:
            raise fail(str(exc)) from exc

    # ------------------------------------------------------------------ from materialised data
    @classmethod
    def from_trajectories(cls, trajectories: Mapping[str, np.ndarray | torch.Tensor], grid: StepGrid) -> "GramStats":
        """Exact (float64) statistics of materialised trajectories: role -> [N, S, ...] (row n = sample n).

        For tests, parity checks and offline experiments; a sampling run uses ``TrajectoryRecorder`` instead.
        """
        roles = _check_roles(tuple(trajectories))
        blocks = []
        shape = None
        for role in roles:
            x = torch.as_tensor(trajectories[role]).to(torch.float64)
            if x.ndim < 3 or x.shape[1] != grid.num_steps:
                raise ValueError(f"trajectories[{role!r}] must be [N, S={grid.num_steps}, ...], "
                                 f"got {list(x.shape)}")
            if shape is not None and tuple(x.shape) != shape:
                raise ValueError(f"every role needs the same shape: {shape} vs {tuple(x.shape)} for {role!r}")
            shape = tuple(x.shape)
            blocks.append(x.reshape(x.shape[0], x.shape[1], -1))  # [N, S, D]
        joint = torch.cat(blocks, dim=1)  # [N, R*S, D], row r*S + s
        n, d = joint.shape[0], joint.shape[2]
        per_sample = torch.einsum("nid,njd->nij", joint, joint).numpy()
        return cls(per_sample.sum(axis=0), n, n * d, grid, roles, TrajectoryGrams.of(per_sample))


def empty_stats(grid: StepGrid, roles: Sequence[str] = ("cond",)) -> GramStats:
    """Statistics of no samples: the identity element of ``merge``."""
    roles = _check_roles(roles)
    size = len(roles) * grid.num_steps
    return GramStats(np.zeros((size, size)), 0, 0, grid, roles)
