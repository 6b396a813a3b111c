"""The predictor file's format: what a ``.safetensors`` predictor file holds, validated at construction.
Writing and reading are in ``storage.py``, the official release's ``weight.txt`` importer in ``official.py``.

Tensors (names in the file; every one optional but as stated):
    gram          float64 [R*S, R*S]  joint Gram over roles x steps, index r*S + s: sum over samples of <F_i, F_j>
    sample_count  int64 [1]           trajectories (per role) summed into gram       (present iff gram is)
    element_count int64 [1]           elements per sample and role                   (present iff gram is)
    sigmas        float64 [S+1]       the sigma grid of the calibration               (required with gram)
    schedule      int64 [K]           a stored schedule (computed steps)
    paper_matrix  float64 [S, S]      the paper's lower-triangular rollout matrix: row i forecasts step i+1
    trajectory_grams float64 [T, K(K+1)/2], trajectory_keys float64 [T], trajectory_seen int64 [1]
                                      a bounded sample of single trajectories' Grams (K = R*S; with gram only;
                                      ``calibration.trajectory_grams``); absent in files made before it existed
    lesa.<name>   float32 [...]       opaque extra arrays for a non-linear predictor, kept round-trip
At least one of gram and paper_matrix is present. An imported weight.txt has paper_matrix only (no gram, no
counts, no sigmas: the release records none).

String metadata: format_version ("1"), model_family, model_class, latent_channels, steps, sampler, scheduler,
roles (comma-separated, e.g. "cond,uncond"), cfg_mode, ridge_lambda ("none" when not fitted), fit_mode,
created_by, plus free extra keys.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..calibration.trajectory_grams import ARRAY_KEYS as TRAJECTORY_KEYS
from ..calibration.trajectory_grams import TrajectoryGrams
from ..engine.grid import StepGrid

FORMAT_VERSION = "1"
LESA_PREFIX = "lesa."
_KNOWN_TENSORS = ("gram", "sample_count", "element_count", "sigmas", "schedule", "paper_matrix", *TRAJECTORY_KEYS)
_REQUIRED_METADATA = (
    "format_version", "model_family", "model_class", "latent_channels", "steps", "sampler", "scheduler", "roles",
    "cfg_mode", "ridge_lambda", "fit_mode", "created_by",
)
_NO_RIDGE = "none"
# symmetric up to float64 accumulation noise
_GRAM_SYMMETRY_RTOL = 1e-8


class PredictorFileError(ValueError):
    """A predictor file that cannot be used, with what was expected, what was found and how to fix it."""


def _frozen_array(value, dtype, name: str) -> np.ndarray:
    arr = np.array(value, dtype=dtype, copy=True)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"tensor '{name}' holds {bad} NaN/inf values; expected finite numbers")
    arr.flags.writeable = False
    return arr


def _count(value, name: str) -> int | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"'{name}' must be one integer (int64 [1]), found dtype {arr.dtype} shape {list(arr.shape)}")
    count = int(arr.reshape(-1)[0])
    if count < 1:
        raise ValueError(f"'{name}' must be >= 1, found {count}")
    return count


@dataclass(frozen=True, eq=False, kw_only=True)
class PredictorFile:
    """The contents of one predictor file; arrays are read-only copies. Validated at construction (ValueError).

    Counts are held as ints (stored as int64 [1]); ``roles`` as a tuple (stored comma-separated).
    """

    steps: int
    model_family: str
    roles: tuple[str, ...] = ("cond",)
    model_class: str = ""
    latent_channels: int = 16
    sampler: str = ""
    scheduler: str = ""
    cfg_mode: str = "none"
    ridge_lambda: float | None = None
    fit_mode: str = ""
    created_by: str = ""
    sigmas: np.ndarray | None = None
    gram: np.ndarray | None = None
    sample_count: int | None = None
    element_count: int | None = None
    schedule: np.ndarray | None = None
    paper_matrix: np.ndarray | None = None
    trajectories: Mapping[str, np.ndarray] = field(default_factory=dict)  # TrajectoryGrams.to_arrays(), or {}
    lesa: Mapping[str, np.ndarray] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        if not (isinstance(self.steps, (int, np.integer)) and self.steps >= 1):
            raise ValueError(f"steps must be an integer >= 1, found {self.steps!r}")
        put("steps", int(self.steps))
        num_steps = self.steps
        if not isinstance(self.model_family, str) or not self.model_family.strip():
            raise ValueError("model_family must be a non-empty name such as 'flux'")
        roles = self.roles.split(",") if isinstance(self.roles, str) else list(self.roles)
        roles = [str(r).strip() for r in roles]
        if not roles or any(not r or "," in r for r in roles) or len(set(roles)) != len(roles):
            raise ValueError(f"roles must be distinct non-empty names such as 'cond' or 'cond,uncond', found {roles}")
        put("roles", tuple(roles))
        if not (isinstance(self.latent_channels, (int, np.integer)) and self.latent_channels >= 1):
            raise ValueError(f"latent_channels must be an integer >= 1, found {self.latent_channels!r}")
        put("latent_channels", int(self.latent_channels))
        if self.ridge_lambda is not None:
            lam = float(self.ridge_lambda)
            if not (math.isfinite(lam) and lam >= 0):
                raise ValueError(f"ridge_lambda must be a finite number >= 0 or None, found {self.ridge_lambda!r}")
            put("ridge_lambda", lam)
        for name in ("model_class", "sampler", "scheduler", "cfg_mode", "fit_mode", "created_by"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, found {getattr(self, name)!r}")

        if self.sigmas is not None:
            sigmas = _frozen_array(self.sigmas, np.float64, "sigmas")
            if sigmas.shape != (num_steps + 1,):
                raise ValueError(f"'sigmas' must be [S+1] = [{num_steps + 1}], found {list(sigmas.shape)}")
            StepGrid(tuple(sigmas.tolist()))  # strictly decreasing evaluation sigmas
            put("sigmas", sigmas)

        size = len(self.roles) * num_steps
        if self.gram is not None:
            gram = _frozen_array(self.gram, np.float64, "gram")
            if gram.shape != (size, size):
                raise ValueError(
                    f"'gram' must be [roles*S, roles*S] = [{size}, {size}] ({len(self.roles)} roles x {num_steps}"
                    f" steps), found {list(gram.shape)}"
                )
            scale = float(np.max(np.abs(gram))) if gram.size else 0.0
            if np.max(np.abs(gram - gram.T)) > _GRAM_SYMMETRY_RTOL * max(scale, 1e-300):
                raise ValueError("'gram' must be symmetric (G[i, j] = G[j, i]); it is not")
            if np.any(np.diag(gram) < 0):
                raise ValueError("'gram' has a negative diagonal entry; a sum of squared norms cannot be negative")
            put("gram", gram)
            put("sample_count", _count(self.sample_count, "sample_count"))
            put("element_count", _count(self.element_count, "element_count"))
            if self.sample_count is None or self.element_count is None:
                raise ValueError("a file with 'gram' needs 'sample_count' and 'element_count'")
            if self.sigmas is None:
                raise ValueError("a file with 'gram' needs the calibration's 'sigmas'")
        elif self.sample_count is not None or self.element_count is not None:
            raise ValueError("'sample_count' / 'element_count' describe a 'gram'; this file has none")
        trajectories = dict(self.trajectories)
        if trajectories:
            if self.gram is None:
                raise ValueError(f"{list(TRAJECTORY_KEYS)} sample the trajectories behind a 'gram'; this file has none")
            sample = TrajectoryGrams.from_arrays(trajectories, size)  # ValueError naming the bad array
            if sample.seen_count > self.sample_count:
                raise ValueError(f"'trajectory_seen' ({sample.seen_count}) exceeds 'sample_count' ({self.sample_count})")
            trajectories = {k: _frozen_array(v, v.dtype, k) for k, v in sample.to_arrays().items()}
        put("trajectories", trajectories)

        if self.paper_matrix is not None:
            put("paper_matrix", _check_lower_triangular(_frozen_array(self.paper_matrix, np.float64, "paper_matrix"),
                                                        num_steps))
        if self.gram is None and self.paper_matrix is None:
            raise ValueError("a predictor file needs a 'gram' (calibration) or a 'paper_matrix' (imported weights)")

        if self.schedule is not None:
            sched = np.asarray(self.schedule)
            if sched.dtype.kind not in "iu" or sched.ndim != 1:
                raise ValueError(f"'schedule' must be int64 [K], found dtype {sched.dtype} shape {list(sched.shape)}")
            sched = _frozen_array(sched, np.int64, "schedule")
            if not (1 <= sched.size <= num_steps and np.all(np.diff(sched) > 0) and sched[0] >= 0
                    and sched[-1] < num_steps):
                raise ValueError(
                    f"'schedule' must hold 1..{num_steps} strictly increasing steps in 0..{num_steps - 1},"
                    f" found {sched.tolist()}"
                )
            put("schedule", sched)

        lesa = {}
        for name, value in dict(self.lesa).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"lesa tensor names must be non-empty strings, found {name!r}")
            arr = np.asarray(value)
            if arr.dtype != np.float32:
                raise ValueError(f"tensor '{LESA_PREFIX}{name}' must be float32, found {arr.dtype}")
            lesa[name] = _frozen_array(arr, np.float32, LESA_PREFIX + name)
        put("lesa", lesa)
        extra = dict(self.extra)
        for key, value in extra.items():
            if key in _REQUIRED_METADATA or not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"extra metadata must map new string keys to strings, found {key!r}: {value!r}")
        put("extra", extra)

    # ------------------------------------------------------------------ views
    @property
    def num_steps(self) -> int:
        return self.steps

    @property
    def has_gram(self) -> bool:
        return self.gram is not None

    def grid(self) -> StepGrid | None:
        """The calibration's sigma grid, or None for an imported matrix (the release records no sigmas)."""
        return None if self.sigmas is None else StepGrid(tuple(self.sigmas.tolist()))

    def role_gram(self, role: str) -> np.ndarray:
        """float64 [S, S]: the Gram block of one role (e.g. 'cond')."""
        if self.gram is None:
            raise ValueError("this predictor file holds no Gram matrix (an imported weight matrix only)")
        if role not in self.roles:
            raise ValueError(f"role {role!r} is not in this file; it has {list(self.roles)}")
        r, s = self.roles.index(role), self.steps
        return self.gram[r * s:(r + 1) * s, r * s:(r + 1) * s].copy()

    def summed_gram(self) -> np.ndarray:
        """float64 [S, S]: the sum of every role's own block, the statistics of all streams' errors together."""
        return sum(self.role_gram(r) for r in self.roles)

    # ------------------------------------------------------------------ serialisation
    def tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.gram is not None:
            out["gram"] = self.gram
            out["sample_count"] = np.array([self.sample_count], dtype=np.int64)
            out["element_count"] = np.array([self.element_count], dtype=np.int64)
        if self.sigmas is not None:
            out["sigmas"] = self.sigmas
        if self.schedule is not None:
            out["schedule"] = self.schedule
        if self.paper_matrix is not None:
            out["paper_matrix"] = self.paper_matrix
        out.update(self.trajectories)
        for name, arr in self.lesa.items():
            out[LESA_PREFIX + name] = arr
        return {k: np.ascontiguousarray(v) for k, v in out.items()}

    def metadata(self) -> dict[str, str]:
        meta = dict(self.extra)
        meta.update(
            format_version=FORMAT_VERSION, model_family=self.model_family, model_class=self.model_class,
            latent_channels=str(self.latent_channels), steps=str(self.steps), sampler=self.sampler,
            scheduler=self.scheduler, roles=",".join(self.roles), cfg_mode=self.cfg_mode,
            ridge_lambda=_NO_RIDGE if self.ridge_lambda is None else repr(self.ridge_lambda),
            fit_mode=self.fit_mode, created_by=self.created_by,
        )
        return meta


def _check_lower_triangular(matrix: np.ndarray, num_steps: int | None = None) -> np.ndarray:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ValueError(f"the weight matrix must be square [S, S], found {list(matrix.shape)}")
    if num_steps is not None and matrix.shape[0] != num_steps:
        raise ValueError(f"the weight matrix must be [{num_steps}, {num_steps}] for {num_steps} steps, found"
                         f" {list(matrix.shape)}")
    upper = np.argwhere(np.triu(matrix, k=1) != 0)
    if upper.size:
        i, j = (int(v) for v in upper[0])
        raise ValueError(
            f"the weight matrix must be lower-triangular (a step is forecast from earlier steps only), but"
            f" {len(upper)} entries above the diagonal are non-zero, first [{i}, {j}] = {matrix[i, j]!r}"
        )
    return matrix


def fail(path: str, problem: str, fix: str) -> PredictorFileError:
    """The one shape of every file error: the file, what is wrong (expected vs found), and the fix."""
    return PredictorFileError(f"L2P predictor file '{path}': {problem}. {fix}")


RECALIBRATE = "Recalibrate with L2P Calibrate, or pick another predictor file"
