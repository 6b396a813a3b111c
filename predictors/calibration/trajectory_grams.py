"""Per-trajectory Gram matrices: the spread behind the calibration's summed Gram, in a bounded, mergeable sample.

Why: the summed Gram G (``gram.py``) gives every linear fit and the mean error of any schedule, but not how that
error varies from one trajectory to the next. A single trajectory's Gram G_n (the same [R*S, R*S] layout, one batch
row of one run) gives that trajectory's exact error for any fit and schedule (c^T G_n c, ``schedules.optimizer``),
so a sample of them gives the spread: the margin of the per-run safety net, a schedule searched for a high
quantile, leave-trajectories-out validation of a fit.

Bounded and mergeable: a bottom-k sample. Each trajectory gets a key, a number in [0, 1) derived from its Gram's
bytes (sha-256), i.e. a uniform pseudo-random number fixed by its content; the sample keeps the ``capacity``
trajectories with the smallest keys. Merging two samples keeps the smallest keys of their union, so the result is a
pure function of the two samples' contents (commutative, associative), equal to sampling the union directly, and a
uniform random subset of every trajectory ever offered. Memory and file size: capacity * (R*S)^2 / 2 float64 (the
upper triangles: 32 trajectories at 50 steps, 0.33 MB without CFG, 1.3 MB with CFG), whatever the resolution or the
number of runs.

File arrays (``to_arrays``): "trajectory_grams" float64 [T, K(K+1)/2] (upper triangles, row-major, K = R*S),
"trajectory_keys" float64 [T], "trajectory_seen" int64 [1] (trajectories ever offered, >= T).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

GRAMS_KEY = "trajectory_grams"
KEYS_KEY = "trajectory_keys"
SEEN_KEY = "trajectory_seen"
ARRAY_KEYS = (GRAMS_KEY, KEYS_KEY, SEEN_KEY)
DEFAULT_CAPACITY = 32


def content_key(gram: np.ndarray) -> float:
    """A number in [0, 1) fixed by the trajectory's Gram: the first 53 bits of the sha-256 of its float64 bytes."""
    digest = hashlib.sha256(np.ascontiguousarray(gram, dtype=np.float64).tobytes()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


@dataclass(frozen=True, eq=False)
class TrajectoryGrams:
    """A bottom-k sample of single trajectories' Grams. Immutable: ``merge`` returns a new one.

    grams:      float64 [T, K, K], each symmetric with a non-negative diagonal (K = roles * steps).
    keys:       float64 [T] in [0, 1), ascending: each trajectory's ``content_key``.
    seen_count: trajectories ever offered to the sample (>= T).
    """

    grams: np.ndarray
    keys: np.ndarray
    seen_count: int

    def __post_init__(self) -> None:
        grams = np.array(self.grams, dtype=np.float64)
        keys = np.array(self.keys, dtype=np.float64).reshape(-1)
        if grams.ndim != 3 or grams.shape[1] != grams.shape[2]:
            raise ValueError(f"trajectory Grams must be [T, K, K], got {list(grams.shape)}")
        if keys.shape != (grams.shape[0],):
            raise ValueError(f"need one key per trajectory Gram: {grams.shape[0]} Grams, {keys.size} keys")
        if not (np.all(np.isfinite(grams)) and np.all(np.isfinite(keys))):
            raise ValueError("trajectory Grams or keys hold NaN or infinite values")
        if np.any((keys < 0) | (keys >= 1)) or np.any(np.diff(keys) < 0):
            raise ValueError("trajectory keys must be ascending numbers in [0, 1)")
        if grams.size and np.any(np.diagonal(grams, axis1=1, axis2=2) < 0):
            raise ValueError("a trajectory Gram has a negative diagonal entry (a squared norm)")
        seen = self.seen_count
        if isinstance(seen, bool) or int(seen) != seen or int(seen) < grams.shape[0]:
            raise ValueError(f"seen_count must be an integer >= the {grams.shape[0]} kept trajectories, got {seen!r}")
        grams.setflags(write=False)
        keys.setflags(write=False)
        object.__setattr__(self, "grams", grams)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "seen_count", int(seen))

    @classmethod
    def empty(cls, size: int) -> "TrajectoryGrams":
        return cls(np.zeros((0, size, size)), np.zeros(0), 0)

    @classmethod
    def of(cls, grams: np.ndarray, capacity: int = DEFAULT_CAPACITY) -> "TrajectoryGrams":
        """The sample of trajectories whose Grams are ``grams`` [N, K, K] (e.g. one run's batch rows)."""
        grams = np.asarray(grams, dtype=np.float64)
        if grams.ndim != 3:
            raise ValueError(f"trajectory Grams must be [N, K, K], got {list(grams.shape)}")
        keys = np.array([content_key(g) for g in grams])
        return cls.empty(grams.shape[1]).merge(cls._sorted(grams, keys, grams.shape[0]), capacity)

    @staticmethod
    def _sorted(grams: np.ndarray, keys: np.ndarray, seen: int) -> "TrajectoryGrams":
        order = np.argsort(keys, kind="stable")
        return TrajectoryGrams(grams[order], keys[order], seen)

    @property
    def size(self) -> int:
        return int(self.grams.shape[0])

    @property
    def dim(self) -> int:
        return int(self.grams.shape[1])

    def merge(self, other: "TrajectoryGrams", capacity: int = DEFAULT_CAPACITY) -> "TrajectoryGrams":
        """The sample of both sources: the ``capacity`` smallest keys of the union (ties are equal contents)."""
        if not isinstance(other, TrajectoryGrams):
            raise TypeError(f"can only merge TrajectoryGrams, got {type(other).__name__}")
        if self.size and other.size and self.dim != other.dim:
            raise ValueError(f"cannot merge trajectory Grams of size {self.dim} and {other.dim}")
        if int(capacity) < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        dim = self.dim if self.size else other.dim
        grams = np.concatenate([self.grams.reshape(-1, dim, dim), other.grams.reshape(-1, dim, dim)])
        keys = np.concatenate([self.keys, other.keys])
        order = np.argsort(keys, kind="stable")[:int(capacity)]
        return TrajectoryGrams(grams[order], keys[order], self.seen_count + other.seen_count)

    def blocks(self, start: int, stop: int) -> np.ndarray:
        """float64 [T, stop-start, stop-start]: every trajectory's diagonal block (e.g. one role's steps)."""
        return self.grams[:, start:stop, start:stop]

    # ------------------------------------------------------------------ file arrays
    def to_arrays(self) -> dict[str, np.ndarray]:
        upper = np.triu_indices(self.dim)
        return {GRAMS_KEY: np.ascontiguousarray(self.grams[:, upper[0], upper[1]]),
                KEYS_KEY: np.ascontiguousarray(self.keys), SEEN_KEY: np.array([self.seen_count], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], dim: int) -> "TrajectoryGrams":
        """Inverse of ``to_arrays`` for Grams of size ``dim`` (roles * steps); ValueError naming the bad array."""
        missing = [k for k in ARRAY_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"trajectory Grams need arrays {list(ARRAY_KEYS)}; missing {missing}")
        packed = np.asarray(arrays[GRAMS_KEY])
        width = dim * (dim + 1) // 2
        if packed.dtype != np.float64 or packed.ndim != 2 or packed.shape[1] != width:
            raise ValueError(f"'{GRAMS_KEY}' must be float64 [T, {width}] (upper triangles of {dim} x {dim}),"
                             f" found {packed.dtype} {list(packed.shape)}")
        seen = np.asarray(arrays[SEEN_KEY])
        if seen.shape != (1,) or not np.issubdtype(seen.dtype, np.integer):
            raise ValueError(f"'{SEEN_KEY}' must be an integer array of shape [1], found {seen.dtype} {list(seen.shape)}")
        upper = np.triu_indices(dim)
        grams = np.zeros((packed.shape[0], dim, dim))
        grams[:, upper[0], upper[1]] = packed
        grams[:, upper[1], upper[0]] = packed
        return cls(grams, np.asarray(arrays[KEYS_KEY], dtype=np.float64), int(seen[0]))
