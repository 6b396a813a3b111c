"""Predictor files for the merge, update and identity tests: one calibration run each, with provenance and a model
identity, and integer-valued Grams so that sums are exact in float64 whatever order they are added in."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from comfyui_l2p.predictors.calibration.gram import GramStats
from comfyui_l2p.predictors.calibration.trajectory_sample import TrajectorySample
from comfyui_l2p.predictors.engine.grid import StepGrid
from comfyui_l2p.predictors.files.calibration_file import file_from_stats
from comfyui_l2p.predictors.files.identity import IDENTITY_KEY, ModelIdentity, WeightFingerprint
from comfyui_l2p.predictors.files.predictor_file import PredictorFile

S = 6
GRID = StepGrid(tuple(np.linspace(1.0, 0.0, S + 1).tolist()))
WEIGHTS = {"double_blocks.0.img_attn.qkv.weight": np.linspace(-0.05, 0.05, 32, dtype=np.float32),
           "final_layer.linear.weight": np.linspace(0.02, -0.03, 32, dtype=np.float32)}


def int_stats(seed: int, roles=("cond",), samples: int = 1, grid: StepGrid = GRID) -> GramStats:
    a = np.random.default_rng(seed).integers(-3, 4, size=(len(roles) * grid.num_steps, 5)).astype(np.float64)
    return GramStats(a @ a.T, samples, samples * 64, grid, roles)


def identity(model_class="comfy.ldm.flux.model.Flux", config_name="Flux", config=None, weights=None,
             dtype="bfloat16", patches="none") -> ModelIdentity:
    values = WEIGHTS if weights is None else weights
    return ModelIdentity(model_class, config_name, {"guidance_embed": True, "depth": 1} if config is None else config,
                         WeightFingerprint(dict(values), {k: dtype for k in values}), "", patches)


def trajectories(seed: int, rows: int, roles=("cond",), grid: StepGrid = GRID) -> TrajectorySample:
    values = np.random.default_rng(seed).normal(size=(rows, len(roles), grid.num_steps)).astype(np.float32)
    return TrajectorySample(values, grid.array, tuple(roles), rows)


def run_file(seed: int, *, roles=("cond",), samples: int = 1, model: ModelIdentity | None = None,
             sampler: str = "euler", cfg_mode: str = "none", created: str = "2026-01-01T00:00:00Z",
             machine: str = "aaaaaaaa", grid: StepGrid = GRID, lesa_rows: int = 0, **changes) -> PredictorFile:
    """One run's file as L2P Calibrate builds it (``file_from_stats`` plus provenance)."""
    pf = file_from_stats(int_stats(seed, roles, samples, grid), model_family="flux", model_class="Flux",
                         latent_channels=16, ridge=1e-3, fit_mode="teacher-forced", created_by="test",
                         cfg_mode=cfg_mode, sampler=sampler, scheduler="simple")
    extra = {"shift": "1.15", "denoise": "1", "pack_version": "0.1.0", "created": created, "updated": created,
             "contributors": json.dumps({machine: samples}),
             IDENTITY_KEY: (identity() if model is None else model).to_metadata()}
    lesa = trajectories(seed, lesa_rows, roles, grid).to_arrays() if lesa_rows else {}
    return dataclasses.replace(pf, extra=extra, lesa=lesa, **changes)


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only for everyone, root included (chmod, else the immutable attribute), and restored
    afterwards; the test is skipped where neither works."""
    folder.chmod(0o555)
    immutable = False
    if _writable(folder):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if _writable(folder):
            pytest.skip("cannot make a folder read-only here (root without the immutable attribute)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True
