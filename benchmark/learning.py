"""What a new user gets from L2P Cache's default (learning) mode: image quality after the first N images taught it.

    python3 -m benchmark.learning [--model qwen] [--scenario no|cfg] [--counts 1 2 4 8 16] [--draws 3]

For each N, ``--draws`` different sets of N calibration images (one image per run, as a user queues them; drawn
from classes 0-6) go through L2P Cache's learning holder itself (nodes/learn_setup.py) on an empty folder, with
learning_images = N: the benchmark checks that each of them was a learning run (every step computed and recorded)
and that the runs after them forecast. Then the held-out samples (classes 7-9) are sampled by the same holder at
each speedup. A cell is the PSNR (dB) against the full run: mean over the draws [lowest draw's mean] (worst
sample of any draw). Outputs: learning.md, learning.json and learning.png (the curve) in --out.
"""
from __future__ import annotations

import json
import sys
import tempfile

import numpy as np

from . import harness
from .__main__ import CAL_CLASSES, EVAL_CLASSES, SPEEDUPS, batch, chosen_scenarios
from .metrics import psnr
from .outputs import draws_cell, speedup_columns, table_head, table_row

from comfyui_l2p.nodes import learn_setup, setups  # noqa: E402  (harness registered the package)
from comfyui_l2p.nodes.report import LearningAction  # noqa: E402

COUNTS = (1, 2, 4, 8, 16)


def cache_settings(speedup: float) -> dict:
    """L2P Cache's node defaults at ``speedup`` (the forecasting runs' settings)."""
    return dict(speedup=speedup, placement="optimized", warmup=setups.DEFAULT_L2P_WARMUP, compute_last=False,
                residual_budget=setups.DEFAULT_RESIDUAL_BUDGET, history_device=setups.HISTORY_DEVICES[0],
                mode=setups.L2P_MODES[0], grid_policy=setups.GRID_POLICIES[0])


def learn(model, scenario: harness.Scenario, images: harness.Batch, folder: str) -> None:
    """Queue ``images`` one per run through a learning holder that needs exactly that many; each must record."""
    holder = learn_setup.learning_holder(folder, learn_setup.LearningPolicy(needed=len(images.labels)),
                                         cache_settings(SPEEDUPS[0]))
    for label, seed in zip(images.labels, images.seeds):
        report = harness.sample_with(model, scenario, harness.Batch((label,), (seed,)), holder).report
        if report.learning.action is not LearningAction.RECORD or not report.learning.saved:
            raise RuntimeError(f"expected a recorded learning run, got {report.learning}")


def draws_of(pool: harness.Batch, count: int, draws: int) -> list[harness.Batch]:
    rng = np.random.default_rng(count)
    size = len(pool.labels)
    picks = [sorted(rng.choice(size, count, replace=False).tolist()) for _ in range(draws if count < size else 1)]
    return [harness.Batch(tuple(pool.labels[i] for i in p), tuple(pool.seeds[i] for i in p)) for p in picks]


def measure(model, scenario, pool, ev, full, counts, draws, speedups) -> dict[int, list[tuple[float, float, float]]]:
    cells = {}
    for count in counts:
        per_speedup = [[] for _ in speedups]
        for images in draws_of(pool, count, draws):
            with tempfile.TemporaryDirectory(prefix="l2p-learning-") as folder:
                learn(model, scenario, images, folder)
                for k, speedup in enumerate(speedups):
                    holder = learn_setup.learning_holder(
                        folder, learn_setup.LearningPolicy(needed=count), cache_settings(speedup))
                    result = harness.sample_with(model, scenario, ev, holder)
                    if result.report.learning.action is not LearningAction.FORECAST:
                        raise RuntimeError(f"expected forecasting after {count} images, got {result.report.learning}")
                    images_out = harness.decode_images(model, result.latents)
                    per_speedup[k].append([psnr(a, b) for a, b in zip(images_out, full)])
        cells[count] = [(float(np.mean([np.mean(d) for d in c])), float(np.min([np.mean(d) for d in c])),
                         float(np.min(c))) for c in per_speedup]
        print(f"[learning] {scenario.name} N={count}: " + " | ".join(draws_cell(*c) for c in cells[count]), flush=True)
    return cells


def plot(results: dict[str, dict[int, list]], speedups, path) -> bool:
    """The curve as a PNG at ``path``; False (nothing written) without matplotlib, which only the plot needs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.4), squeeze=False)
    for ax, (name, cells) in zip(axes[0], results.items()):
        counts = sorted(cells)
        for k, speedup in enumerate(speedups):
            line = ax.plot(counts, [cells[c][k][0] for c in counts], marker="o", label=f"{speedup:.2f}x mean")
            ax.plot(counts, [cells[c][k][2] for c in counts], ls=":", color=line[0].get_color(), label="worst")
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("images L2P Cache learned from")
        ax.set_ylabel("PSNR vs full run (dB)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    p = harness.command_parser("python3 -m benchmark.learning", __doc__, scenario=True)
    p.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--speedups", type=float, nargs="+", default=list(SPEEDUPS))
    p.add_argument("--cal-seeds", type=int, default=6)
    p.add_argument("--eval-seeds", type=int, default=8)
    p.add_argument("--out", default=None, help="default out/learning (reference) or out/learning-<model>")
    args = p.parse_args(argv)
    started = harness.start_command("python3 -m benchmark.learning", "learning", args)
    if started is None:
        return 2
    out, model = started
    pool = batch(CAL_CLASSES, range(args.cal_seeds))
    ev = batch(EVAL_CLASSES, range(1000, 1000 + args.eval_seeds))
    counts = sorted(c for c in set(args.counts) if 1 <= c <= len(pool.labels))
    results = {}
    for scenario in chosen_scenarios(args.scenario):
        full = harness.decode_images(model, harness.sample_full(model, scenario, ev).latents)
        results[scenario.name] = measure(model, scenario, pool, ev, full, counts, args.draws, args.speedups)
    lines = [f"# L2P Cache learning from a user's first images: model `{args.model}`", "",
             f"{harness.MODELS[args.model]}. N images (one per run, drawn from {len(pool.labels)} of classes 0-6,"
             f" {args.draws} draws per N) taught L2P Cache on an empty folder; then {len(ev.labels)} held-out"
             f" samples (classes 7-9) were forecast. Cell: PSNR dB against the full run, mean over the draws"
             f" [lowest draw's mean] (worst sample of any draw).", ""]
    for name, cells in results.items():
        lines += [f"## {name}", "", *table_head("images learned", *speedup_columns(args.speedups))]
        lines += [table_row(c, *(draws_cell(*cell) for cell in cells[c])) for c in sorted(cells)]
        lines.append("")
    (out / "learning.md").write_text("\n".join(lines))
    (out / "learning.json").write_text(json.dumps({n: {str(c): v for c, v in cells.items()}
                                                   for n, cells in results.items()}, indent=1))
    written = [out / "learning.md", out / "learning.json"]
    if plot(results, args.speedups, out / "learning.png"):
        written.append(out / "learning.png")
    else:
        print("no plot: matplotlib is not installed (pip install matplotlib); the tables are written")
    print("\n".join(lines))
    print(f"[learning] wrote {', '.join(str(path) for path in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
