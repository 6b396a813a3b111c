"""The reference data: scikit-learn's bundled handwritten digits (1,797 8x8 images, classes 0-9; shipped inside
the scikit-learn wheel, no download), upsampled to 64x64 grayscale in [-1, 1].

Split: the first `TRAIN_COUNT` images train, the rest are held out (tests measure denoising on them).
Training images are augmented (small random rotation, scale and shift, drawn from a seeded generator) while
upsampling, so the model sees a continuum of digits instead of 1,500 fixed points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

IMAGE_SIZE = 64
TRAIN_COUNT = 1500
NUM_CLASSES = 10


@dataclass(frozen=True)
class Digits:
    images: Tensor  # (N, 1, 8, 8) float32 in [0, 1], ink = 1
    labels: Tensor  # (N,) int64 in [0, 10)


def load_digits() -> Digits:
    """All 1,797 digits from scikit-learn's bundled copy (needs `pip install scikit-learn`, no network)."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:  # the data lives in that package; there is no other offline copy
        raise ImportError(
            "reference.data: the reference data set is scikit-learn's bundled digits; install it with "
            "`python3 -m pip install scikit-learn` (no download happens at run time)"
        ) from error
    bunch = sklearn_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    return Digits(images=images, labels=torch.from_numpy(np.asarray(bunch.target, dtype=np.int64)))


def split(digits: Digits) -> tuple[Digits, Digits]:
    """(train, held_out) by index: the data set is ordered by writer, so held-out digits come from other writers."""
    return (Digits(digits.images[:TRAIN_COUNT], digits.labels[:TRAIN_COUNT]),
            Digits(digits.images[TRAIN_COUNT:], digits.labels[TRAIN_COUNT:]))


def upsample(images: Tensor, theta: Tensor | None = None) -> Tensor:
    """(B, 1, 8, 8) in [0, 1] -> (B, 1, 64, 64) in [-1, 1], bicubic, through the affine map theta (B, 2, 3)."""
    b = images.shape[0]
    if theta is None:
        theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(b, 2, 3)
    grid = F.affine_grid(theta, [b, 1, IMAGE_SIZE, IMAGE_SIZE], align_corners=False)
    up = F.grid_sample(images, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    return up.clamp(0, 1) * 2 - 1


def random_affine(batch: int, generator: torch.Generator) -> Tensor:
    """(B, 2, 3) maps: rotation +-10 degrees, scale 0.9-1.1, shift +-0.6 source pixels on each axis."""
    u = torch.rand(batch, 4, generator=generator) * 2 - 1
    angle = u[:, 0] * math.radians(10)
    zoom = 1 + 0.1 * u[:, 1]  # sampling-grid scale: > 1 shrinks the digit
    shift = u[:, 2:] * 0.6 * (2 / 8)  # normalised coordinates: one source pixel is 2/8
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
