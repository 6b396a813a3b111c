"""Merging two predictor files into one: a pure function of the two files' contents (no I/O, no clock).

Calibration statistics add exactly (``GramStats.merge``: Grams, trajectory and element counts add, and the bounded
samples of per-trajectory Grams merge into the sample of both), so files calibrated on several machines, or by two
processes writing one file, merge into the statistics of all their runs.
LESA's element-trajectory reservoirs merge into a uniform sample of both (``TrajectorySample.merge``); models
derived from a sample (other ``lesa.`` tensors) are dropped, being stale. Provenance merges by its rules
(``provenance.py``); the model identity is checked by ``identity.POLICY``.

Refused, with the reason, and nothing is written: a file without statistics (an imported weight matrix), another
model family, class, configuration or latent size, other weights or LoRA unless allowed, other stream roles, step
count or sigma grid.

Each part of a file is merged by one function in ``MERGERS`` (base, incoming, seed) -> (field updates, notes); an
extension that stores new data in the file appends its own.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from ..calibration.fit import DEFAULT_RIDGE, fit_paper_matrix
from ..calibration.trajectory_sample import DEFAULT_CAPACITY, TrajectorySample
from .calibration_file import stats_from_file
from .identity import IDENTITY_KEY, POLICY, OtherModel, compare, identity_of
from .predictor_file import PredictorFile, PredictorFileError
from .provenance import EXTRA_RULES, FIELD_RULES, TRAJECTORY_COUNT, merge_value

TRAJECTORY_PREFIX = "traj_"


class MergeRefused(PredictorFileError):
    """Two files that cannot be merged; the message names both and what differs."""


@dataclasses.dataclass(frozen=True)
class MergeResult:
    file: PredictorFile
    notes: tuple[str, ...]  # what the merge chose or could not check, for the report or the command's output


@dataclasses.dataclass(frozen=True)
class MergeInputs:
    base: PredictorFile
    incoming: PredictorFile
    base_name: str
    incoming_name: str
    allow_other_weights: bool
    sample_capacity: int


Merger = Callable[[MergeInputs], tuple[Mapping[str, Any], list[str]]]


def merge_predictor_files(base: PredictorFile, incoming: PredictorFile, *, base_name: str = "first file",
                          incoming_name: str = "second file", allow_other_weights: bool = False,
                          sample_capacity: int = DEFAULT_CAPACITY) -> MergeResult:
    """``base`` and ``incoming`` as one file: ``incoming``'s ridge_lambda (the later setting), ``base``'s
    created_by and stored schedule.

    Raises MergeRefused naming both files when they do not hold the same setup. ``allow_other_weights`` accepts
    a LoRA or fine-tune of the same model (the merged file keeps ``base``'s identity; a note says so).
    """
    inputs = MergeInputs(base, incoming, base_name, incoming_name, allow_other_weights, sample_capacity)
    fields: dict[str, Any] = {}
    notes: list[str] = []
    for merger in MERGERS:
        updates, more = merger(inputs)
        fields.update(updates)
        notes.extend(more)
    return MergeResult(dataclasses.replace(base, **fields), tuple(notes))


def _refuse(inputs: MergeInputs, what: str) -> MergeRefused:
    return MergeRefused(f"cannot merge '{inputs.incoming_name}' into '{inputs.base_name}': {what}. Merge only files"
                        f" of one model and setup (same steps, scheduler, shift, denoise and guidance)")


def _setup(inputs: MergeInputs) -> tuple[Mapping[str, Any], list[str]]:
    a, b = inputs.base, inputs.incoming
    for pf, name in ((a, inputs.base_name), (b, inputs.incoming_name)):
        if not pf.has_gram:
            raise _refuse(inputs, f"'{name}' holds no calibration statistics (an imported weight matrix)")
    if a.model_family.strip().lower() != b.model_family.strip().lower():
        raise _refuse(inputs, f"model family '{a.model_family}' vs '{b.model_family}'")
    if a.model_class != b.model_class:
        raise _refuse(inputs, f"model class '{a.model_class}' vs '{b.model_class}'")
    if a.latent_channels != b.latent_channels:
        raise _refuse(inputs, f"{a.latent_channels} vs {b.latent_channels} latent channels")
    return {}, []


def _identity(inputs: MergeInputs) -> tuple[Mapping[str, Any], list[str]]:
    a = identity_of(inputs.base.extra, inputs.base_name)
    b = identity_of(inputs.incoming.extra, inputs.incoming_name)
    if a is None or b is None:
        if a is None and b is None:
            return {}, []
        missing = inputs.base_name if a is None else inputs.incoming_name
        return {}, [f"'{missing}' records no model identity (an older file); the merged file keeps the other's,"
                    f" {(b or a).describe()}, unchecked against the older runs"]
    comparison = compare(a, b)
    allow = OtherModel.ALLOW if inputs.allow_other_weights else OtherModel.REFUSE
    if not comparison.accepted(allow):
        hint = "" if comparison.accepted(OtherModel.ALLOW) else " (never merged)"
        raise _refuse(inputs, f"they were calibrated on {comparison.text()}{hint}: '{inputs.base_name}' on"
                              f" {a.describe()}, '{inputs.incoming_name}' on {b.describe()}")
    if POLICY[comparison.verdict].note:
        return {}, [f"model identity: {comparison.text()}; the merged file keeps '{inputs.base_name}''s"]
    return {}, []


def _statistics(inputs: MergeInputs) -> tuple[Mapping[str, Any], list[str]]:
    a, b = inputs.base, inputs.incoming
    old, new = stats_from_file(a, inputs.base_name), stats_from_file(b, inputs.incoming_name)
    try:
        stats = old.merge(new)
    except ValueError as err:
        raise _refuse(inputs, str(err)) from None
    # the later setting wins, as when L2P Calibrate's ridge_lambda is changed between runs
    ridge = next((r for r in (b.ridge_lambda, a.ridge_lambda) if r is not None), DEFAULT_RIDGE)
    notes = []
    if None not in (a.ridge_lambda, b.ridge_lambda) and b.ridge_lambda != a.ridge_lambda:
        notes.append(f"ridge_lambda: now {ridge!r} of '{inputs.incoming_name}' ('{inputs.base_name}' had"
                     f" {a.ridge_lambda!r}); L2P Cache refits with it when it loads the file")
    if (a.trajectories and not b.trajectories) or (b.trajectories and not a.trajectories):
        lacking = inputs.base_name if not a.trajectories else inputs.incoming_name
        notes.append(f"'{lacking}' holds no per-trajectory Grams (an older file); the merged sample of them covers"
                     f" the other file's runs only")
    return dict(gram=stats.gram, sample_count=stats.sample_count, element_count=stats.element_count,
                sigmas=stats.grid.array, ridge_lambda=ridge,
                paper_matrix=fit_paper_matrix(stats.summed_gram(), ridge),
                trajectories=stats.trajectories.to_arrays() if stats.trajectories is not None else {}), notes


def _trajectories(inputs: MergeInputs) -> tuple[Mapping[str, Any], list[str]]:
    a, b = inputs.base, inputs.incoming
    samples = [_sample_of(a), _sample_of(b)]
    derived = sorted({k for pf in (a, b) for k in pf.lesa if not k.startswith(TRAJECTORY_PREFIX)})
    notes = [f"dropped LESA tensors {derived} trained on the former samples; LESA retrains on the merged one"] \
        if derived else []
    if samples[0] is None and samples[1] is None:
        return {"lesa": {}}, notes
    if None in samples:
        lacking = inputs.base_name if samples[0] is None else inputs.incoming_name
        notes.append(f"'{lacking}' holds no LESA trajectory sample; the merged sample covers the other file's runs")
    try:
        merged = _merge_samples(*samples, a.sample_count + b.sample_count, inputs.sample_capacity)
    except ValueError as err:
        raise _refuse(inputs, f"LESA trajectory samples: {err}") from None
    return {"lesa": merged.to_arrays()}, notes


def _sample_of(pf: PredictorFile) -> TrajectorySample | None:
    return TrajectorySample.from_arrays(pf.lesa, pf.roles) if TRAJECTORY_PREFIX + "values" in pf.lesa else None


def _merge_samples(kept: TrajectorySample | None, new: TrajectorySample, trajectories: int,
                   capacity: int) -> TrajectorySample:
    """Both samples as one uniform sample of at most ``capacity``; seeded by the merged trajectory count, so
    merging the same files again gives the same file."""
    if kept is None:
        kept = TrajectorySample.empty(new.grid, new.roles)
    elif new is None:
        new = TrajectorySample.empty(kept.grid, kept.roles)
    return kept.merge(new, capacity=capacity, rng=np.random.default_rng(trajectories))


def as_new_file(pf: PredictorFile, sample_capacity: int = DEFAULT_CAPACITY) -> PredictorFile:
    """``pf`` as it is written when it starts a file: its LESA sample capped to ``sample_capacity`` as any merge
    caps it, and its trajectory count recorded."""
    sample = _sample_of(pf)
    lesa = dict(pf.lesa)
    if sample is not None:
        lesa.update(_merge_samples(None, sample, pf.sample_count, sample_capacity).to_arrays())
    return dataclasses.replace(pf, lesa=lesa, extra={**pf.extra, TRAJECTORY_COUNT: str(pf.sample_count)})


def _provenance(inputs: MergeInputs) -> tuple[Mapping[str, Any], list[str]]:
    a, b = inputs.base, inputs.incoming
    updates: dict[str, Any] = {name: merge_value(rule, getattr(a, name), getattr(b, name))
                               for name, rule in FIELD_RULES.items()}
    extra = {**b.extra, **a.extra}  # keys without a rule: the base's value wins, the incoming file's are added
    for key, rule in EXTRA_RULES.items():
        value = merge_value(rule, a.extra.get(key), b.extra.get(key))
        if value is not None:
            extra[key] = value
    if IDENTITY_KEY not in a.extra and IDENTITY_KEY in b.extra:
        extra[IDENTITY_KEY] = b.extra[IDENTITY_KEY]
    extra[TRAJECTORY_COUNT] = str(a.sample_count + b.sample_count)
    updates["extra"] = extra
    return updates, []


# in order: refusals first, so a refused merge computes nothing
MERGERS: list[Merger] = [_setup, _identity, _statistics, _trajectories, _provenance]
