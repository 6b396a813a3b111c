"""Adding to a predictor file that other processes may be adding to: lock, re-read, merge, atomic replace.

``update_predictor_file(path, incoming)`` holds the file's lock (``lock.FileLock``) while it reads the file as it is
now, merges ``incoming`` into it (``merge.merge_predictor_files``) and replaces it atomically
(``storage.save_predictor_file``). So two writers never lose each other's runs, and a half-written file never
replaces a good one. A file that fails validation is never modified: the PredictorFileError names it.
``extend_calibration_file`` is the calibration path: one run's statistics, as a one-run file, added this way.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..calibration.gram import GramStats
from ..calibration.trajectory_sample import DEFAULT_CAPACITY, TrajectorySample
from .calibration_file import file_from_stats
from .lock import DEFAULT_TIMEOUT, FileLock
from .merge import as_new_file, merge_predictor_files
from .predictor_file import PredictorFile
from .storage import load_predictor_file, save_predictor_file


@dataclass(frozen=True)
class UpdateResult:
    file: PredictorFile  # what the file holds now
    notes: tuple[str, ...]  # the merge's notes, and a note when the folder cannot lock
    created: bool  # True when this call created the file


def update_predictor_file(path: str | os.PathLike, incoming: PredictorFile, *, allow_other_weights: bool = False,
                          sample_capacity: int = DEFAULT_CAPACITY, lock_timeout: float = DEFAULT_TIMEOUT,
                          incoming_name: str = "this run") -> UpdateResult:
    """Merge ``incoming`` into the file at ``path`` (created when missing) under the file's lock.

    Raises OSError when the folder cannot be written (the file is left as it was), LockTimeout when another live
    process holds the lock too long, and PredictorFileError when the file on disk is invalid or holds another
    setup (left untouched).
    """
    path = os.fspath(path)
    with FileLock(path, timeout=lock_timeout) as lock:
        notes = [] if lock.locked else [
            f"{path}: the folder cannot lock files ({lock.unsupported_reason}); written without a lock, so two"
            f" processes writing this file at the same moment could lose one run"]
        created = not os.path.exists(path)
        if created:
            merged, merge_notes = as_new_file(incoming, sample_capacity), ()
        else:
            result = merge_predictor_files(load_predictor_file(path), incoming, base_name=path,
                                           incoming_name=incoming_name, allow_other_weights=allow_other_weights,
                                           sample_capacity=sample_capacity)
            merged, merge_notes = result.file, result.notes
        save_predictor_file(path, merged)
    return UpdateResult(merged, tuple(notes) + tuple(merge_notes), created)


def extend_calibration_file(path: str, stats: GramStats, trajectory_sample: TrajectorySample | None = None,
                            sample_capacity: int = DEFAULT_CAPACITY, *, extra: dict[str, str] | None = None,
                            allow_other_weights: bool = False, **file_fields) -> UpdateResult:
    """Add one run's ``stats`` (and LESA's ``trajectory_sample`` of it) to the file at ``path``.

    ``file_fields``: PredictorFile fields describing the run (model_family, model_class, latent_channels, ridge,
    fit_mode, created_by, cfg_mode, sampler, scheduler); ``extra``: its provenance and model identity metadata.
    An existing file must hold the same setup; otherwise it is left untouched and PredictorFileError says why.
    """
    incoming = file_from_stats(stats, **file_fields)
    incoming = dataclasses.replace(
        incoming, extra={**incoming.extra, **(extra or {})},
        lesa=trajectory_sample.to_arrays() if trajectory_sample is not None else {})
    return update_predictor_file(path, incoming, allow_other_weights=allow_other_weights,
                                 sample_capacity=sample_capacity)
