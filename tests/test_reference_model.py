"""The shipped reference model (reference/): it loads, samples deterministically, really denoises held-out data,
follows its class condition, and (with COMFYUI_PATH set) runs identically inside ComfyUI's own Flux class."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from comfy_fixtures import comfy, requires_comfyui  # noqa: F401  (pytest finds fixtures by name)

from comfyui_l2p.reference import euler_sample, flux_sigmas, load_reference
from comfyui_l2p.reference.conditioning import Conditioning
from comfyui_l2p.reference.data import load_digits, split, upsample
from comfyui_l2p.reference.model import CONDITIONER_FILE, TRANSFORMER_FILE, WEIGHTS_DIR
from comfyui_l2p.reference.samples import sample_classes

MAX_WEIGHT_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_reference()


@pytest.fixture(scope="module")
def digits():
    return split(load_digits())


def test_weights_load_and_are_small(model):
    files = [WEIGHTS_DIR / TRANSFORMER_FILE, WEIGHTS_DIR / CONDITIONER_FILE]  # the Qwen reference ships beside
    assert sum(f.stat().st_size for f in files) <= MAX_WEIGHT_BYTES
    n_params = sum(p.numel() for p in model.flux.parameters())
    assert n_params == sum(t.numel() for t in load_file(str(WEIGHTS_DIR / TRANSFORMER_FILE)).values())
    assert model.info["measured"]["train_wall_seconds"] <= 30 * 60


def test_sigma_schedule_is_shifted_and_ends_at_zero():
    sigmas = flux_sigmas(10, shift=3.0)
    assert sigmas.shape == (11,) and sigmas[0] == 1 and sigmas[-1] == 0
    assert torch.all(sigmas[1:] < sigmas[:-1])
    linear = flux_sigmas(10, shift=1.0)
    assert torch.allclose(linear, torch.linspace(1, 0, 11))
    assert torch.all(sigmas[1:-1] > linear[1:-1])  # shift > 1 keeps more steps at high noise


def test_sampler_calls_model_per_stream_and_applies_cfg():
    calls = []
    cond = Conditioning(context=torch.zeros(1, 1, 2), y=torch.zeros(1, 1), stream="cond")
    uncond = Conditioning(context=torch.zeros(1, 1, 2), y=torch.zeros(1, 1), stream="uncond")

    def model_fn(x, sigma, c):  # constant velocities: cond 1, uncond 0 -> guided velocity = cfg_scale
        calls.append((c.stream, float(sigma[0])))
        return torch.full_like(x, 1.0 if c.stream == "cond" else 0.0)

    sigmas = flux_sigmas(4, shift=2.0)
    out = euler_sample(model_fn, torch.zeros(1, 16, 2, 2), sigmas, cond, uncond, cfg_scale=2.5)
    assert [c[0] for c in calls] == ["cond", "uncond"] * 4
    assert [c[1] for c in calls[::2]] == pytest.approx(sigmas[:-1].tolist())
    assert torch.allclose(out, torch.full_like(out, -2.5))  # sum of dsigma = -1, times v = 2.5


def test_codec_round_trip_on_held_out_images(model, digits):
    images = upsample(digits[1].images)
    latents = model.codec.encode(images)
    assert latents.shape == (images.shape[0], 16, 8, 8)
    relative_error = ((model.codec.decode(latents) - images) ** 2).mean() / images.var()
    assert relative_error < 1e-3
    assert 0.5 < latents.std() < 2.0  # the global scale puts latents at about unit variance


def test_fixed_seed_sample_is_deterministic_and_finite(model):
    labels = torch.tensor([0, 5])
    first = sample_classes(model, labels, seed=7, steps=50)
    second = sample_classes(model, labels, seed=7, steps=50)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)
    assert first.shape == (2, 1, 64, 64)


@torch.no_grad()
def test_trained_model_denoises_held_out_data(model, digits):
    held_out = digits[1]
    x0 = model.codec.encode(upsample(held_out.images))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    sigma = 0.5
    target = noise - x0
    cond, _ = model.conditioning(held_out.labels)
    v = model.model_fn((1 - sigma) * x0 + sigma * noise, torch.full((x0.shape[0],), sigma), cond)
    model_mse = ((v - target) ** 2).mean()
    zero_mse = (target**2).mean()
    mean_mse = ((target - target.mean(0, keepdim=True)) ** 2).mean()
    # measured on the shipped weights: model / min(zero, mean) = 0.075 at sigma 0.5 (0.11 / 1.48); 0.5 leaves room
    assert model_mse < 0.5 * min(zero_mse, mean_mse), (float(model_mse), float(zero_mse), float(mean_mse))


def test_class_conditional_samples_look_like_their_class(model, digits):
    """Samples for class k are nearest (among real-digit class means) to the real mean of class k."""
    train = digits[0]
    real = upsample(train.images)
    centroids = torch.stack([real[train.labels == k].mean(0) for k in range(10)])  # (10, 1, 64, 64)
    labels = torch.arange(10).repeat_interleave(4)
    samples = sample_classes(model, labels, seed=3, steps=30)
    distance = ((samples[:, None] - centroids[None]) ** 2).flatten(2).mean(-1)  # (40, 10)
    accuracy = (distance.argmin(1) == labels).float().mean()
    assert accuracy >= 0.8, float(accuracy)  # measured 1.0 (real held-out digits score 0.86 with these centroids)
    per_class_means = samples.reshape(10, 4, -1).mean(1)
    pairwise = torch.cdist(per_class_means, per_class_means)
    assert pairwise[~torch.eye(10, dtype=torch.bool)].min() > 0  # all class means differ


@requires_comfyui
def test_state_dict_runs_identically_in_comfyui(model, comfy):  # noqa: F811  (the fixture of that name)
    """The shipped weights in ComfyUI's own Flux class, loaded the way the host loads a checkpoint (its config's
    state-dict processing: ComfyUI 0.33 renames the QK norms' ``.scale`` to RMSNorm's ``.weight``), give the
    velocity our pure-torch model_fn gives."""
    import tiny_models

    unet_config = {"image_model": "flux", **model.config.flux.comfy_kwargs()}
    comfy_flux = tiny_models.flux_from_state_dict(load_file(str(WEIGHTS_DIR / TRANSFORMER_FILE)), unet_config)
    generator = torch.Generator().manual_seed(11)
    cond, _ = model.conditioning(torch.tensor([1, 4, 9]))
    x = torch.randn(3, 16, 8, 8, generator=generator)
    sigma = torch.tensor([0.9, 0.5, 0.1])
    with torch.no_grad():
        theirs = comfy_flux.diffusion_model(x, sigma, cond.context, y=cond.y)
        ours = model.model_fn(x, sigma, cond)
    assert theirs.shape == ours.shape
    # measured max difference 5.5e-6 on outputs of size ~1 (float32 op order differs); 1e-4 is float noise only
    assert torch.allclose(theirs, ours, atol=1e-4, rtol=1e-4), float((theirs - ours).abs().max())
