"""The shipped reference model: transformer + class conditioner + latent codec, and their files.

Files under reference/weights/ (written by scripts/train_reference.py):
  flux_digits.safetensors        the transformer's (EMA) state dict, keys exactly as ComfyUI's Flux expects
                                 (img_in.weight, double_blocks.0..., final_layer...), float32
  conditioner_codec.safetensors  conditioner.context.weight, conditioner.pooled.weight, codec.*
  reference.json                 ReferenceConfig, codec description, training settings and measured numbers
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from .conditioning import ClassConditioner, Conditioning
from .config import ReferenceConfig
from .flux import Flux
from .latent_codec import PatchPCACodec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TRANSFORMER_FILE = "flux_digits.safetensors"
CONDITIONER_FILE = "conditioner_codec.safetensors"
CONFIG_FILE = "reference.json"
LATENT_SIZE = 8  # latents are (16, 8, 8): 64x64 images, 16 image tokens of 2x2 latent patches


@dataclass
class ReferenceModel:
    config: ReferenceConfig
    flux: Flux
    conditioner: ClassConditioner
    codec: PatchPCACodec
    info: dict  # the JSON's training settings and measurements

    family = "flux"  # the predictor-file family: FLUX.1-dev's architecture (nodes/architectures.py)

    @property
    def diffusion_model(self) -> Flux:
        """The transformer module (the name ComfyUI's BaseModel gives it; the benchmark reads this one)."""
        return self.flux

    def model_fn(self, x: Tensor, sigma: Tensor, cond: Conditioning) -> Tensor:
        """The plain transformer call (the `ModelFn` the sampler takes): velocity (B, 16, h, w)."""
        return self.flux(x, sigma, cond.context, cond.y)

    @torch.no_grad()
    def conditioning(self, labels: Tensor) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) streams for labels (B,) int64."""
        return self.conditioner(labels, stream="cond"), self.conditioner.null(labels.shape[0], stream="uncond")

    def latent_noise(self, batch: int, seed: int) -> Tensor:
        """(B, 16, 8, 8) standard normal noise from a seeded CPU generator."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch, self.config.flux.in_channels, LATENT_SIZE, LATENT_SIZE, generator=generator)


def save_reference(model: ReferenceModel, directory: Path = WEIGHTS_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"reference_config": json.dumps(model.config.to_dict())}
    flux_state = {k: v.detach().float().contiguous() for k, v in model.flux.state_dict().items()}
    save_file(flux_state, str(directory / TRANSFORMER_FILE), metadata=metadata)
    rest = {f"conditioner.{k}": v.detach().float().contiguous() for k, v in model.conditioner.state_dict().items()}
    rest.update(model.codec.tensors())
    save_file(rest, str(directory / CONDITIONER_FILE), metadata=metadata)
    document = {"config": model.config.to_dict(), **model.info}
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")


def load_reference(directory: Path = WEIGHTS_DIR) -> ReferenceModel:
    """Load the shipped model (eval mode, float32, CPU)."""
    paths = [directory / name for name in (CONFIG_FILE, TRANSFORMER_FILE, CONDITIONER_FILE)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"load_reference: missing {missing}; train them with `python3 scripts/train_reference.py`"
        )
    document = json.loads(paths[0].read_text())
    config = ReferenceConfig.from_dict(document["config"])
    flux = Flux(config.flux)
    flux.load_state_dict(load_file(str(paths[1])), strict=True)
    rest = load_file(str(paths[2]))
    conditioner = ClassConditioner(config.conditioner)
    conditioner.load_state_dict({k[len("conditioner."):]: v for k, v in rest.items() if k.startswith("conditioner.")},
                                strict=True)
    codec = PatchPCACodec.from_tensors(rest)
    info = {k: v for k, v in document.items() if k != "config"}
    return ReferenceModel(config=config, flux=flux.eval(), conditioner=conditioner.eval(), codec=codec, info=info)
