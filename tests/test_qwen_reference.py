"""The shipped Qwen-Image reference model (reference/qwen_model.py): ComfyUI's own QwenImageTransformer2DModel
holds the weights with strict=True, samples are finite, deterministic and follow their class, and without
COMFYUI_PATH both the loader and `python3 -m benchmark --model qwen` refuse with a message naming it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from comfy_fixtures import comfy, requires_comfyui  # noqa: F401  (pytest finds fixtures by name)
from conftest import ROOT

from comfyui_l2p.reference.comfy_import import ComfyUINotFound
from comfyui_l2p.reference.data import load_digits, split, upsample
from comfyui_l2p.reference.model import WEIGHTS_DIR
from comfyui_l2p.reference.qwen_config import QwenImageConfig, QwenReferenceConfig
from comfyui_l2p.reference.qwen_model import (QWEN_CONDITIONER_FILE, QWEN_TRANSFORMER_FILE, load_qwen_reference,
                                              load_shared_codec)
from comfyui_l2p.reference.samples import sample_classes

MAX_WEIGHT_BYTES = 10 * 1024 * 1024
# Measured on the shipped weights (torch 2.13 CPU, 1 thread): velocity MSE / best trivial predictor at sigma 0.5
# = 0.081 (FLUX reference: 0.075); nearest-class-mean accuracy of 40 samples at 50 steps, CFG 3, seed 3 = 0.975
# (39/40; FLUX reference 1.0; real held-out digits score 0.86 with these centroids). The bounds leave room.
MAX_DENOISE_RATIO = 0.5
MIN_CLASS_ACCURACY = 0.8


@pytest.fixture(scope="module")
def qwen(comfy):  # noqa: F811  (the fixture of that name)
    torch.set_num_threads(1)
    return load_qwen_reference()


def test_config_is_validated():
    with pytest.raises(ValueError, match="axes_dims_rope"):
        QwenImageConfig(axes_dims_rope=(8, 28, 30))
    with pytest.raises(ValueError, match="in_channels"):
        QwenImageConfig(in_channels=16)
    with pytest.raises(ValueError, match="no pooled vector"):
        QwenReferenceConfig(conditioner=QwenReferenceConfig().conditioner.__class__(vec_in_dim=32))


def test_loader_names_comfyui_path_when_unset(monkeypatch):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    with pytest.raises(ComfyUINotFound, match="COMFYUI_PATH is not set"):
        load_qwen_reference()
    monkeypatch.setenv("COMFYUI_PATH", str(ROOT))  # a folder, but no ComfyUI in it
    with pytest.raises(ComfyUINotFound, match="not a ComfyUI checkout"):
        load_qwen_reference()


def test_benchmark_refuses_qwen_without_comfyui_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    out = subprocess.run([sys.executable, "-m", "benchmark", "--model", "qwen", "--out", str(tmp_path / "b")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "COMFYUI_PATH is not set" in out.stderr
    assert not (tmp_path / "b").exists()  # refused before writing anything


@requires_comfyui
def test_weights_load_strictly_into_comfyuis_class(comfy):  # noqa: F811
    import comfy_host
    import tiny_models

    state = load_file(str(WEIGHTS_DIR / QWEN_TRANSFORMER_FILE))
    assert all(t.dtype == torch.float32 for t in state.values())
    sizes = sum((WEIGHTS_DIR / f).stat().st_size for f in (QWEN_TRANSFORMER_FILE, QWEN_CONDITIONER_FILE))
    assert sizes <= MAX_WEIGHT_BYTES
    unet_config = {"image_model": "qwen_image", **QwenReferenceConfig().qwen_image.comfy_kwargs()}
    # through supported_models.QwenImage's own state-dict processing, strict: raises on any missing or unexpected key
    tiny = tiny_models.qwen_image_from_state_dict(state, unet_config)
    assert type(tiny.diffusion_model).__name__ == "QwenImageTransformer2DModel"
    loaded = tiny.diffusion_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    with pytest.raises(comfy_host.ComfyHostError, match="missing \\['proj_out.bias'\\]"):
        tiny_models.qwen_image_from_state_dict({k: v for k, v in state.items() if k != "proj_out.bias"}, unet_config)


@requires_comfyui
def test_model_is_comfyuis_qwen_image_and_shares_the_flux_codec(qwen):
    from comfyui_l2p.nodes.architectures import family_of

    assert type(qwen.diffusion_model).__module__ == "comfy.ldm.qwen_image.model"
    assert family_of(qwen.diffusion_model) == "qwen_image"
    flux_codec = load_shared_codec()
    assert torch.equal(qwen.codec.components, flux_codec.components) and qwen.codec.scale == flux_codec.scale
    assert qwen.info["measured"]["train_wall_seconds"] <= 30 * 60


@requires_comfyui
def test_fixed_seed_sample_is_deterministic_and_finite(qwen):
    labels = torch.tensor([2, 8])
    first = sample_classes(qwen, labels, seed=7, steps=20)
    second = sample_classes(qwen, labels, seed=7, steps=20)
    assert first.shape == (2, 1, 64, 64) and torch.isfinite(first).all()
    assert torch.equal(first, second)


@requires_comfyui
@torch.no_grad()
def test_trained_model_denoises_held_out_data(qwen):
    held_out = split(load_digits())[1]
    x0 = qwen.codec.encode(upsample(held_out.images))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    sigma = 0.5
    target = noise - x0
    cond, _ = qwen.conditioning(held_out.labels)
    v = qwen.model_fn((1 - sigma) * x0 + sigma * noise, torch.full((x0.shape[0],), sigma), cond)
    ratio = float(((v - target) ** 2).mean() / min((target ** 2).mean(), ((target - target.mean(0)) ** 2).mean()))
    assert ratio < MAX_DENOISE_RATIO, ratio


@requires_comfyui
def test_samples_look_like_their_class(qwen):
    """50-step CFG samples of class k are nearest (among real-digit class means) to the real mean of class k."""
    train = split(load_digits())[0]
    real = upsample(train.images)
    centroids = torch.stack([real[train.labels == k].mean(0) for k in range(10)])
    labels = torch.arange(10).repeat_interleave(4)
    samples = sample_classes(qwen, labels, seed=3, steps=50)
    distance = ((samples[:, None] - centroids[None]) ** 2).flatten(2).mean(-1)
    accuracy = float((distance.argmin(1) == labels).float().mean())
    assert accuracy >= MIN_CLASS_ACCURACY, accuracy


@requires_comfyui
@torch.no_grad()
def test_model_fn_is_what_comfyuis_model_base_computes(qwen):
    """The benchmark's call convention (5-D latents, timestep = sigma, output = velocity) against ComfyUI's own
    path: supported_models.QwenImage -> model_base.QwenImage.apply_model, which returns x - sigma * output."""
    import tiny_models

    unet_config = {"image_model": "qwen_image", **qwen.config.qwen_image.comfy_kwargs()}
    tiny = tiny_models.qwen_image_from_state_dict(qwen.diffusion_model.state_dict(), unet_config)
    cond, _ = qwen.conditioning(torch.tensor([1, 4, 9]))
    x = torch.randn(3, 16, 8, 8, generator=torch.Generator().manual_seed(11))
    sigma = torch.tensor([0.9, 0.5, 0.1])
    denoised = tiny.patcher.model.apply_model(x.unsqueeze(2), sigma, c_crossattn=cond.context).squeeze(2)
    theirs = (x - denoised) / sigma[:, None, None, None]
    ours = qwen.model_fn(x, sigma, cond)
    # the same module and weights; only the division above rounds differently (measured max difference 1.4e-6)
    assert torch.allclose(theirs, ours, atol=1e-4, rtol=1e-4), float((theirs - ours).abs().max())
