"""Predictor files from the command line: merge calibrations made on several machines, and show what a file holds.

Run from the pack's folder (ComfyUI/custom_nodes/ComfyUI-L2P) with ComfyUI's own Python (it has numpy, safetensors
and torch):

    python3 -m predictors.files merge OUT.safetensors A.safetensors B.safetensors [...] [--allow-other-weights]
    python3 -m predictors.files info FILE.safetensors [...]

merge: the calibration statistics of every input added exactly (one file of all their runs), written atomically to
OUT. Inputs are read, never modified. Files of another model, configuration, step grid, scheduler, shift,
denoise or guidance setup are refused with the reason and nothing is written (exit status 2). OUT must be a new
file unless --overwrite. --allow-other-weights also merges files of a LoRA or fine-tune of the same model.
Merge each calibration once: two identical files are refused, but a file that already contains another (merged
from it earlier) cannot be told apart and would count the shared runs twice.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .identity import IDENTITY_KEY, identity_of
from .lock import FileLock
from .merge import merge_predictor_files
from .predictor_file import PredictorFile, PredictorFileError
from .provenance import CONTRIBUTORS, EXTRA_RULES
from .storage import load_predictor_file, save_predictor_file


def merge_command(out: str, inputs: list[str], allow_other_weights: bool, overwrite: bool) -> list[str]:
    """Merge ``inputs`` into the new file ``out``; returns the lines to print. PredictorFileError when refused."""
    if len(inputs) < 2:
        raise PredictorFileError("merge needs at least two input files")
    for path in inputs:
        if os.path.exists(out) and os.path.samefile(out, path):
            raise PredictorFileError(f"the output '{out}' is also an input: inputs are never modified; write the"
                                     f" merged file under a new name")
    if os.path.exists(out) and not overwrite:
        raise PredictorFileError(f"the output '{out}' exists; choose a new name, or pass --overwrite")
    files = [(path, load_predictor_file(path)) for path in inputs]
    for i, (path, pf) in enumerate(files):
        for other, earlier in files[:i]:
            if pf.has_gram and earlier.has_gram and pf.sample_count == earlier.sample_count \
                    and np.array_equal(pf.gram, earlier.gram):
                raise PredictorFileError(f"'{path}' holds the same calibration as '{other}' (a copy?): merging it"
                                         f" would count its runs twice")
    lines = [f"{path}: {pf.sample_count} trajectories" for path, pf in files]
    merged = files[0][1]
    for i, (path, pf) in enumerate(files[1:], start=1):
        result = merge_predictor_files(merged, pf, base_name=" + ".join(p for p, _ in files[:i]), incoming_name=path,
                                       allow_other_weights=allow_other_weights)
        merged = result.file
        lines.extend(f"note: {n}" for n in result.notes)
    with FileLock(out):
        save_predictor_file(out, merged)
    lines.append(f"wrote {out}: {merged.sample_count} trajectories from {len(files)} files")
    return lines


def info_lines(path: str, pf: PredictorFile) -> list[str]:
    lines = [f"{path}",
             f"  model: family {pf.model_family}, class {pf.model_class}, {pf.latent_channels} latent channels"]
    identity = identity_of(pf.extra, path)
    if identity is None:
        lines.append("  model identity: not recorded (an older file)")
    else:
        dtypes = sorted(set(identity.weights.dtypes.values())) if identity.weights else []
        weights = f"weights {', '.join(dtypes)}" if dtypes else f"weights unread ({identity.weights_note})"
        lines.append(f"  model identity: {identity.describe()}, {weights}")
    if pf.has_gram:
        lines.append(f"  calibration: {pf.sample_count} trajectories, streams {', '.join(pf.roles)}, {pf.steps}"
                     f" steps, sigmas {pf.sigmas[0]:.4g} .. {pf.sigmas[-2]:.4g}")
    else:
        lines.append(f"  weights only (no calibration statistics), {pf.steps} steps")
    lines.append(f"  sampler {pf.sampler or 'unrecorded'}, scheduler {pf.scheduler or 'unrecorded'}, guidance"
                 f" {pf.cfg_mode}, fit {pf.fit_mode}, ridge {pf.ridge_lambda}")
    for key in EXTRA_RULES:
        if key in pf.extra:
            value = pf.extra[key]
            if key == CONTRIBUTORS:
                value = ", ".join(f"{tag}: {n}" for tag, n in json.loads(value).items())
            lines.append(f"  {key}: {value}")
    if "traj_values" in pf.lesa:
        lines.append(f"  LESA trajectory sample: {pf.lesa['traj_values'].shape[0]} element trajectories")
    others = sorted(k for k in pf.extra if k not in EXTRA_RULES and k not in (IDENTITY_KEY, "trajectory_count"))
    lines.extend(f"  {k}: {pf.extra[k]}" for k in others)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m predictors.files", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="add the calibrations of several files into a new file")
    merge.add_argument("out")
    merge.add_argument("inputs", nargs="+")
    merge.add_argument("--allow-other-weights", action="store_true",
                       help="also merge files calibrated on a LoRA or fine-tune of the same model")
    merge.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")
    info = commands.add_parser("info", help="show what predictor files hold and where they came from")
    info.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "merge":
            lines = merge_command(args.out, args.inputs, args.allow_other_weights, args.overwrite)
        else:
            lines = [line for path in args.files for line in info_lines(path, load_predictor_file(path))]
    except (PredictorFileError, OSError) as err:
        print(f"python3 -m predictors.files {args.command}: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
