"""The README's result tables, rendered from the benchmark output they quote (one source of truth).

    python3 scripts/readme_numbers.py            # exit 1, naming each table, when the README disagrees
    python3 scripts/readme_numbers.py --write    # rewrite the README's generated tables from docs/

Each generated table sits in README.md between ``<!-- numbers: NAME -->`` and ``<!-- /numbers -->``. Its numbers
come from the markdown the benchmark commands write (``docs/benchmark*/benchmark.md``: ``python3 -m benchmark``;
``docs/benchmark*/trajectories.md``: ``python3 -m benchmark.trajectories``; ``docs/learning/learning.md``:
``python3 -m benchmark.learning``), rounded to 0.1 dB. After a benchmark is rerun and its output copied into docs/,
``--write`` brings the README along; tests/test_readme_numbers.py fails until it does.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SCENARIOS = ("no CFG (cond only)", "CFG 3.0")
SPEEDUPS = ("4.55x", "5.56x", "7.14x")
DEFAULT_VARIANT = "L2P direct (optimized)"

# README row label -> the benchmark's variant name. The order is the table's.
RESULT_ROWS = (
    ("FORA", "FORA"),
    ("TaylorSeer order 1", "TaylorSeer-1"),
    ("TaylorSeer order 2", "TaylorSeer-2"),
    ("Spectrum", "Spectrum"),
    ("L2P as published (rollout, published step lists)", "L2P published (Adam, published lists)"),
    ("LESA (KAN experts per noise stage, even schedule)", "LESA (even)"),
    ("L2P direct, even schedule", "L2P direct (even)"),
    ("L2P direct, schedule on the dsigma-only error (the default before; older files keep it)",
     "L2P direct (optimized, dsigma-only error)"),
    ("**L2P direct, schedule with error growth (default)**", DEFAULT_VARIANT),
)
CELL = re.compile(r"^\s*([-\d.]+) (?:\[([-\d.]+)\] )?\(([-\d.]+)\)")  # "47.12 [45.80] (33.66) / 0.998"


@dataclass(frozen=True)
class Cell:
    mean: float
    worst: float


class DocsError(ValueError):
    """A benchmark output in docs/ lacks what the README quotes."""


def _sections(text: str) -> dict[str, list[str]]:
    """Heading text (any level) -> the lines under it, up to the next heading."""
    sections: dict[str, list[str]] = {}
    current: list[str] = sections.setdefault("", [])
    for line in text.splitlines():
        if line.startswith("#"):
            current = sections.setdefault(line.lstrip("#").strip(), [])
        else:
            current.append(line)
    return sections


def _table(lines: list[str], where: str) -> dict[str, list[Cell]]:
    """First column -> the parsed cells of a markdown table's data rows."""
    rows: dict[str, list[Cell]] = {}
    for line in lines:
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if not line.startswith("|") or parts[0] in ("predictor", "N", "images learned") or set(parts[0]) <= {"-"}:
            continue
        cells = [CELL.match(p) for p in parts[1:1 + len(SPEEDUPS)]]
        if all(cells):
            rows[parts[0]] = [Cell(float(m.group(1)), float(m.group(3))) for m in cells]
    if not rows:
        raise DocsError(f"{where}: no table of 'mean (worst)' cells found")
    return rows


def _section(path: Path, *headings: str) -> list[str]:
    """The lines under the nested headings (each later one searched after the earlier)."""
    text = path.read_text()
    lines = text.splitlines()
    start = 0
    for heading in headings:
        for i in range(start, len(lines)):
            if lines[i].startswith("#") and lines[i].lstrip("#").strip().startswith(heading):
                start = i + 1
                break
        else:
            raise DocsError(f"{path.relative_to(ROOT)}: no heading '{heading}' (rerun the benchmark that writes it)")
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def benchmark_psnr(folder: str) -> dict[str, dict[str, list[Cell]]]:
    """scenario -> variant -> cells at SPEEDUPS, from docs/<folder>/benchmark.md."""
    path = DOCS / folder / "benchmark.md"
    return {s: _table(_section(path, f"{s}: PSNR"), f"{path.relative_to(ROOT)} ({s})") for s in SCENARIOS}


def _fmt(cell: Cell) -> str:
    return f"{cell.mean:.1f} ({cell.worst:.1f})"


def _bold(cell: Cell) -> str:
    return f"**{cell.mean:.1f}** (**{cell.worst:.1f}**)"


def results_table(folder: str) -> str:
    data = benchmark_psnr(folder)
    head = ("| predictor | no CFG " + " | ".join(SPEEDUPS) + " | CFG 3.0 " + " | ".join(SPEEDUPS) + " |\n"
            + "|---" * (1 + 2 * len(SPEEDUPS)) + "|")
    lines = [head]
    for label, variant in RESULT_ROWS:
        missing = [s for s in SCENARIOS if variant not in data[s]]
        if missing:
            raise DocsError(f"docs/{folder}/benchmark.md has no row '{variant}' for {missing}")
        fmt = _bold if variant == DEFAULT_VARIANT else _fmt
        lines.append(f"| {label} | " + " | ".join(fmt(c) for s in SCENARIOS for c in data[s][variant]) + " |")
    return "\n".join(lines)


def trajectories_table() -> str:
    """N -> mean PSNR at the three speedups, both models and scenarios (the default variant)."""
    columns = [(folder, s) for folder in ("benchmark", "benchmark-qwen") for s in SCENARIOS]
    tables = [_table(_section(DOCS / f / "trajectories.md", s, DEFAULT_VARIANT), f"docs/{f}/trajectories.md ({s})")
              for f, s in columns]
    counts = list(tables[0])
    lines = ["| N | FLUX no CFG | FLUX CFG 3 | Qwen-Image no CFG | Qwen-Image CFG 3 |", "|---|---|---|---|---|"]
    for n in counts:
        lines.append(f"| {n} | " + " | ".join(" / ".join(f"{c.mean:.1f}" for c in t[n]) for t in tables) + " |")
    return "\n".join(lines)


def learning_table() -> str:
    """Images learned -> mean (worst) at each speedup and scenario, and the full calibration's row beside it."""
    path = DOCS / "learning" / "learning.md"
    tables = [_table(_section(path, s), f"{path.relative_to(ROOT)} ({s})") for s in SCENARIOS]
    full = benchmark_psnr("benchmark")
    lines = ["| images learned | no CFG " + " | ".join(SPEEDUPS) + " | CFG 3.0 " + " | ".join(SPEEDUPS) + " |",
             "|---" * (1 + 2 * len(SPEEDUPS)) + "|"]
    for n in tables[0]:
        label = f"**{n} (default)**" if n == "4" else n
        lines.append(f"| {label} | " + " | ".join(_fmt(c) for t in tables for c in t[n]) + " |")
    lines.append("| 42 (the table above) | "
                 + " | ".join(_fmt(c) for s in SCENARIOS for c in full[s][DEFAULT_VARIANT]) + " |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "results-flux": lambda: results_table("benchmark"),
    "results-qwen": lambda: results_table("benchmark-qwen"),
    "trajectories": trajectories_table,
    "learning": learning_table,
}
BLOCK = re.compile(r"(<!-- numbers: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n<!-- /numbers -->)", re.S)


def readme_blocks(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


def problems(text: str) -> list[str]:
    """What differs between the README's generated tables and the docs they come from ([] = in step)."""
    found = readme_blocks(text)
    out = [f"README.md has no '<!-- numbers: {name} -->' block" for name in TABLES if name not in found]
    out += [f"README.md's block '{name}' is not a known table ({sorted(TABLES)})" for name in found
            if name not in TABLES]
    for name, render in TABLES.items():
        if name in found and found[name] != render():
            out.append(f"README.md's '{name}' table differs from what docs/ hold: run"
                       f" python3 scripts/readme_numbers.py --write")
    return out


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + TABLES[m.group("name")]() + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the README's generated tables")
    args = parser.parse_args(argv)
    text = README.read_text()
    if args.write:
        README.write_text(rewrite(text))
        text = README.read_text()
    found = problems(text)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
