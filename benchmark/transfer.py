"""How well a calibration transfers to another step grid (resampling G over sigma) on the reference model.

    python3 -m benchmark.transfer [--scenario no|cfg]

Calibrates at 50 steps, then samples at 20 and 28 steps with L2P Cache set to resample, against calibrating at
20 and 28 steps directly. Prints PSNR mean (worst) against the full run at each grid, for the even and the
optimized placement (DESIGN.md warns that a schedule searched on a resampled G can be much worse).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from . import harness
from .__main__ import CAL_CLASSES, EVAL_CLASSES, SCENARIOS, batch, calibrate
from .metrics import psnr

from comfyui_l2p.nodes import l2p_setup, setups  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m benchmark.transfer")
    p.add_argument("--scenario", choices=["no", "cfg"], default="no")
    p.add_argument("--grids", type=int, nargs="+", default=[20, 28])
    p.add_argument("--speedup", type=float, default=4.0)
    p.add_argument("--out", default="out/transfer")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = harness.load_model()
    base = SCENARIOS[0] if args.scenario == "no" else SCENARIOS[1]
    cal, ev = batch(CAL_CLASSES, range(6)), batch(EVAL_CLASSES, range(1000, 1008))
    files = {}
    for steps in [50, *args.grids]:
        files[steps] = out / f"transfer-{args.scenario}-{steps}.safetensors"
        if files[steps].exists():
            files[steps].unlink()
        calibrate(model, dataclasses.replace(base, steps=steps), cal, files[steps])
    print("| steps | placement | calibrated at this grid | resampled from 50 steps | difference dB |")
    print("|---|---|---|---|---|")
    for steps in args.grids:
        scenario = dataclasses.replace(base, steps=steps)
        full = harness.decode_images(model, harness.sample_full(model, scenario, ev).latents)
        for placement in ("even", "optimized"):
            cells = []
            for file, policy in ((files[steps], "refuse"), (files[50], "resample")):
                holder = l2p_setup.l2p_cache_holder(
                    str(file), speedup=args.speedup, placement=placement, warmup=setups.DEFAULT_L2P_WARMUP,
                    compute_last=False, residual_budget=0.05, history_device="model device", mode="direct",
                    grid_policy=policy)
                images = harness.decode_images(model, harness.sample_with(model, scenario, ev, holder).latents)
                cells.append([psnr(a, b) for a, b in zip(images, full)])
            direct, resampled = cells
            print(f"| {steps} | {placement} | {np.mean(direct):.2f} ({np.min(direct):.2f}) |"
                  f" {np.mean(resampled):.2f} ({np.min(resampled):.2f}) | {np.mean(resampled) - np.mean(direct):+.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
