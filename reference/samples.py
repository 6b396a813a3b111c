"""The sample grid that shows the reference model works: one row per class, fixed seeds."""
from __future__ import annotations

from pathlib import Path

import torch

from .image_grid import save_grid
from .model import ReferenceModel
from .sampling import euler_sample, flux_sigmas

SAMPLES_PATH = Path(__file__).resolve().parent / "samples.png"
DEFAULT_STEPS = 50
DEFAULT_SHIFT = 3.0
DEFAULT_CFG = 3.0


@torch.no_grad()
def sample_classes(model: ReferenceModel, labels: torch.Tensor, seed: int, steps: int = DEFAULT_STEPS,
                   shift: float = DEFAULT_SHIFT, cfg_scale: float = DEFAULT_CFG) -> torch.Tensor:
    """Decoded images (B, 1, 64, 64) in about [-1, 1] for labels (B,), noise from `seed`."""
    cond, uncond = model.conditioning(labels)
    latents = euler_sample(model.model_fn, model.latent_noise(labels.shape[0], seed), flux_sigmas(steps, shift),
                           cond, uncond, cfg_scale)
    return model.codec.decode(latents)


def render_sample_grid(model: ReferenceModel, path: Path = SAMPLES_PATH, per_class: int = 8, seed: int = 0) -> Path:
    classes = model.config.conditioner.num_classes
    labels = torch.arange(classes).repeat_interleave(per_class)
    return save_grid(sample_classes(model, labels, seed), rows=classes, path=path)
