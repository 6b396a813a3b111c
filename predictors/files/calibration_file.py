"""Between calibration statistics (``GramStats``) and the predictor file (``PredictorFile``).

A calibration file stores the joint Gram, its counts and sigma grid; L2P's weights are refitted from it when the
file is loaded (milliseconds), so the file never goes stale when the fit improves. Extending a file is adding
Grams, which is exact: two sittings of calibration equal one long sitting (``update.extend_calibration_file``).
"""
from __future__ import annotations

import dataclasses

from ..calibration.gram import GramStats
from ..calibration.trajectory_grams import TrajectoryGrams
from ..calibration.fit import fit_paper_matrix
from .predictor_file import PredictorFile, PredictorFileError


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
                    **metadata: str) -> PredictorFile:
    """A predictor file holding ``stats`` (with its per-trajectory Grams) and the paper-form matrix refitted from
    them (for inspection and the 'published rollout' predictor). ``base`` carries over metadata and LESA tensors of
    an existing file."""
    paper = fit_paper_matrix(stats.summed_gram(), ridge)
    fields = dict(
        steps=stats.num_steps, model_family=model_family, roles=stats.roles, model_class=model_class,
        latent_channels=latent_channels, ridge_lambda=ridge, fit_mode=fit_mode, created_by=created_by,
        sigmas=stats.grid.array, gram=stats.gram, sample_count=stats.sample_count,
        element_count=stats.element_count, paper_matrix=paper,
        trajectories=stats.trajectories.to_arrays() if stats.trajectories is not None else {},
    )
    fields.update(metadata)
    if base is not None:
        return dataclasses.replace(base, **fields)
    return PredictorFile(**fields)
