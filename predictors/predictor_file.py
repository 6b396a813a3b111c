"""The predictor file: a ``.safetensors`` file holding calibration statistics and fitted weights, and an importer
for the official L2P release's ``weight.txt``.

Tensors (names in the file; every one optional but as stated):
    gram          float64 [R*S, R*S]  joint Gram over roles x steps, index r*S + s: sum over samples of <F_i, F_j>
    sample_count  int64 [1]           trajectories (per role) summed into gram       (present iff gram is)
    element_count int64 [1]           elements per sample and role                   (present iff gram is)
    sigmas        float64 [S+1]       the sigma grid of the calibration               (required with gram)
    schedule      int64 [K]           a stored schedule (computed steps)
    paper_matrix  float64 [S, S]      the paper's lower-triangular rollout matrix: row i forecasts step i+1
    lesa.<name>   float32 [...]       opaque extra arrays for a non-linear predictor, kept round-trip
At least one of gram and paper_matrix is present. An imported weight.txt has paper_matrix only (no gram, no
counts, no sigmas: the release records none).

String metadata: format_version ("1"), model_family, model_class, latent_channels, steps, sampler, scheduler,
roles (comma-separated, e.g. "cond,uncond"), cfg_mode, ridge_lambda ("none" when not fitted), fit_mode,
created_by, plus free extra keys.

Writing is atomic (temporary file in the same folder, flush + fsync, os.replace). Loading never unpickles: a
pickle / PyTorch checkpoint is recognised by its magic bytes and refused, and every problem raises
``PredictorFileError`` naming the file, the expected and the found value, and the fix.
"""
from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import safetensors.numpy

from .grid import StepGrid

FORMAT_VERSION = "1"
LESA_PREFIX = "lesa."
_KNOWN_TENSORS = ("gram", "sample_count", "element_count", "sigmas", "schedule", "paper_matrix")
_REQUIRED_METADATA = (
    "format_version", "model_family", "model_class", "latent_channels", "steps", "sampler", "scheduler", "roles",
    "cfg_mode", "ridge_lambda", "fit_mode", "created_by",
)
_NO_RIDGE = "none"
# symmetric up to float64 accumulation noise
_GRAM_SYMMETRY_RTOL = 1e-8
# safetensors' own cap on the JSON header; larger means this is not a safetensors file
_MAX_HEADER_BYTES = 100_000_000


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


# ---------------------------------------------------------------------------------------------- writing
def _write_bytes(handle, data: bytes) -> None:
    handle.write(data)


def save_predictor_file(path: str | os.PathLike, pf: PredictorFile) -> str:
    """Write ``pf`` to ``path`` atomically: the previous file stays whole until the new one is complete."""
    path = os.fspath(path)
    data = safetensors.numpy.save(pf.tensors(), metadata=pf.metadata())
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_bytes(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX); best effort elsewhere
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return path
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    return path


# ---------------------------------------------------------------------------------------------- reading
def _fail(path: str, problem: str, fix: str) -> PredictorFileError:
    return PredictorFileError(f"L2P predictor file '{path}': {problem}. {fix}")


_RECALIBRATE = "Recalibrate with L2P Calibrate, or pick another predictor file"


def _sniff(path: str, data: bytes) -> dict:
    """The parsed safetensors JSON header, or a PredictorFileError saying what the file looks like instead."""
    if data[:4] == b"PK\x03\x04":
        raise _fail(path, "expected a .safetensors file, found a ZIP archive (a PyTorch .pt/.pth/.ckpt checkpoint);"
                          " it is refused because loading it would unpickle code",
                    "Use a .safetensors predictor file made by L2P Calibrate")
    # A safetensors file starts with its header length (u64 LE) then '{': a header of 640..767 bytes begins
    # 0x80 0x02, which is also pickle's magic, so a well-formed safetensors start is never taken for a pickle.
    looks_safetensors = len(data) >= 10 and data[8:9] == b"{" and 2 <= struct.unpack("<Q", data[:8])[0] <= len(data)
    if not looks_safetensors and len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        raise _fail(path, f"expected a .safetensors file, found a Python pickle (protocol {data[1]}); it is refused"
                          " because unpickling can run arbitrary code",
                    "Use a .safetensors predictor file made by L2P Calibrate")
    if data.lstrip()[:1] == b"[":
        raise _fail(path, "expected a .safetensors file, found text that looks like the official L2P weight.txt",
                    "Give the file a .txt extension so it is imported as the official release's matrix")
    if len(data) < 10:
        raise _fail(path, f"expected a .safetensors file, found only {len(data)} bytes (empty or truncated)",
                    _RECALIBRATE)
    (header_len,) = struct.unpack("<Q", data[:8])
    if not 2 <= header_len <= min(_MAX_HEADER_BYTES, len(data) - 8) or data[8:9] != b"{":
        raise _fail(path, "expected a .safetensors file (8-byte header length, then a JSON header), found bytes"
                          " that are not one, or a truncated file", _RECALIBRATE)
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"its safetensors header is not valid JSON ({exc})", _RECALIBRATE) from None
    if not isinstance(header, dict):
        raise _fail(path, "its safetensors header is not a JSON object", _RECALIBRATE)
    return header


def _parse_int(path: str, meta: dict, key: str) -> int:
    try:
        return int(meta[key])
    except ValueError:
        raise _fail(path, f"metadata '{key}' must be an integer, found {meta[key]!r}", _RECALIBRATE) from None


def load_predictor_file(
    path: str | os.PathLike,
    expect_grid: StepGrid | None = None,
    expect_family: str | None = None,
    allow_grid_mismatch: bool = False,
) -> PredictorFile:
    """Read and validate a predictor file (``.safetensors``; a ``.txt`` path is imported as the official
    weight.txt). With ``expect_grid`` the run's step count and sigmas must match the file's, unless
    ``allow_grid_mismatch`` (the caller then resamples the Gram); with ``expect_family`` the model family must.
    """
    path = os.fspath(path)
    if path.lower().endswith(".txt"):
        pf = official_predictor_file(path)
    else:
        pf = _read_safetensors(path)
    _check_expectations(path, pf, expect_grid, expect_family, allow_grid_mismatch)
    return pf


def _read_safetensors(path: str) -> PredictorFile:
    if not os.path.isfile(path):
        raise _fail(path, "the file does not exist", "Check the name, or create it with L2P Calibrate")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise _fail(path, f"it cannot be read ({exc})", "Check the file's permissions") from None
    header = _sniff(path, data)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError (not an OSError/ValueError subclass)
        raise _fail(path, f"it is not a readable safetensors file ({exc}); it may be truncated",
                    _RECALIBRATE) from None
    meta = header.get("__metadata__") or {}
    version = meta.get("format_version")
    if version is None:
        raise _fail(path, "it has no 'format_version' metadata, so it is a safetensors file but not an L2P"
                          " predictor file (a model or LoRA?)", "Pick a file made by L2P Calibrate")
    if version != FORMAT_VERSION:
        raise _fail(path, f"expected format version {FORMAT_VERSION}, found {version!r}",
                    "Update ComfyUI-L2P (the file is newer than this pack), or recalibrate")
    missing = [k for k in _REQUIRED_METADATA if k not in meta]
    if missing:
        raise _fail(path, f"metadata is missing {missing}", _RECALIBRATE)
    unknown = [k for k in tensors if k not in _KNOWN_TENSORS and not k.startswith(LESA_PREFIX)]
    if unknown:
        raise _fail(path, f"expected tensors among {list(_KNOWN_TENSORS)} and '{LESA_PREFIX}*', found unknown"
                          f" {unknown}", _RECALIBRATE)
    expected_dtypes = {"gram": np.float64, "sigmas": np.float64, "paper_matrix": np.float64,
                       "sample_count": np.int64, "element_count": np.int64, "schedule": np.int64}
    for name, dtype in expected_dtypes.items():
        if name in tensors and tensors[name].dtype != dtype:
            raise _fail(path, f"tensor '{name}' must be {np.dtype(dtype).name}, found {tensors[name].dtype}",
                        _RECALIBRATE)
    ridge = meta["ridge_lambda"]
    try:
        ridge_value = None if ridge == _NO_RIDGE else float(ridge)
    except ValueError:
        raise _fail(path, f"metadata 'ridge_lambda' must be a number or '{_NO_RIDGE}', found {ridge!r}",
                    _RECALIBRATE) from None
    try:
        return PredictorFile(
            steps=_parse_int(path, meta, "steps"),
            model_family=meta["model_family"],
            model_class=meta["model_class"],
            latent_channels=_parse_int(path, meta, "latent_channels"),
            sampler=meta["sampler"],
            scheduler=meta["scheduler"],
            roles=meta["roles"],
            cfg_mode=meta["cfg_mode"],
            ridge_lambda=ridge_value,
            fit_mode=meta["fit_mode"],
            created_by=meta["created_by"],
            sigmas=tensors.get("sigmas"),
            gram=tensors.get("gram"),
            sample_count=tensors.get("sample_count"),
            element_count=tensors.get("element_count"),
            schedule=tensors.get("schedule"),
            paper_matrix=tensors.get("paper_matrix"),
            lesa={k[len(LESA_PREFIX):]: v for k, v in tensors.items() if k.startswith(LESA_PREFIX)},
            extra={k: v for k, v in meta.items() if k not in _REQUIRED_METADATA},
        )
    except ValueError as exc:
        raise _fail(path, str(exc), _RECALIBRATE) from None


def _check_expectations(path: str, pf: PredictorFile, grid: StepGrid | None, family: str | None,
                        allow_grid_mismatch: bool) -> None:
    if family is not None and pf.model_family.strip().lower() != family.strip().lower():
        raise _fail(path, f"it was made for model family '{pf.model_family}', the model is '{family}'",
                    "Calibrate this model with L2P Calibrate, or pick a file made for it")
    if grid is None:
        return
    fix = ("Calibrate at this grid (same steps, scheduler and denoise) with L2P Calibrate, or allow resampling"
           " (step_grid_mismatch = resample)")
    if pf.steps != grid.num_steps:
        if allow_grid_mismatch and pf.has_gram:
            return
        if not pf.has_gram:
            fix = (f"Run {pf.steps} steps: this file holds an imported weight matrix only, which cannot be resampled"
                   " to another step count; or calibrate at your step count with L2P Calibrate")
        raise _fail(path, f"it was made for {pf.steps} steps, the run has {grid.num_steps}", fix)
    file_grid = pf.grid()
    if file_grid is not None and not file_grid.matches(grid) and not allow_grid_mismatch:
        diff = np.abs(file_grid.array - grid.array)
        i = int(np.argmax(diff))
        raise _fail(path, f"its sigma grid differs from the run's (first largest difference at index {i}: file"
                          f" {file_grid.array[i]:.6g}, run {grid.array[i]:.6g})", fix)


# ---------------------------------------------------------------------------------------------- official weights
def _reject_constant(name: str):
    raise ValueError(f"it holds {name}, not a finite number")


def import_official_weight_txt(path: str | os.PathLike) -> np.ndarray:
    """float64 [S, S]: the official L2P release's ``weight.txt`` (one JSON list of S lists of S numbers, row i
    forecasting step i+1 from steps 0..i). Parsed as JSON, never evaluated; must be finite, square and
    lower-triangular."""
    path = os.fspath(path)
    fix = "Use the predictor/weight.txt of the official L2P-Cache release, unmodified"
    if not os.path.isfile(path):
        raise _fail(path, "the file does not exist", fix)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise _fail(path, "expected a JSON text file, found binary data", fix) from None
    except OSError as exc:
        raise _fail(path, f"it cannot be read ({exc})", "Check the file's permissions") from None
    try:
        rows = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"expected a JSON list of lists, found text that is not JSON ({exc.msg} at line"
                          f" {exc.lineno} column {exc.colno})", fix) from None
    except ValueError as exc:
        raise _fail(path, str(exc), fix) from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise _fail(path, f"expected a JSON list of S lists, found {type(rows).__name__}", fix)
    lengths = sorted({len(r) for r in rows})
    if lengths != [len(rows)]:
        raise _fail(path, f"expected a square matrix ({len(rows)} rows of {len(rows)} numbers), found row lengths"
                          f" {lengths}", fix)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in rows for v in r):
        raise _fail(path, "expected numbers only, found other JSON values", fix)
    matrix = np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise _fail(path, "it holds NaN/inf values; expected finite numbers", fix)
    try:
        _check_lower_triangular(matrix)
    except ValueError as exc:
        raise _fail(path, str(exc), fix) from None
    return matrix


def official_predictor_file(path: str | os.PathLike, model_family: str = "flux", model_class: str = "Flux",
                            latent_channels: int = 16) -> PredictorFile:
    """A PredictorFile holding only the imported matrix (no Gram, no counts, no sigmas: the release records none).
    The official release is FLUX.1-dev at 50 steps, sampled with BFL's shifted schedule and distilled guidance."""
    path = os.fspath(path)
    matrix = import_official_weight_txt(path)
    return PredictorFile(
        steps=matrix.shape[0], model_family=model_family, model_class=model_class, latent_channels=latent_channels,
        sampler="euler", scheduler="bfl-shifted", roles=("cond",), cfg_mode="distilled-guidance", ridge_lambda=None,
        fit_mode="published-adam", created_by="ComfyUI-L2P import of the official L2P weight.txt",
        paper_matrix=matrix, extra={"source": os.path.basename(path)},
    )
