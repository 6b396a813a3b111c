"""Writing and reading predictor files: atomic writes, and a loader that never unpickles.

Writing is atomic (temporary file in the same folder, flush + fsync, os.replace); the file's mode is that of any
new file (0o666 less the umask). Read-modify-write under a lock is ``update.py``. Loading recognises a pickle /
PyTorch checkpoint by its magic bytes and refuses it, and every problem raises ``PredictorFileError`` naming the
file, the expected and the found value, and the fix. A ``.txt`` path is imported as the official weight.txt.
"""
from __future__ import annotations

import json
import os
import secrets
import struct

import numpy as np
import safetensors.numpy

from ..engine.grid import StepGrid
from .official import official_predictor_file
from .predictor_file import (
    TRAJECTORY_KEYS, _KNOWN_TENSORS, _NO_RIDGE, _REQUIRED_METADATA, FORMAT_VERSION, LESA_PREFIX, RECALIBRATE, PredictorFile,
    PredictorFileError, fail,
)

# safetensors' own cap on the JSON header; larger means this is not a safetensors file
_MAX_HEADER_BYTES = 100_000_000


# ---------------------------------------------------------------------------------------------- writing
def _write_bytes(handle, data: bytes) -> None:
    handle.write(data)


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new file next to the target, created with mode 0o666 less the umask, as any ordinary file write is
    (``tempfile.mkstemp`` would give 0600, and the replaced file would keep it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def save_predictor_file(path: str | os.PathLike, pf: PredictorFile) -> str:
    """Write ``pf`` to ``path`` atomically: the previous file stays whole until the new one is complete."""
    path = os.fspath(path)
    data = safetensors.numpy.save(pf.tensors(), metadata=pf.metadata())
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(directory, os.path.basename(path))
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
def _sniff(path: str, data: bytes) -> dict:
    """The parsed safetensors JSON header, or a PredictorFileError saying what the file looks like instead."""
    if data[:4] == b"PK\x03\x04":
        raise fail(path, "expected a .safetensors file, found a ZIP archive (a PyTorch .pt/.pth/.ckpt checkpoint);"
                          " it is refused because loading it would unpickle code",
                    "Use a .safetensors predictor file made by L2P Calibrate")
    # A safetensors file starts with its header length (u64 LE) then '{': a header of 640..767 bytes begins
    # 0x80 0x02, which is also pickle's magic, so a well-formed safetensors start is never taken for a pickle.
    looks_safetensors = len(data) >= 10 and data[8:9] == b"{" and 2 <= struct.unpack("<Q", data[:8])[0] <= len(data)
    if not looks_safetensors and len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        raise fail(path, f"expected a .safetensors file, found a Python pickle (protocol {data[1]}); it is refused"
                          " because unpickling can run arbitrary code",
                    "Use a .safetensors predictor file made by L2P Calibrate")
    if data.lstrip()[:1] == b"[":
        raise fail(path, "expected a .safetensors file, found text that looks like the official L2P weight.txt",
                    "Give the file a .txt extension so it is imported as the official release's matrix")
    if len(data) < 10:
        raise fail(path, f"expected a .safetensors file, found only {len(data)} bytes (empty or truncated)",
                    RECALIBRATE)
    (header_len,) = struct.unpack("<Q", data[:8])
    if not 2 <= header_len <= min(_MAX_HEADER_BYTES, len(data) - 8) or data[8:9] != b"{":
        raise fail(path, "expected a .safetensors file (8-byte header length, then a JSON header), found bytes"
                          " that are not one, or a truncated file", RECALIBRATE)
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(path, f"its safetensors header is not valid JSON ({exc})", RECALIBRATE) from None
    if not isinstance(header, dict):
        raise fail(path, "its safetensors header is not a JSON object", RECALIBRATE)
    return header


def _parse_int(path: str, meta: dict, key: str) -> int:
    try:
        return int(meta[key])
    except ValueError:
        raise fail(path, f"metadata '{key}' must be an integer, found {meta[key]!r}", RECALIBRATE) from None


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
        raise fail(path, "the file does not exist", "Check the name, or create it with L2P Calibrate")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise fail(path, f"it cannot be read ({exc})", "Check the file's permissions") from None
    header = _sniff(path, data)
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError (not an OSError/ValueError subclass)
        raise fail(path, f"it is not a readable safetensors file ({exc}); it may be truncated",
                    RECALIBRATE) from None
    meta = header.get("__metadata__") or {}
    version = meta.get("format_version")
    if version is None:
        raise fail(path, "it has no 'format_version' metadata, so it is a safetensors file but not an L2P"
                          " predictor file (a model or LoRA?)", "Pick a file made by L2P Calibrate")
    if version != FORMAT_VERSION:
        raise fail(path, f"expected format version {FORMAT_VERSION}, found {version!r}",
                    "Update ComfyUI-L2P (the file is newer than this pack), or recalibrate")
    missing = [k for k in _REQUIRED_METADATA if k not in meta]
    if missing:
        raise fail(path, f"metadata is missing {missing}", RECALIBRATE)
    unknown = [k for k in tensors if k not in _KNOWN_TENSORS and not k.startswith(LESA_PREFIX)]
    if unknown:
        raise fail(path, f"expected tensors among {list(_KNOWN_TENSORS)} and '{LESA_PREFIX}*', found unknown"
                          f" {unknown}", RECALIBRATE)
    expected_dtypes = {"gram": np.float64, "sigmas": np.float64, "paper_matrix": np.float64,
                       "sample_count": np.int64, "element_count": np.int64, "schedule": np.int64,
                       "trajectory_grams": np.float64, "trajectory_keys": np.float64, "trajectory_seen": np.int64}
    for name, dtype in expected_dtypes.items():
        if name in tensors and tensors[name].dtype != dtype:
            raise fail(path, f"tensor '{name}' must be {np.dtype(dtype).name}, found {tensors[name].dtype}",
                        RECALIBRATE)
    ridge = meta["ridge_lambda"]
    try:
        ridge_value = None if ridge == _NO_RIDGE else float(ridge)
    except ValueError:
        raise fail(path, f"metadata 'ridge_lambda' must be a number or '{_NO_RIDGE}', found {ridge!r}",
                    RECALIBRATE) from None
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
            trajectories={k: v for k, v in tensors.items() if k in TRAJECTORY_KEYS},
            lesa={k[len(LESA_PREFIX):]: v for k, v in tensors.items() if k.startswith(LESA_PREFIX)},
            extra={k: v for k, v in meta.items() if k not in _REQUIRED_METADATA},
        )
    except ValueError as exc:
        raise fail(path, str(exc), RECALIBRATE) from None


def _check_expectations(path: str, pf: PredictorFile, grid: StepGrid | None, family: str | None,
                        allow_grid_mismatch: bool) -> None:
    if family is not None and pf.model_family.strip().lower() != family.strip().lower():
        raise fail(path, f"it was made for model family '{pf.model_family}', the model is '{family}'",
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
        raise fail(path, f"it was made for {pf.steps} steps, the run has {grid.num_steps}", fix)
    file_grid = pf.grid()
    if file_grid is not None and not file_grid.matches(grid) and not allow_grid_mismatch:
        diff = np.abs(file_grid.array - grid.array)
        i = int(np.argmax(diff))
        raise fail(path, f"its sigma grid differs from the run's (first largest difference at index {i}: file"
                          f" {file_grid.array[i]:.6g}, run {grid.array[i]:.6g})", fix)
