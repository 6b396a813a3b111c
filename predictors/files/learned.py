"""Learned files: the calibration L2P Cache gathers by itself, one file per setup, found again after a restart.

A *setup* is what decides whether two runs' trajectories belong to one calibration:
    the model      its identity (``identity.ModelIdentity``: class, config, weight fingerprint, weight patches)
    the step grid  the run's sigmas (step count, scheduler, shift and denoise all show in them), to 6 digits
    the guidance   "cfg<g>" for a guider with one CFG scale g (cfg1 = no uncond stream), "guider" without one
Runs of one setup learn into one file; a run of another setup goes to another file (never an error). The file
is named from the setup, readable and stable, e.g. ``auto-flux-20steps-simple-cfg1-3fa2c1d0.safetensors``: the
8 hex digits hash the whole setup, the weight fingerprint included, so two processes sampling one model pick the
same name. The same weights loaded at another precision (fp8 / bf16) hash differently; ``find_learned_file``
then finds the existing file by the setup hash without the weights (``SETUP_KEY`` metadata) and the identity
comparison, so a precision switch does not start learning again.

Starting over moves the file into ``archive/`` (renamed with the time, under the file's lock), never deletes it:
it stays in the dropdown and can be pinned. Nothing here imports ComfyUI.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .identity import ModelIdentity, OtherModel, compare, identity_of
from .lock import FileLock
from .predictor_file import PredictorFile, PredictorFileError
from .storage import load_predictor_file

PREFIX = "auto-"
ARCHIVE_DIR = "archive"
SETUP_KEY = "learned_setup"  # metadata: the hash of the setup without the weight fingerprint
_UNSAFE = re.compile(r"[^A-Za-z0-9.+_-]+")


def _token(text: str) -> str:
    """``text`` as a file-name part: runs of other characters become one '_'."""
    return _UNSAFE.sub("_", text.strip()).strip("_") or "unknown"


def guidance_token(cfg_scale: float | None) -> str:
    """The guidance part of a setup: "cfg<g>" (g as %g), or "guider" for a guider without one CFG scale."""
    return "guider" if cfg_scale is None else f"cfg{float(cfg_scale):g}"


@dataclass(frozen=True)
class Setup:
    """One sampling setup (see the module docstring). ``scheduler`` only names the file: the sigmas decide."""

    family: str
    identity: ModelIdentity
    sigmas: tuple[float, ...]
    guidance: str
    scheduler: str = "unknown"

    def __post_init__(self) -> None:
        if len(self.sigmas) < 2:
            raise ValueError(f"a setup needs a step grid of at least one step, got sigmas {self.sigmas}")
        if not self.family or not self.guidance:
            raise ValueError(f"a setup needs a model family and a guidance, got {self.family!r}, {self.guidance!r}")

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    def _canonical(self, weights: bool) -> bytes:
        ident = self.identity
        data = {"family": self.family, "class": ident.model_class, "config_name": ident.config_name,
                "config": dict(ident.config), "patches": ident.patches, "guidance": self.guidance,
                "sigmas": [f"{float(s):.6g}" for s in self.sigmas]}
        if weights:
            data["weights"] = None if ident.weights is None else ident.weights.to_json()
        return json.dumps(data, sort_keys=True, default=str).encode("utf-8")

    def key(self, weights: bool = True) -> str:
        """A hex hash of the setup; ``weights=False`` leaves the weight fingerprint out (``SETUP_KEY``)."""
        return hashlib.sha256(self._canonical(weights)).hexdigest()

    def file_name(self) -> str:
        return (f"{PREFIX}{_token(self.family)}-{self.num_steps}steps-{_token(self.scheduler.replace(' or ', '+'))}"
                f"-{_token(self.guidance)}-{self.key()[:8]}.safetensors")

    def metadata(self) -> dict[str, str]:
        """What a learned file records of its setup, besides the identity and provenance every file has."""
        return {SETUP_KEY: self.key(weights=False)}


@dataclass(frozen=True)
class LearnedFile:
    """Where a setup's runs learn: ``path`` (None of it may exist yet) and the file as it is now."""

    path: str
    file: PredictorFile | None  # None: nothing learned yet for this setup
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def trajectories(self) -> int:
        return 0 if self.file is None else int(self.file.sample_count or 0)


def find_learned_file(folder: str, setup: Setup) -> LearnedFile:
    """The setup's learned file in ``folder``: the one named for it, else one of the same setup holding the same
    weights at another precision, else the name a new one gets.

    The file named for the setup is validated: one that fails (dropped in from elsewhere, damaged) raises the
    PredictorFileError naming it, and it is never modified. Other files of the folder that cannot be read are
    skipped, with a note."""
    path = os.path.join(folder, setup.file_name())
    if os.path.exists(path):
        return LearnedFile(path, _load_or_explain(path))
    notes = []
    wanted = setup.key(weights=False)
    for name in sorted(_learned_names(folder)):
        other = os.path.join(folder, name)
        try:
            pf = load_predictor_file(other)
            recorded = identity_of(pf.extra, other)
        except (PredictorFileError, ValueError, OSError) as err:
            notes.append(f"skipped {name} while looking for this setup's learned file: {err}")
            continue
        if pf.extra.get(SETUP_KEY) == wanted and compare(recorded, setup.identity).accepted(OtherModel.REFUSE):
            notes.append(f"learned file {name}: {compare(recorded, setup.identity).text()}")
            return LearnedFile(other, pf, tuple(notes))
    return LearnedFile(path, None, tuple(notes))


def _learned_names(folder: str) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if n.startswith(PREFIX) and n.endswith(".safetensors")]
    except OSError:
        return []  # a folder that does not exist (yet) holds nothing learned


def _load_or_explain(path: str) -> PredictorFile:
    try:
        pf = load_predictor_file(path)
    except PredictorFileError as err:
        raise PredictorFileError(
            f"{err}. This is the file L2P Cache learns into for this setup; it is left as it is: move it out of"
            f" {os.path.dirname(path)} (or delete it) and L2P Cache learns this setup again") from None
    if not pf.has_gram:
        raise PredictorFileError(
            f"L2P predictor file '{path}': holds only a weight matrix, not the calibration statistics L2P Cache"
            f" learns. It is left as it is: move it out of {os.path.dirname(path)} (or delete it) and L2P Cache"
            f" learns this setup again")
    return pf


def archive_learned_file(path: str, now: float | None = None) -> str | None:
    """Start over: move ``path`` into ``archive/`` next to it, named with the UTC time, under the file's lock (a
    writer adding a run meanwhile finishes first). Returns the new path, or None when there was no file.
    Raises OSError when the folder cannot be written (the file stays where it was)."""
    if not os.path.exists(path):
        return None
    folder, name = os.path.split(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target_dir = os.path.join(folder, ARCHIVE_DIR)
    os.makedirs(target_dir, exist_ok=True)
    stem = name.removesuffix(".safetensors")
    with FileLock(path):
        if not os.path.exists(path):
            return None
        target, n = os.path.join(target_dir, f"{stem}-{stamp}.safetensors"), 1
        while os.path.exists(target):
            n += 1
            target = os.path.join(target_dir, f"{stem}-{stamp}-{n}.safetensors")
        os.replace(path, target)
    return target


def sigmas_of(array) -> tuple[float, ...]:
    return tuple(float(s) for s in np.asarray(array, dtype=np.float64).reshape(-1))
