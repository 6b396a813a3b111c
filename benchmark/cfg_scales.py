"""Does an L2P calibration carry over to another CFG scale? Calibrate at one scale, sample at others.

    python3 -m benchmark.cfg_scales [--speedups 4.55 7.14] [--scales 1.5 3 5 7]

Calibrates one file per scale (and one holding trajectories at the lowest and the middle scale together), then
samples held-out seeds at every scale with L2P direct (optimized), the nodes' CFG default, from every file, beside
TaylorSeer-2 and FORA. Prints PSNR dB mean (worst sample) against the full run at the sampled scale.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import harness
from .__main__ import CAL_CLASSES, EVAL_CLASSES, batch, calibrate
from .harness import Scenario
from .metrics import psnr
from .variants import VARIANTS


def _variant(name: str):
    return next(v for v in VARIANTS if v.name == name)


def main(argv=None) -> int:
    p = harness.command_parser("python3 -m benchmark.cfg_scales", __doc__)
    p.add_argument("--speedups", type=float, nargs="+", default=[4.55, 7.14])
    p.add_argument("--scales", type=float, nargs="+", default=[1.5, 3.0, 5.0, 7.0])
    p.add_argument("--out", default=None, help="default out/cfg_scales (reference) or out/cfg_scales-qwen")
    p.add_argument("--cal-seeds", type=int, default=6)
    p.add_argument("--eval-seeds", type=int, default=8)
    args = p.parse_args(argv)
    if len(args.scales) < 2 or any(g == 1.0 for g in args.scales):
        p.error("--scales needs at least two CFG scales other than 1")
    started = harness.start_command("python3 -m benchmark.cfg_scales", "cfg_scales", args)
    if started is None:
        return 2
    out, model = started
    cal, ev = batch(CAL_CLASSES, range(args.cal_seeds)), batch(EVAL_CLASSES, range(1000, 1000 + args.eval_seeds))
    scales = sorted(args.scales)
    files: dict[str, Path] = {}
    for g in scales:
        files[f"cal {g:g}"] = out / f"cal-{g:g}.safetensors"
    mixed = (scales[0], scales[len(scales) // 2])
    files[f"cal {mixed[0]:g}+{mixed[1]:g}"] = out / "cal-mixed.safetensors"
    for f in files.values():
        f.unlink(missing_ok=True)
    for g in scales:
        calibrate(model, Scenario(f"CFG {g:g}", g), cal, files[f"cal {g:g}"])
    for g in mixed:  # two sittings into one file: their Grams add
        calibrate(model, Scenario(f"CFG {g:g}", g), cal, files[f"cal {mixed[0]:g}+{mixed[1]:g}"])
    l2p = _variant("L2P direct (optimized)")
    baselines = [("TaylorSeer-2", _variant("TaylorSeer-2")), ("FORA", _variant("FORA"))]
    columns = [name for name, _ in baselines] + [f"L2P, {k}" for k in files]
    print("PSNR dB mean (worst sample) against the full run at the sampled scale; L2P = L2P direct (optimized)")
    print("\n| sampled at | speedup | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for g in scales:
        scenario = Scenario(f"CFG {g:g}", g)
        full = harness.decode_images(model, harness.sample_full(model, scenario, ev).latents)
        for speedup in args.speedups:
            holders = [v.build(speedup, None) for _, v in baselines] + [l2p.build(speedup, str(f)) for f in files.values()]
            cells = []
            for holder in holders:
                images = harness.decode_images(model, harness.sample_with(model, scenario, ev, holder).latents)
                values = [psnr(a, b) for a, b in zip(images, full)]
                cells.append(f"{np.mean(values):.2f} ({np.min(values):.2f})")
            print(f"| CFG {g:g} | {speedup:.2f}x | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
