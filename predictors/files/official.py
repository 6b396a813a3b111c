"""The official L2P release's ``weight.txt``: a JSON 50x50 lower-triangular list (FLUX.1-dev, 50 steps), parsed
as JSON and never evaluated, turned into a predictor file that holds only that matrix."""
from __future__ import annotations

import json
import os

import numpy as np

from .predictor_file import PredictorFile, _check_lower_triangular, fail


def _reject_constant(name: str):
    raise ValueError(f"it holds {name}, not a finite number")


def import_official_weight_txt(path: str | os.PathLike) -> np.ndarray:
    """float64 [S, S]: the official L2P release's ``weight.txt`` (one JSON list of S lists of S numbers, row i
    forecasting step i+1 from steps 0..i). Parsed as JSON, never evaluated; must be finite, square and
    lower-triangular."""
    path = os.fspath(path)
    fix = "Use the predictor/weight.txt of the official L2P-Cache release, unmodified"
    if not os.path.isfile(path):
        raise fail(path, "the file does not exist", fix)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise fail(path, "expected a JSON text file, found binary data", fix) from None
    except OSError as exc:
        raise fail(path, f"it cannot be read ({exc})", "Check the file's permissions") from None
    try:
        rows = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise fail(path, f"expected a JSON list of lists, found text that is not JSON ({exc.msg} at line"
                          f" {exc.lineno} column {exc.colno})", fix) from None
    except ValueError as exc:
        raise fail(path, str(exc), fix) from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise fail(path, f"expected a JSON list of S lists, found {type(rows).__name__}", fix)
    lengths = sorted({len(r) for r in rows})
    if lengths != [len(rows)]:
        raise fail(path, f"expected a square matrix ({len(rows)} rows of {len(rows)} numbers), found row lengths"
                          f" {lengths}", fix)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in rows for v in r):
        raise fail(path, "expected numbers only, found other JSON values", fix)
    matrix = np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise fail(path, "it holds NaN/inf values; expected finite numbers", fix)
    try:
        _check_lower_triangular(matrix)
    except ValueError as exc:
        raise fail(path, str(exc), fix) from None
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
