"""Save a grid of images as a PNG with Pillow (a ComfyUI dependency, so always present where the pack runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def grid_array(images: Tensor, rows: int, pad: int = 2) -> np.ndarray:
    """images (N, 1, H, W) in [-1, 1], N = rows * cols, row-major -> uint8 (rows*(H+pad)+pad, cols*(W+pad)+pad)."""
    n, c, h, w = images.shape
    if c != 1 or n % rows:
        raise ValueError(f"grid_array: expected (rows * cols, 1, H, W) images, found {tuple(images.shape)} for {rows} rows")
    cols = n // rows
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()[:, 0]
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 64, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = pixels[i]
    return canvas


def save_grid(images: Tensor, rows: int, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid_array(images, rows), mode="L").save(path)
    return path
