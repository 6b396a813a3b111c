import numpy as np
import pytest

from comfyui_l2p.benchmark.metrics import psnr, ssim


def test_psnr_of_known_noise():
    ref = np.zeros((8, 8))
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0)
    assert psnr(ref, ref) == float("inf")


def test_ssim_is_one_for_identical_and_drops_with_noise():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 3))
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
    assert ssim(noisy, img) < 0.9
    assert ssim(np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1), img) > ssim(noisy, img)
