"""The report's picture: expected quality (dB) against speedup, drawn with Pillow alone (a ComfyUI dependency;
matplotlib is not), small enough for a node's preview (360 x 220 pixels, a few kilobytes as PNG)."""
from __future__ import annotations

import math
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

SIZE = (360, 220)
MARGIN = (44, 28, 14, 34)  # left, top, right, bottom: room for the axis labels and the title
BACKGROUND, AXIS, GRID, LINE, TEXT = (255, 255, 255), (60, 60, 60), (225, 225, 225), (31, 119, 180), (20, 20, 20)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]


def quality_plot(points: Sequence[tuple[float, float]], title: str = "expected quality vs speedup") -> Image.Image:
    """An RGB image of the (speedup, dB) ``points`` as a line with dots; the x axis starts at 1x."""
    if not points:
        raise ValueError("quality_plot needs at least one (speedup, dB) point")
    points = sorted((float(x), float(y)) for x, y in points)
    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = MARGIN[0], MARGIN[1], SIZE[0] - MARGIN[2], SIZE[1] - MARGIN[3]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x_ticks = _ticks(1.0, max(max(xs), 2.0))
    y_ticks = _ticks(min(ys) - 1.0, max(ys) + 1.0)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left), bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

    for y in y_ticks:
        _, py = at(x_lo, y)
        draw.line([(left, py), (right, py)], fill=GRID)
        draw.text((left - 6, py), f"{y:g}", fill=TEXT, font=font, anchor="rm")
    for x in x_ticks:
        px, _ = at(x, y_lo)
        draw.line([(px, bottom), (px, bottom + 4)], fill=AXIS)
        draw.text((px, bottom + 6), f"{x:g}x", fill=TEXT, font=font, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS)
    line = [at(x, y) for x, y in points]
    if len(line) > 1:
        draw.line(line, fill=LINE, width=2)
    for px, py in line:
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=LINE)
    draw.text((left, 8), f"{title} (dB)", fill=TEXT, font=font)
    draw.text((right, SIZE[1] - 4), "speedup", fill=TEXT, font=font, anchor="rd")
    return image
