"""Where a calibration came from: the provenance metadata of a predictor file and how it merges.

A file written by L2P Calibrate records, as string metadata:
    sampler, scheduler   the sampler function and scheduler of its runs, e.g. "euler" / "simple" ("unknown" when the
                         sampling path does not say; several values comma-separated when runs differed)
    shift, denoise       the model's sigma shift ("none" for unshifted schedules) and "1" for full runs
    cfg_mode             "none" or "cfg" and the CFG scales, e.g. "cfg 3,5"
    pack_version         the versions of ComfyUI-L2P that wrote runs into it
    created, updated     UTC times (ISO 8601) of the first and the latest run
    contributors         JSON {machine tag: trajectories}: an 8-hex tag per machine (a hash of its host name, so a
                         shared file does not carry host names); the run's report names this machine's tag
    trajectory_count     the trajectories (batch rows) behind the statistics, the same as the sample_count tensor
Every key has a merge rule (``RULES``): merging files keeps the union of the values that describe runs, the
earliest creation, the latest update, and adds the contributors' counts.
"""
from __future__ import annotations

import enum
import hashlib
import json
import socket
import time
from typing import Mapping

from ..schedules import error_growth

CFG_PREFIX = "cfg"
TRAJECTORY_COUNT = "trajectory_count"
CONTRIBUTORS = "contributors"


class Rule(enum.Enum):
    UNION = "union of the comma-separated values"
    EARLIEST = "the earliest time"
    LATEST = "the latest time"
    COUNTS = "sum of the per-machine counts"
    CFG_SCALES = "union of the CFG scales"
    INCOMING = "the incoming file's value (the later calibration's setting, as for ridge_lambda)"


# PredictorFile fields and extra metadata keys that describe runs, with how two files' values merge
FIELD_RULES: Mapping[str, Rule] = {"sampler": Rule.UNION, "scheduler": Rule.UNION, "fit_mode": Rule.UNION,
                                   "cfg_mode": Rule.CFG_SCALES}
EXTRA_RULES: Mapping[str, Rule] = {"shift": Rule.UNION, "denoise": Rule.UNION, "pack_version": Rule.UNION,
                                   "created": Rule.EARLIEST, "updated": Rule.LATEST, CONTRIBUTORS: Rule.COUNTS,
                                   # not provenance: settings the file's statistics are used with, which a refit
                                   # (L2P Calibrate adding a run) updates to the pack's current ones
                                   error_growth.POWER_KEY: Rule.INCOMING, error_growth.CFG_POWER_KEY: Rule.INCOMING}


def merge_value(rule: Rule, a: str | None, b: str | None) -> str | None:
    """Two files' values of one key merged by ``rule``; a side without the key (an older file) contributes none."""
    if a is None or b is None:
        return b if a is None else a
    if rule is Rule.INCOMING:
        return b
    if rule is Rule.UNION:
        return ",".join(sorted({v.strip() for v in f"{a},{b}".split(",") if v.strip()}))
    if rule is Rule.EARLIEST:
        return min(a, b)  # ISO 8601 UTC times order as text
    if rule is Rule.LATEST:
        return max(a, b)
    if rule is Rule.COUNTS:
        counts = _counts(a)
        for tag, n in _counts(b).items():
            counts[tag] = counts.get(tag, 0) + n
        return json.dumps(counts, sort_keys=True)
    if not any(v.startswith(CFG_PREFIX) for v in (a, b)):
        return merge_value(Rule.UNION, a, b)  # e.g. "none" and "none"
    return cfg_mode_text(set(cfg_scales_of(a)) | set(cfg_scales_of(b)), guided=True)


def _counts(text: str) -> dict[str, int]:
    try:
        data = json.loads(text)
        return {str(k): int(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {"unrecorded": 0}  # a hand-edited value: kept visible rather than dropped


# ---------------------------------------------------------------------------------------------- CFG scales
def cfg_scales_of(cfg_mode: str | None) -> tuple[str, ...]:
    """The scales a cfg_mode lists (as written, e.g. ("3", "5")); () for "none", an older file, or an import."""
    if not cfg_mode or not cfg_mode.startswith(CFG_PREFIX + " "):
        return ()
    return tuple(v for v in cfg_mode[len(CFG_PREFIX) + 1:].split(",") if v)


def cfg_mode_text(scales, guided: bool) -> str:
    """"none" for one stream; else "cfg" and the scales in numeric order, "?" (a guider without one scale) last."""
    if not guided:
        return "none"
    ordered = sorted(set(scales), key=lambda v: (v == "?", float(v) if v != "?" else 0.0))
    return f"{CFG_PREFIX} " + ",".join(ordered) if ordered else CFG_PREFIX


# ---------------------------------------------------------------------------------------------- a new run
def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine_tag() -> str:
    """This machine's tag in ``contributors``: 8 hex digits of a hash of its host name."""
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def run_contributors(trajectories: int) -> str:
    return json.dumps({machine_tag(): int(trajectories)}, sort_keys=True)
