"""Between calibration statistics (``GramStats``) and the predictor file (``PredictorFile``).

A calibration file stores the joint Gram, its counts and sigma grid; L2P's weights are refitted from it when the
file is loaded (milliseconds), so the file never goes stale when the fit improves. Extending a file is adding
Grams, which is exact: two sittings of calibration equal one long sitting.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping

import numpy as np

from ..calibration.gram import GramStats
from ..calibration.trajectory_grams import TrajectoryGrams
from ..calibration.fit import fit_paper_matrix
from .predictor_file import PredictorFile, PredictorFileError
from .storage import load_predictor_file, save_predictor_file
from ..calibration.trajectory_sample import DEFAULT_CAPACITY, TrajectorySample


def stats_from_file(pf: PredictorFile, source: str) -> GramStats:
    """The calibration statistics a file holds; PredictorFileError naming ``source`` when it holds none."""
    if not pf.has_gram:
        raise PredictorFileError(
            f"{source}: this predictor file holds only a weight matrix (e.g. the official L2P weight.txt), no"
            f" calibration statistics. Use the 'published rollout' predictor with 'even' or 'published' placement,"
            f" or calibrate your model with L2P Calibrate."
        )
    trajectories = TrajectoryGrams.from_arrays(pf.trajectories, pf.gram.shape[0]) if pf.trajectories else None
    return GramStats(pf.gram, pf.sample_count, pf.element_count, pf.grid(), pf.roles, trajectories)


def file_from_stats(stats: GramStats, *, model_family: str, model_class: str, latent_channels: int,
                    ridge: float, fit_mode: str, created_by: str, base: PredictorFile | None = None,
                    extra_metadata: Mapping[str, str] | None = None, **metadata: str) -> PredictorFile:
    """A predictor file holding ``stats`` and the paper-form matrix refitted from them (for inspection and the
    'published rollout' predictor). ``base`` carries over metadata and LESA tensors of an existing file;
    ``extra_metadata`` (free string keys, e.g. the schedule's error-growth model) is written over base's."""
    paper = fit_paper_matrix(stats.summed_gram(), ridge)
    fields = dict(
        steps=stats.num_steps, model_family=model_family, roles=stats.roles, model_class=model_class,
        latent_channels=latent_channels, ridge_lambda=ridge, fit_mode=fit_mode, created_by=created_by,
        sigmas=stats.grid.array, gram=stats.gram, sample_count=stats.sample_count,
        element_count=stats.element_count, paper_matrix=paper,
        trajectories=stats.trajectories.to_arrays() if stats.trajectories is not None else {},
    )
    fields.update(metadata)
    if extra_metadata:
        fields["extra"] = {**(base.extra if base is not None else {}), **extra_metadata}
    if base is not None:
        return dataclasses.replace(base, **fields)
    return PredictorFile(**fields)


def extend_calibration_file(path: str, stats: GramStats, trajectory_sample: TrajectorySample | None = None,
                            sample_capacity: int = DEFAULT_CAPACITY, **file_fields) -> PredictorFile:
    """Add ``stats`` to the file at ``path`` (created when missing) and write it atomically.

    An existing file must hold statistics of the same setup (family, grid, roles); otherwise it is left
    untouched and PredictorFileError says why and what to do.
    """
    base = None
    if os.path.exists(path):
        base = load_predictor_file(path, expect_family=file_fields.get("model_family"))
        old = stats_from_file(base, path)
        try:
            old.check_compatible(stats)
        except ValueError as err:
            raise PredictorFileError(
                f"{path}: cannot add this run to the existing calibration: {err}. Choose another file_name for"
                f" this setup (each step grid and guidance setup needs its own file)."
            ) from None
        stats = old.merge(stats)
    pf = file_from_stats(stats, base=base, **file_fields)
    if trajectory_sample is not None:  # LESA's data: a fixed-size reservoir of element trajectories
        kept = TrajectorySample.from_arrays(pf.lesa, pf.roles) if "traj_values" in pf.lesa else None
        merged = (kept or TrajectorySample.empty(stats.grid, stats.roles)).merge(
            trajectory_sample, capacity=sample_capacity, rng=np.random.default_rng(stats.sample_count))
        lesa = {k: v for k, v in pf.lesa.items() if not k.startswith("traj_")}
        pf = dataclasses.replace(pf, lesa={**lesa, **merged.to_arrays()})
    save_predictor_file(path, pf)
    return pf
