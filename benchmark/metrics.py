"""Image quality against the full-compute result: PSNR and SSIM (the L2P paper's evaluation uses both)."""
from __future__ import annotations

import numpy as np


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``image`` against ``reference`` (same shape, values in [0, range])."""
    mse = float(np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * np.log10(data_range**2 / mse)


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    g /= g.sum()
    return g


def _filter(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of a 2-D image."""
    k = len(g)
    rows = np.stack([np.convolve(r, g, mode="valid") for r in img])
    return np.stack([np.convolve(c, g, mode="valid") for c in rows.T]).T if rows.shape[0] >= k else rows


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004, 7x7 Gaussian window, sigma 1.5) on grayscale.

    Inputs are H x W or H x W x C in [0, range]; colour is reduced to luma first, as the L2P evaluation does.
    """
    a = _gray(np.asarray(image, np.float64))
    b = _gray(np.asarray(reference, np.float64))
    g = _gaussian_window(min(7, min(a.shape)))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    s_aa = _filter(a * a, g) - mu_a**2
    s_bb = _filter(b * b, g) - mu_b**2
    s_ab = _filter(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return float(np.mean(num / den))


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        if img.shape[-1] == 3:
            return img @ np.array([0.299, 0.587, 0.114])
        return img.mean(axis=-1)
    return img
