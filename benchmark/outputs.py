"""The benchmark's artifacts: a markdown table, a quality-vs-speedup plot and an image grid (PNG)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Row:
    """One variant at one speedup in one scenario. Quality is against the full run of the same seed and class."""

    scenario: str
    variant: str
    target_speedup: float
    real_passes: float  # transformer calls, all streams (per image, averaged, when images are sampled one by one)
    full_passes: int
    psnr_mean: float
    psnr_worst: float
    ssim_mean: float
    ssim_worst: float
    wall_seconds: float
    full_wall_seconds: float
    setup_ms: float
    history_kib: float
    computed_steps: list[int] = field(default_factory=list)

    @property
    def pass_speedup(self) -> float:
        return self.full_passes / self.real_passes

    @property
    def wall_speedup(self) -> float:
        return self.full_wall_seconds / self.wall_seconds


def table_row(*cells) -> str:
    """One row of a markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table_head(*columns) -> list[str]:
    """A markdown table's header row and its rule."""
    return [table_row(*columns), "|" + "---|" * len(columns)]


def speedup_columns(speedups) -> list[str]:
    """One column per speedup: "4.55x"."""
    return [f"{s:.2f}x" for s in speedups]


def draws_cell(mean: float, lowest: float, worst: float) -> str:
    """A result over several draws: the mean over the draws [the lowest draw's mean] (the worst sample)."""
    return f"{mean:.2f} [{lowest:.2f}] ({worst:.2f})"


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def markdown(rows: list[Row], scenarios: list[str], speedups: list[float], context: str) -> str:
    out = [f"# Reference benchmark\n\n{context}\n"]
    for scenario in scenarios:
        out.append(f"\n## {scenario}: PSNR dB mean (worst sample) / SSIM mean, against the full 50-step run\n")
        out += table_head("predictor", *speedup_columns(speedups))
        variants = list(dict.fromkeys(r.variant for r in rows if r.scenario == scenario))
        for v in variants:
            cells = []
            for s in speedups:
                r = next((r for r in rows if r.scenario == scenario and r.variant == v and r.target_speedup == s), None)
                cells.append("" if r is None else
                             f"{_fmt(r.psnr_mean)} ({_fmt(r.psnr_worst)}) / {r.ssim_mean:.3f}")
            out.append(table_row(v, *cells))
        out.append(f"\n### {scenario}: cost\n")
        out += ["| predictor | speedup | real passes | pass ratio | wall-clock ratio | wall / pass ratio |"
                " setup ms | history KiB | computed steps |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r.scenario == scenario):
            out.append(f"| {r.variant} | {r.target_speedup:.2f}x | {r.real_passes:g} / {r.full_passes} |"
                       f" {r.pass_speedup:.2f} | {r.wall_speedup:.2f} | {r.wall_speedup / r.pass_speedup:.2f} |"
                       f" {r.setup_ms:.1f} | {r.history_kib:.0f} | {r.computed_steps} |")
    return "\n".join(out) + "\n"


PLOT_FLOOR_DB = 20.0


def plot(rows: list[Row], scenarios: list[str], path: Path) -> Path | None:
    """PSNR against achieved pass speedup, one panel per scenario. None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    all_variants = list(dict.fromkeys(r.variant for r in rows))
    legend_rows = (len(all_variants) + 1) // 2
    legend_height = 0.16 * legend_rows + 0.3  # inches: the legend sits below the panels, two columns
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6.5 * len(scenarios), 4.6 + legend_height),
                             squeeze=False)
    palette = plt.get_cmap("tab20")
    colour = {v: palette(i % 20) for i, v in enumerate(all_variants)}  # one colour per variant in every panel
    handles = {}
    for ax, scenario in zip(axes[0], scenarios):
        variants = list(dict.fromkeys(r.variant for r in rows if r.scenario == scenario))
        for v in variants:
            pts = sorted((r.pass_speedup, r.psnr_mean) for r in rows if r.scenario == scenario and r.variant == v)
            style = "-o" if "L2P" in v or "LESA" in v else "--s"
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=v, markersize=4,
                              color=colour[v])
            handles.setdefault(v, line)
        values = [r.psnr_mean for r in rows if r.scenario == scenario]
        if min(values) < PLOT_FLOOR_DB < max(values):  # diverged runs would squash the rest of the panel
            ax.set_ylim(bottom=PLOT_FLOOR_DB)
            scenario = f"{scenario} (runs below {PLOT_FLOOR_DB:g} dB off the chart)"
        ax.set_title(scenario)
        ax.set_xlabel("speedup (sampler steps per real transformer pass)")
        ax.set_ylabel("PSNR vs full run (dB)")
        ax.grid(alpha=0.3)
    fig.legend([handles[v] for v in all_variants], all_variants, fontsize=7, loc="lower center", ncol=2,
               frameon=False)
    fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_grid(columns: list[tuple[str, np.ndarray]], path: Path, scale: int = 2) -> Path:
    """One column per method (label on top), one row per sample. Images float [0, 1], (N, H, W)."""
    from PIL import Image, ImageDraw

    n, h, w = columns[0][1].shape
    label_h, pad, col_w = 28, 4, max(w * scale, 96)
    canvas = Image.new("L", (len(columns) * (col_w + pad) + pad, label_h + n * (h * scale + pad) + pad), 40)
    draw = ImageDraw.Draw(canvas)
    for c, (label, images) in enumerate(columns):
        x0 = pad + c * (col_w + pad)
        for i, line in enumerate(_wrap(label, 16)[:2]):
            draw.text((x0, 2 + 12 * i), line, fill=230)
        for r in range(n):
            tile = Image.fromarray((np.clip(images[r], 0, 1) * 255).round().astype(np.uint8), mode="L")
            tile = tile.resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (x0 + (col_w - w * scale) // 2, label_h + pad + r * (h * scale + pad)))
    canvas.save(path)
    return path


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for word in words:
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return lines + ([cur] if cur else [])


def save_json(rows: list[Row], path: Path, extra: dict) -> Path:
    data = {"rows": [asdict(r) | {"pass_speedup": r.pass_speedup, "wall_speedup": r.wall_speedup} for r in rows]}
    path.write_text(json.dumps(data | extra, indent=1, default=float))
    return path
