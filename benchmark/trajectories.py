"""How many calibration trajectories are enough: quality after 1, 2, 4, 8, 16 and all trajectories.

    python3 -m benchmark.trajectories [--model qwen] [--scenario no|cfg] [--draws 3]

For each count N, ``--draws`` different calibration sets of N trajectories (batch rows) are drawn from the
benchmark's calibration pool (6 seeds x classes 0-6; each draw a random subset, so a small N sees few classes), each
calibrated into a fresh file by L2P Calibrate's own setup, then the held-out samples (classes 7-9) are sampled with
L2P Cache's pieces at each speedup. A cell is the mean PSNR over the draws (the lowest draw's mean, the worst sample
of any draw). "Enough" is the smallest N whose every cell is within ``--tolerance`` dB of the all-trajectory mean in
every draw's mean (the lowest draw counts). Outputs: trajectories.md and trajectories.json in --out.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from . import harness
from .__main__ import CAL_CLASSES, EVAL_CLASSES, SPEEDUPS, batch, calibrate, chosen_scenarios
from .metrics import psnr
from .outputs import draws_cell, speedup_columns, table_head, table_row
from .variants import VARIANTS

COUNTS = (1, 2, 4, 8, 16)
DEFAULT_VARIANTS = ("L2P direct (optimized)", "L2P direct (optimized, shrunk toward TaylorSeer-1 by leave-one-out)")


def draws_of(pool: harness.Batch, count: int, draws: int, seed: int) -> list[harness.Batch]:
    """``draws`` random subsets of ``count`` rows of ``pool`` (the whole pool once when count covers it)."""
    size = len(pool.labels)
    if count >= size:
        return [pool]
    rng = np.random.default_rng(seed + count)
    out = []
    for _ in range(draws):
        rows = sorted(rng.choice(size, count, replace=False).tolist())
        out.append(harness.Batch(tuple(pool.labels[i] for i in rows), tuple(pool.seeds[i] for i in rows)))
    return out


def enough(cells: dict[int, list[tuple[float, float, float]]], total: int, tolerance: float) -> int:
    """The smallest count whose lowest draw mean is within ``tolerance`` dB of the all-trajectory mean at every
    speedup; cells[count][k] = (mean over draws, lowest draw mean, worst sample)."""
    full = cells[total]
    for count in sorted(cells):
        if all(low >= ref[0] - tolerance for (_, low, _), ref in zip(cells[count], full)):
            return count
    return total


def render(saved: dict) -> str:
    """trajectories.md from trajectories.json: per scenario and variant, one row per N, marked when its lowest
    draw is within the tolerance of all trajectories at every speedup, and the 'enough' count."""
    total, tolerance, lines = saved["total"], saved["tolerance"], list(saved["header"])
    for scenario, per_variant in saved["results"].items():
        lines += [f"## {scenario}", ""]
        for name, by_count in per_variant.items():
            cells = {int(c): [tuple(x) for x in v] for c, v in by_count.items()}
            if total not in cells:
                continue
            lines += [f"### {name}", "",
                      *table_head("N", *speedup_columns(saved["speedups"]), f"within {tolerance:g} dB")]
            for count in sorted(cells):
                ok = enough({count: cells[count], total: cells[total]}, total, tolerance) == count
                lines.append(table_row(count, *(draws_cell(*cell) for cell in cells[count]), "yes" if ok else "no"))
            lines += ["", f"Enough (the smallest N within {tolerance:g} dB): **{enough(cells, total, tolerance)}**"
                          " trajectories", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = harness.command_parser("python3 -m benchmark.trajectories", __doc__, scenario=True)
    p.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), help="exact variant names")
    p.add_argument("--speedups", type=float, nargs="+", default=list(SPEEDUPS))
    p.add_argument("--cal-seeds", type=int, default=6)
    p.add_argument("--eval-seeds", type=int, default=8)
    p.add_argument("--tolerance", type=float, default=0.5)
    p.add_argument("--out", default=None, help="default out/trajectories (reference) or out/trajectories-<model>")
    p.add_argument("--render", default=None, help="only re-render trajectories.md from this trajectories.json")
    args = p.parse_args(argv)
    if args.render:
        text = render(json.loads(open(args.render).read()))
        print(text)
        return 0
    variants = [v for name in args.variants for v in VARIANTS if v.name == name]
    if len(variants) != len(args.variants):
        print(f"python3 -m benchmark.trajectories: unknown variant in {args.variants}; names:"
              f" {[v.name for v in VARIANTS]}", file=sys.stderr)
        return 2
    started = harness.start_command("python3 -m benchmark.trajectories", "trajectories", args)
    if started is None:
        return 2
    out, model = started
    pool = batch(CAL_CLASSES, range(args.cal_seeds))
    ev = batch(EVAL_CLASSES, range(1000, 1000 + args.eval_seeds))
    total = len(pool.labels)
    counts = sorted({c for c in args.counts if c < total} | {total})
    lines = [f"# How many calibration trajectories are enough: model `{args.model}`", "",
             f"{harness.MODELS[args.model]}. Calibration: N trajectories drawn from {total} (classes 0-6), "
             f"{args.draws} draws per N; evaluation: {len(ev.labels)} held-out samples (classes 7-9). Cell: PSNR dB"
             f" mean over the draws [lowest draw's mean] (worst sample of any draw). Enough: the smallest N whose"
             f" lowest draw is within {args.tolerance:g} dB of all {total} at every speedup.", ""]
    record = {}
    for scenario in chosen_scenarios(args.scenario):
        full = harness.decode_images(model, harness.sample_full(model, scenario, ev).latents)
        tag = "cfg" if scenario.cfg_scale != 1.0 else "nocfg"
        results: dict[str, dict[int, list[tuple[float, float, float]]]] = {v.name: {} for v in variants}
        for count in counts:
            per_variant = {v.name: [[] for _ in args.speedups] for v in variants}
            for d, cal in enumerate(draws_of(pool, count, args.draws, seed=0)):
                file = out / f"l2p-{args.model}-{tag}-{count}-{d}.safetensors"
                if file.exists():
                    file.unlink()
                calibrate(model, scenario, cal, file)
                for variant in variants:
                    for k, speedup in enumerate(args.speedups):
                        try:
                            holder = variant.build(speedup, str(file))
                            images = harness.decode_images(model, harness.sample_with(model, scenario, ev, holder).latents)
                            per_variant[variant.name][k].append([psnr(a, b) for a, b in zip(images, full)])
                        except ValueError as err:  # e.g. validation needs 2 trajectories
                            print(f"[trajectories] {variant.name} N={count}: {err}", file=sys.stderr)
            for name, cells in per_variant.items():
                if all(cells):
                    results[name][count] = [(float(np.mean([np.mean(v) for v in c])),
                                             float(np.min([np.mean(v) for v in c])), float(np.min(c))) for c in cells]
            print(f"[trajectories] {scenario.name} N={count}: " + "; ".join(
                f"{n}: " + " | ".join(draws_cell(*cell) for cell in r[count])
                for n, r in results.items() if count in r), flush=True)
        record[scenario.name] = {name: {str(c): v for c, v in cells.items()} for name, cells in results.items()}
    (out / "trajectories.json").write_text(json.dumps({"header": lines, "speedups": args.speedups, "total": total,
                                                       "tolerance": args.tolerance, "results": record}, indent=1))
    text = render(json.loads((out / "trajectories.json").read_text()))
    (out / "trajectories.md").write_text(text)
    print(text)
    print(f"[trajectories] wrote {out / 'trajectories.md'}, {out / 'trajectories.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
