"""LESA's trained experts kept in the predictor file, with what they were trained from, so a file trains once.

Training takes tens of seconds on a CPU (``python3 -m benchmark.lesa_cost``), so the experts are stored in the
file's ``lesa.model.*`` tensors next to the trajectory sample they were trained on, plus

    model.trained_from  float32 [8]  the training's identity: SHA-256 of the sample (values, sigmas, roles, seen
                                     count) and of the training recipe (LesaTrainConfig, LESA_FORMAT), as eight
                                     24-bit integers (each exact in float32)

A stored model is used only when that identity equals the file's current sample and recipe: a calibration run
that changes the sample, or a new training recipe, retrains. Files from before this field still work: a model
without an identity next to a sample is retrained (nothing says what it was trained from); a model in a file
without a sample (made elsewhere, e.g. ``with_lesa``) is used as it is.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from ...calibration.trajectory_sample import VALUES_KEY, TrajectorySample
from ...files.predictor_file import PredictorFile
from .model import LESA_FORMAT, MODEL_PREFIX, LesaModel, lesa_from_file, with_lesa
from .train import LesaTrainConfig

TRAINED_FROM_KEY = MODEL_PREFIX + "trained_from"
_PARTS, _BITS = 8, 24


def training_identity(sample: TrajectorySample, config: LesaTrainConfig) -> np.ndarray:
    """float32 [8]: the identity of training ``config`` on ``sample`` (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(sample.values, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(sample.sigmas, dtype=np.float32).tobytes())  # as the file stores them
    digest.update(repr((sample.roles, sample.seen_count, sample.values.shape, LESA_FORMAT, config)).encode())
    value = int.from_bytes(digest.digest()[:_PARTS * _BITS // 8], "big")
    parts = [(value >> (_BITS * i)) & ((1 << _BITS) - 1) for i in range(_PARTS)]
    return np.asarray(parts, dtype=np.float32)


def file_sample(pf: PredictorFile) -> TrajectorySample | None:
    """The file's trajectory sample (LESA's training data), or None when it holds none."""
    return TrajectorySample.from_arrays(pf.lesa, pf.roles) if VALUES_KEY in pf.lesa else None


def stored_model(pf: PredictorFile, config: LesaTrainConfig, source: str = "the predictor file"
                 ) -> LesaModel | None:
    """The file's trained LESA model when it is current for the file's sample and ``config``, else None."""
    if not any(k.startswith(MODEL_PREFIX) for k in pf.lesa):
        return None
    sample = file_sample(pf)
    if sample is None:
        return lesa_from_file(pf, source)
    stored = pf.lesa.get(TRAINED_FROM_KEY)
    if stored is None or not np.array_equal(stored, training_identity(sample, config)):
        return None
    return lesa_from_file(pf, source)


def with_trained(pf: PredictorFile, model: LesaModel, identity: np.ndarray) -> PredictorFile:
    """A copy of ``pf`` holding ``model`` and the identity it was trained from (replacing any older model)."""
    updated = with_lesa(pf, model)
    return replace(updated, lesa={**updated.lesa, TRAINED_FROM_KEY: np.asarray(identity, dtype=np.float32)})
