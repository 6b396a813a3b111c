"""What LESA costs, and what a calibration file weighs with and without its trajectory sample (CPU, minutes).

    python3 -m benchmark.lesa_cost [--threads 1] [--model reference]

1. Calibrates the model like the benchmark (6 seeds x classes 0-6, 50 Euler steps), without CFG and with CFG 3,
   once with L2P Calibrate's lesa_sample off (the default) and once on: the file sizes.
2. Trains LESA on each sampled file exactly as L2P Cache does (``nodes/lesa_setup.lesa_model``: the node's
   recipe, one thread, storing the experts in the file), then loads the stored experts again: training and
   loading times. The sample has a fixed capacity (16384 element trajectories), so training costs the same at
   any resolution: a FLUX 1024x1024 calibration trains on a sample of the same size.
3. One forecast at FLUX 1024x1024 latent size (1 x 16 x 128 x 128) with the trained LESA model against L2P
   direct (one weighted sum of 11 computed outputs), float32 and bfloat16, and for scale one pass of the bundled
   reference transformer at that token count (1.8 M parameters; FLUX.1-dev has 12 B).
Writes lesa-cost.md and lesa-cost.json to --out (default out/lesa-cost); numbers are this machine's CPU, as wall time
and as this process's CPU time (the cost on an idle core, whatever else runs).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import numpy as np
import torch

from . import harness
from .__main__ import CAL_CLASSES, SCENARIOS, batch, calibrate

from comfyui_l2p.nodes import lesa_setup  # noqa: E402
from comfyui_l2p.predictors import ForecastEngine, L2PDirect, LesaEngine, load_predictor_file  # noqa: E402
from comfyui_l2p.predictors.schedules.placements import even_schedule  # noqa: E402

FLUX_LATENT = (1, 16, 128, 128)


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds, medians over ``repeats`` calls after one warm-up call. The CPU time (this process,
    all its threads) is what the call costs whatever else the machine runs; the wall time grows on busy cores."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def forecast_costs(lesa_model, grid, repeats: int) -> list[tuple[str, float]]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        outputs = {s: torch.randn(FLUX_LATENT, generator=gen).to(dtype) for s in range(grid.num_steps)}
        lesa = LesaEngine(lesa_model, grid)
        for s in even_schedule(grid.num_steps, 9, warmup=2):
            lesa.observe("cond", s, outputs[s])
        name = str(dtype).split(".")[-1]
        rows.append((f"LESA forecast ({lesa_model.history} outputs per element), {name}",
                     median_ms(lambda: lesa.forecast("cond", grid.num_steps - 5), max(3, repeats // 5))))
        direct = ForecastEngine(L2PDirect(np.eye(grid.num_steps) + 0.5), grid)
        for s in even_schedule(grid.num_steps, 11, warmup=2):
            direct.observe("cond", s, outputs[s])
        target = grid.num_steps - 4
        direct.coefficients("cond", target)  # the fit is cached per (target, history): time the sum
        rows.append((f"L2P direct forecast (weighted sum of 11 outputs), {name}",
                     median_ms(lambda: direct.forecast("cond", target), repeats)))
    return rows


def main(argv=None) -> int:
    p = harness.command_parser("python3 -m benchmark.lesa_cost", __doc__)
    p.add_argument("--out", default=None, help="default out/lesa-cost (reference) or out/lesa-cost-<model>")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the forecasts and the model (LESA's training always uses 1, as in the node)")
    p.add_argument("--cal-seeds", type=int, default=6)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    started = harness.start_command("python3 -m benchmark.lesa_cost", "lesa-cost", args)
    if started is None:
        return 2
    out, model = started
    torch.set_num_threads(args.threads)
    cal = batch(CAL_CLASSES, range(args.cal_seeds))
    sizes, training, lesa_models = [], [], {}
    for scenario in SCENARIOS:
        tag = "cfg" if scenario.cfg_scale != 1.0 else "nocfg"
        for lesa_sample in (False, True):
            path = out / f"{tag}-{'lesa' if lesa_sample else 'default'}.safetensors"
            path.unlink(missing_ok=True)
            calibrate(model, scenario, cal, path, lesa_sample=lesa_sample)
            sizes.append((scenario.name, "on" if lesa_sample else "off (default)", path.stat().st_size))
            if not lesa_sample:
                continue
            start, start_cpu = time.perf_counter(), time.process_time()
            lesa_models[tag] = lesa_setup.lesa_model(str(path), load_predictor_file(path))
            trained, trained_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            start = time.perf_counter()
            lesa_setup.lesa_model(str(path), load_predictor_file(path))  # the stored experts this time
            loaded = time.perf_counter() - start
            sample = load_predictor_file(path).lesa["traj_values"]
            training.append((scenario.name, int(sample.shape[0] * sample.shape[1]), trained, trained_cpu, loaded,
                             path.stat().st_size))
            print(f"[lesa_cost] {scenario.name}: trained in {trained:.1f} s ({trained_cpu:.1f} s CPU), loaded in"
                  f" {loaded * 1000:.0f} ms", flush=True)
    grid = SCENARIOS[0].grid()
    costs = forecast_costs(lesa_models["nocfg"], grid, args.repeats)
    x = torch.randn(FLUX_LATENT)
    cond, _ = model.conditioning(torch.tensor([3]))
    with torch.no_grad():
        costs.append((f"reference transformer pass at 4096 tokens ({args.model}; for scale: FLUX.1-dev is far"
                      f" larger)", median_ms(lambda: model.model_fn(x, torch.tensor([0.5]), cond), 3)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"torch threads: {args.threads} (LESA training: 1); CPU: this machine, {os.cpu_count()} cores,"
             f" load average {load:.1f} at the end; {args.cal_seeds} seeds x classes 0-6 calibrate, 50 Euler steps.",
             "",
             "| calibration file | lesa_sample | bytes |", "|---|---|---|"]
    lines += [f"| {s} | {flag} | {size:,} |" for s, flag, size in sizes]
    lines += ["", "| LESA training (once per file) | sampled sequences | wall s | CPU s | load stored s |"
                  " file bytes with experts |", "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {n:,} | {t:.1f} | {c:.1f} | {ld:.2f} | {size:,} |" for s, n, t, c, ld, size in training]
    lines += ["", "| one forecast at 1 x 16 x 128 x 128 | wall ms | CPU ms |", "|---|---|---|"]
    lines += [f"| {name} | {wall:.2f} | {cpu:.2f} |" for name, (wall, cpu) in costs]
    text = "\n".join(lines) + "\n"
    (out / "lesa-cost.md").write_text(text)
    (out / "lesa-cost.json").write_text(json.dumps({
        "threads": args.threads, "load_average": load, "file_bytes": sizes, "training": training,
        "forecast_ms": costs}, indent=1))
    print(text)
    print(f"[lesa_cost] wrote {out / 'lesa-cost.md'} and {out / 'lesa-cost.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
