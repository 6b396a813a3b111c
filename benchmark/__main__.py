"""Benchmark every predictor and placement on the bundled trained reference model (CPU, minutes).

    python3 -m benchmark            # the full benchmark: both scenarios, every variant, three speedups
    python3 -m benchmark --demo     # the README demo: calibrate L2P, compare it with training-free predictors
    COMFYUI_PATH=/path/to/ComfyUI python3 -m benchmark --model qwen   # the same on ComfyUI's Qwen-Image (trained)

Calibration uses classes 0-6; evaluation uses held-out classes 7-9 and held-out seeds. Every cached run goes
through the nodes' own setups (nodes/setups.py) and run state, with a predictor file written by the same code as
L2P Calibrate. Outputs land in --out: benchmark.md, benchmark.json, quality.png, grid-<scenario>.png.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import harness
from .harness import Batch, Scenario
from .metrics import psnr, ssim
from .outputs import Row, image_grid, markdown, plot, save_json
from .variants import DEMO_VARIANTS, VARIANTS

from comfyui_l2p.nodes import calibrate_setup, setups  # noqa: E402  (harness registered the package)

SPEEDUPS = (4.55, 5.56, 7.14)
SCENARIOS = (Scenario("no CFG (cond only)", cfg_scale=1.0), Scenario("CFG 3.0", cfg_scale=3.0))


def chosen_scenarios(choice: str) -> list[Scenario]:
    """The scenarios a command's ``--scenario`` picks: all, "no" (no CFG) or "cfg"."""
    return [s for s in SCENARIOS if choice in ("all", s.name.split()[0].lower())]
CAL_CLASSES, EVAL_CLASSES = range(0, 7), range(7, 10)


def batch(classes, seeds) -> Batch:
    labels = tuple(c for c in classes for _ in seeds)
    return Batch(labels, tuple(s for _ in classes for s in seeds))


def calibrate(model, scenario: Scenario, cal: Batch, path: Path, mode: str = "teacher-forced",
              speedup: float = 5.0, lesa_sample: bool = False) -> float:
    """Run L2P Calibrate's setup over the calibration batch; returns seconds. ``lesa_sample``: also record LESA's
    training data (L2P Calibrate's lesa_sample input)."""
    holder = calibrate_setup.calibrate_holder(str(path), ridge=setups.DEFAULT_RIDGE, mode=mode,
                                              on_policy_speedup=speedup, lesa_sample=lesa_sample)
    start = time.perf_counter()
    harness.sample_with(model, scenario, cal, holder)
    return time.perf_counter() - start


def run(args) -> int:
    torch.set_num_threads(args.threads)
    model = harness.load_model_for_command("python3 -m benchmark", args.model)
    if model is None:
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds_cal = range(args.cal_seeds)
    seeds_eval = range(1000, 1000 + args.eval_seeds)
    eval_classes = CAL_CLASSES if args.eval_classes == "calibration" else EVAL_CLASSES
    cal, ev = batch(CAL_CLASSES, seeds_cal), batch(eval_classes, seeds_eval)
    variants = [v for v in VARIANTS if (not args.demo or v.name in DEMO_VARIANTS)
                and (not args.variants or any(part.lower() in v.name.lower() for part in args.variants))]
    if not variants:
        print(f"python3 -m benchmark: --variants {args.variants} matches no variant; names: "
              f"{[v.name for v in VARIANTS]}", file=sys.stderr)
        return 2
    scenarios = chosen_scenarios(args.scenario)
    speedups = list(args.speedups)
    rows: list[Row] = []
    notes = []
    grids = []
    for scenario in scenarios:
        tag = "cfg" if scenario.cfg_scale != 1.0 else "nocfg"
        cal_file = out / f"l2p-{args.model}-{tag}.safetensors"
        if cal_file.exists():
            cal_file.unlink()
        cal_seconds = calibrate(model, scenario, cal, cal_file, lesa_sample=any(v.lesa for v in variants))
        notes.append(f"{scenario.name}: calibrated on {len(cal.labels)} trajectories in {cal_seconds:.1f} s")
        cfg_only = [v.name for v in variants if v.cfg_only]
        if scenario.cfg_scale == 1.0 and cfg_only:
            notes.append(f"{scenario.name}: the CFG variants ({'; '.join(cfg_only)}) differ only in how they treat"
                         f" the uncond stream; with one stream they are the same run as L2P direct (optimized)")
        per_sample = [v.name for v in variants if v.per_sample]
        if per_sample:
            notes.append(f"{scenario.name}: {'; '.join(per_sample)} sample each image on its own (per-run decisions"
                         f" follow it): real passes are the mean per image, and the wall-clock ratio compares one-by-one"
                         f" runs with the batched full run, so it is not comparable")
        print(f"[benchmark] {scenario.name}: calibration {cal_seconds:.1f} s -> {cal_file.name}", flush=True)
        full = harness.sample_full(model, scenario, ev)
        full_images = harness.decode_images(model, full.latents)
        full_passes = scenario.steps * len(scenario.roles)
        grid_columns = [("full 50 steps", full_images[: args.grid_rows])]
        for variant in variants:
            if variant.cfg_only and scenario.cfg_scale == 1.0:
                continue
            for speedup in speedups:
                file = None
                if variant.learned:
                    file = cal_file
                    if variant.on_policy:
                        file = out / f"l2p-{args.model}-{tag}-onpolicy-{speedup:.2f}.safetensors"
                        shutil.copyfile(cal_file, file)
                        calibrate(model, scenario, cal, file, mode="on-policy", speedup=speedup)
                started = time.perf_counter()
                holder = variant.build(speedup, None if file is None else str(file))  # LESA trains here, once
                build_seconds = time.perf_counter() - started
                res = (harness.sample_each if variant.per_sample else harness.sample_with)(model, scenario, ev, holder)
                images = harness.decode_images(model, res.latents)
                p = [psnr(a, b) for a, b in zip(images, full_images)]
                q = [ssim(a, b) for a, b in zip(images, full_images)]
                row = Row(scenario.name, variant.name, speedup, res.report.transformer_calls, full_passes,
                          float(np.mean(p)), float(np.min(p)), float(np.mean(q)), float(np.min(q)),
                          res.seconds, full.seconds, (build_seconds + res.setup_seconds) * 1000,
                          res.peak_history_bytes / 1024,
                          res.report.computed_steps)
                rows.append(row)
                print(f"[benchmark] {scenario.name:20s} {variant.name:40s} {speedup:.2f}x  passes"
                      f" {row.real_passes:5.4g}/{full_passes}  PSNR {row.psnr_mean:6.2f} (worst {row.psnr_worst:6.2f})"
                      f"  SSIM {row.ssim_mean:.3f}  wall x{row.wall_speedup:.2f}", flush=True)
                if speedup == max(speedups):
                    grid_columns.append((variant.name, images[: args.grid_rows]))
        grids.append(image_grid(grid_columns, out / f"grid-{tag}.png"))
    context = (f"Model `{args.model}`: {harness.MODELS[args.model]}. {args.cal_seeds} seeds"
               f" x classes 0-6 calibrate; {args.eval_seeds} held-out seeds x "
               + ("held-out classes 7-9" if args.eval_classes == "held-out" else "the calibration classes 0-6")
               + " evaluate."
               f" 50 Euler steps, shift {harness.SHIFT}. torch threads: {args.threads}.\n\n" + "\n".join(
                   f"- {n}" for n in notes))
    (out / "benchmark.md").write_text(markdown(rows, [s.name for s in scenarios], speedups, context))
    save_json(rows, out / "benchmark.json", {"notes": notes})
    png = plot(rows, [s.name for s in scenarios], out / "quality.png")
    print((out / "benchmark.md").read_text())
    print(f"[benchmark] wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, "
          f"{png or '(no plot: matplotlib missing)'}, {', '.join(str(g) for g in grids)}")
    return 0


def main(argv=None) -> int:
    parser = harness.command_parser("python3 -m benchmark", __doc__, scenario=True)
    parser.add_argument("--demo", action="store_true", help="the README demo: fewer variants and samples")
    parser.add_argument("--out", default=None,
                        help="output folder (default out/benchmark, out/benchmark-<model> for other models)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="only the variants whose names contain one of these (case-insensitive) substrings")
    parser.add_argument("--speedups", type=float, nargs="+", default=SPEEDUPS)
    parser.add_argument("--cal-seeds", type=int, default=None, help="calibration seeds per class (default 6, demo 3)")
    parser.add_argument("--eval-seeds", type=int, default=None, help="held-out seeds per class (default 8, demo 4)")
    parser.add_argument("--eval-classes", choices=["held-out", "calibration"], default="held-out",
                        help="evaluate on the held-out classes 7-9 (default) or on the calibration classes 0-6"
                             " (held-out seeds either way): separates class generalisation from the rest")
    parser.add_argument("--grid-rows", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.out = args.out or str(harness.default_out("benchmark", args.model))
    args.cal_seeds = args.cal_seeds or (3 if args.demo else 6)
    args.eval_seeds = args.eval_seeds or (4 if args.demo else 8)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
