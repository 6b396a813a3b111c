"""Thumbnails for the template picker: ``example_workflows/<file stem>.jpg``, drawn with Pillow from the benchmark's
image grids (``docs/benchmark*/grid-*.png``, written by ``python3 -m benchmark``) and captioned with the numbers of
the same run (``docs/benchmark*/benchmark.md``). Nothing here needs ComfyUI.

    python3 scripts/workflow_thumbnails.py           # (re)write the thumbnails
    python3 scripts/workflow_thumbnails.py --check   # exit 1 unless every thumbnail is what this script draws

A thumbnail puts two held-out samples of the reference model side by side: the full 50-step run, and the same seed
with the template's node at 7.14x (the grid's speedup). No image of FLUX, Qwen-Image, SDXL, HunyuanVideo or Wan can
be made where this project is built, so every caption says which model the images come from.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (makes the pack importable as comfyui_l2p, without ComfyUI)
import readme_numbers  # noqa: E402
import workflow_catalog  # noqa: E402

OUT_DIR = ROOT / "example_workflows"
SIZE, TILE, GAP, MARGIN = 400, 120, 8, 16
BADGE = 200  # ComfyUI's frontend (1.49) lays a 'Node graph' badge over the card's top left: no text under it
GRID_LABEL_H, GRID_PAD = 28, 4  # benchmark/outputs.py image_grid's layout
FULL_COLUMN = "full 50 steps"
GRID_SPEEDUP_COLUMN = 2  # the grid shows the largest speedup, 7.14x: the third cell of a benchmark.md row
BACKGROUND, TEXT, ACCENT, MUTED = (30, 30, 30), (235, 235, 235), (110, 190, 110), (150, 150, 150)
MAX_BYTES = 40_000  # a thumbnail the picker loads quickly
SAME_IMAGE_TOLERANCE = 3.0  # mean absolute pixel difference allowed between Pillow versions' JPEG encoders


@dataclasses.dataclass(frozen=True)
class Thumbnail:
    """What one template's thumbnail shows: ``variant`` (the benchmark's name of the template's predictor; None shows
    full runs only, for calibration) from ``folder``'s ``scenario``."""

    title: str
    subtitle: str
    folder: str = "benchmark"
    scenario: str = readme_numbers.SCENARIOS[0]
    variant: str | None = readme_numbers.DEFAULT_VARIANT
    label: str = "L2P Cache"


THUMBNAILS: dict[str, Thumbnail] = {  # template key (workflow_catalog) -> thumbnail
    "flux1-dev-l2p-cache": Thumbnail("FLUX.1-dev", "L2P Cache: learns, then forecasts"),
    "flux1-dev-forecast-cache": Thumbnail("FLUX.1-dev", "Forecast Cache: training-free",
                                          variant="TaylorSeer-2", label="TaylorSeer 2"),
    "qwen-image-l2p-cache": Thumbnail("Qwen-Image", "L2P Cache with CFG", folder="benchmark-qwen",
                                      scenario=readme_numbers.SCENARIOS[1]),
    "sdxl-l2p-cache": Thumbnail("SDXL", "L2P Cache with CFG", scenario=readme_numbers.SCENARIOS[1]),
    "hunyuan-video-l2p-cache": Thumbnail("HunyuanVideo", "L2P Cache, text to video"),
    "flux1-dev-l2p-calibrate": Thumbnail("FLUX.1-dev", "L2P Calibrate: every step, recorded", variant=None),
    "wan2.2-14b-t2v-l2p-calibrate": Thumbnail("Wan 2.2 14B", "L2P Calibrate, one file per expert",
                                              scenario=readme_numbers.SCENARIOS[1], variant=None),
    "wan2.2-14b-t2v-l2p-cache": Thumbnail("Wan 2.2 14B", "L2P Cache on both experts",
                                          scenario=readme_numbers.SCENARIOS[1]),
}


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def _grid_tiles(thumb: Thumbnail) -> tuple[list, list, str]:
    """(full-run tiles, our tiles, caption): the first two samples' tiles cut from the benchmark grid."""
    from PIL import Image

    tag = "nocfg" if thumb.scenario == readme_numbers.SCENARIOS[0] else "cfg"
    grid = Image.open(ROOT / "docs" / thumb.folder / f"grid-{tag}.png").convert("L")
    table = readme_numbers.benchmark_psnr(thumb.folder)[thumb.scenario]
    columns = [FULL_COLUMN, *table]  # the grid's columns: the full run, then the variants in the table's order
    step = (grid.width - GRID_PAD) / len(columns)
    tile = round(step) - GRID_PAD
    if abs(step - round(step)) > 1e-9 or tile <= 0:
        raise readme_numbers.DocsError(f"docs/{thumb.folder}/grid-{tag}.png: {grid.width} px do not hold"
                                       f" {len(columns)} columns of docs/{thumb.folder}/benchmark.md's table")

    def cut(column: str, row: int):
        x0 = GRID_PAD + columns.index(column) * round(step)
        y0 = GRID_LABEL_H + GRID_PAD + row * round(step)
        return grid.crop((x0, y0, x0 + tile, y0 + tile))

    full = [cut(FULL_COLUMN, r) for r in (0, 1)]
    if thumb.variant is None:
        return full, [cut(FULL_COLUMN, r) for r in (2, 3)], "full runs, every step computed and recorded"
    cell = table[thumb.variant][GRID_SPEEDUP_COLUMN]
    ours = [cut(thumb.variant, r) for r in (0, 1)]
    return full, ours, f"{readme_numbers.SPEEDUPS[GRID_SPEEDUP_COLUMN]}: {cell.mean:.1f} dB mean, worst {cell.worst:.1f}"


def draw(key: str) -> bytes:
    """The JPEG bytes of template ``key``'s thumbnail."""
    from PIL import Image, ImageDraw

    thumb = THUMBNAILS[key]
    full, ours, caption = _grid_tiles(thumb)
    canvas = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    pen = ImageDraw.Draw(canvas)
    title_font = _font(24)
    pen.text((SIZE - MARGIN - pen.textlength(thumb.title, font=title_font), 12), thumb.title, fill=TEXT,
             font=title_font)
    left = (SIZE - 2 * TILE - 3 * GAP) // 2
    right = left + TILE + 3 * GAP
    labels = ("full 50 steps", "more full runs") if thumb.variant is None else ("full 50 steps", thumb.label)
    small = _font(14)
    for x, label, colour in ((left, labels[0], MUTED), (right, labels[1], ACCENT)):
        pen.text((x, 58), label, fill=colour, font=small)
    for row in (0, 1):
        y = 78 + row * (TILE + GAP)
        for x, tiles in ((left, full), (right, ours)):
            canvas.paste(tiles[row].resize((TILE, TILE), Image.NEAREST).convert("RGB"), (x, y))
    pen.text((MARGIN, SIZE - 66), thumb.subtitle, fill=ACCENT, font=_font(17))
    pen.text((MARGIN, SIZE - 42), caption, fill=TEXT, font=small)
    pen.text((MARGIN, SIZE - 22), "images: the pack's small reference model (README)", fill=MUTED, font=small)
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


def path_of(key: str) -> Path:
    return OUT_DIR / f"{workflow_catalog.file_stem(key)}.jpg"


def problems() -> list[str]:
    """What differs between the committed thumbnails and what this script draws ([] = in step)."""
    from PIL import Image

    found = []
    if set(THUMBNAILS) != set(workflow_catalog.FILE_STEMS):
        found.append(f"thumbnails {sorted(THUMBNAILS)} and templates {sorted(workflow_catalog.FILE_STEMS)} differ")
    for key in THUMBNAILS:
        path = path_of(key)
        if not path.exists():
            found.append(f"{path.relative_to(ROOT)} is missing")
            continue
        if path.stat().st_size > MAX_BYTES:
            found.append(f"{path.relative_to(ROOT)} holds {path.stat().st_size} bytes, more than {MAX_BYTES}")
        committed = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        drawn = np.asarray(Image.open(io.BytesIO(draw(key))).convert("RGB"), dtype=np.float64)
        if committed.shape != drawn.shape or np.abs(committed - drawn).mean() > SAME_IMAGE_TOLERANCE:
            found.append(f"{path.relative_to(ROOT)} is not what scripts/workflow_thumbnails.py draws now")
    stems = {workflow_catalog.file_stem(k) for k in THUMBNAILS}
    found += [f"{p.relative_to(ROOT)} belongs to no template" for p in OUT_DIR.glob("*.jpg") if p.stem not in stems]
    return found


def write_all() -> list[Path]:
    """Write every thumbnail that changed; the paths written."""
    written = []
    for key in THUMBNAILS:
        path, data = path_of(key), draw(key)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed thumbnails, write nothing")
    args = parser.parse_args(argv)
    if not args.check:
        for path in write_all():
            print(f"wrote: {path.relative_to(ROOT)}")
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
