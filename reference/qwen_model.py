"""The Qwen-Image reference model: ComfyUI's own QwenImageTransformer2DModel (imported from COMFYUI_PATH) at a
small size, trained on the same digits, latent codec and recipe as the FLUX reference, and its files.

Files under reference/weights/ (written by scripts/train_reference_qwen.py):
  qwen_digits.safetensors       the transformer's (EMA) state dict, keys exactly as ComfyUI's
                                QwenImageTransformer2DModel names them, float32 (loads with strict=True)
  qwen_conditioner.safetensors  conditioner.context.weight (class incl. null -> context tokens)
  qwen_reference.json           QwenReferenceConfig, training settings and measured numbers
The latent codec is the FLUX reference's (conditioner_codec.safetensors): both models share one latent space.

The object `load_qwen_reference()` returns has the interface the benchmark harness uses for `ReferenceModel`
(model_fn, conditioning, latent_noise, codec, diffusion_model).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .comfy_import import comfy_modules, comfyui_path
from .comfy_models import host_class, host_model_config, host_unet_config, load_state_dict_like_host
from .conditioning import ClassConditioner, Conditioning
from .latent_codec import PatchPCACodec
from .model import CONDITIONER_FILE, LATENT_SIZE, WEIGHTS_DIR
from .qwen_config import QwenImageConfig, QwenReferenceConfig

QWEN_TRANSFORMER_FILE = "qwen_digits.safetensors"
QWEN_CONDITIONER_FILE = "qwen_conditioner.safetensors"
QWEN_CONFIG_FILE = "qwen_reference.json"
IMAGE_MODEL = "qwen_image"  # the unet_config key ComfyUI's model detection gives Qwen-Image


def build_qwen_image(config: QwenImageConfig) -> nn.Module:
    """ComfyUI's QwenImageTransformer2DModel at `config`'s size, float32, CPU, with PyTorch's default init.

    ComfyUI's ops (`disable_weight_init`) skip parameter init, since checkpoints overwrite it; a model trained
    from scratch needs one, so every torch layer gets its own `reset_parameters` (torch.nn.Linear: Kaiming-uniform
    weights and bias; RMSNorm gains 1), drawn from the global torch RNG (seed it first).
    """
    (ops,) = comfy_modules("comfy.ops")
    module = host_class(IMAGE_MODEL)(**host_unet_config(IMAGE_MODEL, config.comfy_kwargs()), dtype=torch.float32,
                                     operations=ops.disable_weight_init)
    for sub in module.modules():
        torch_class = next((k for k in type(sub).__mro__ if k.__module__.startswith("torch.nn")
                            and "reset_parameters" in k.__dict__), None)
        if torch_class is not None:
            torch_class.reset_parameters(sub)
    return module


@dataclass
class QwenReferenceModel:
    config: QwenReferenceConfig
    diffusion_model: nn.Module  # comfy.ldm.qwen_image.model.QwenImageTransformer2DModel
    conditioner: ClassConditioner
    codec: PatchPCACodec
    info: dict  # the JSON's training settings and measurements
    family = "qwen_image"  # the predictor-file family (nodes/architectures.py)

    def model_fn(self, x: Tensor, sigma: Tensor, cond: Conditioning) -> Tensor:
        """ComfyUI's Qwen-Image forward: velocity (B, 16, h, w) for x (B, 16, h, w), sigma (B,) in [0, 1].

        ComfyUI samples Qwen-Image on 5-D latents (B, 16, 1, h, w) and, its model sampling being flow with
        multiplier 1.0, passes the timestep as sigma itself; the module scales it by 1000 internally.
        """
        return self.diffusion_model(x.unsqueeze(2), sigma, cond.context).squeeze(2)

    @torch.no_grad()
    def conditioning(self, labels: Tensor) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) streams for labels (B,) int64."""
        return self.conditioner(labels, stream="cond"), self.conditioner.null(labels.shape[0], stream="uncond")

    def latent_noise(self, batch: int, seed: int) -> Tensor:
        """(B, 16, 8, 8) standard normal noise from a seeded CPU generator (as the FLUX reference's)."""
        generator = torch.Generator().manual_seed(seed)
        channels = self.config.qwen_image.latent_channels
        return torch.randn(batch, channels, LATENT_SIZE, LATENT_SIZE, generator=generator)


def load_shared_codec(directory: Path = WEIGHTS_DIR) -> PatchPCACodec:
    """The FLUX reference's fitted PatchPCACodec, so both reference models share one latent space."""
    path = directory / CONDITIONER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"load_shared_codec: missing {path}; it ships with the FLUX reference "
                                f"(retrain with `python3 scripts/train_reference.py`)")
    return PatchPCACodec.from_tensors(load_file(str(path)))


def save_qwen_reference(model: QwenReferenceModel, directory: Path = WEIGHTS_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"qwen_reference_config": json.dumps(model.config.to_dict())}
    state = {k: v.detach().float().contiguous() for k, v in model.diffusion_model.state_dict().items()}
    save_file(state, str(directory / QWEN_TRANSFORMER_FILE), metadata=metadata)
    rest = {f"conditioner.{k}": v.detach().float().contiguous() for k, v in model.conditioner.state_dict().items()}
    save_file(rest, str(directory / QWEN_CONDITIONER_FILE), metadata=metadata)
    document = {"config": model.config.to_dict(), **model.info}
    (directory / QWEN_CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")


def load_qwen_reference(directory: Path = WEIGHTS_DIR) -> QwenReferenceModel:
    """Load the shipped Qwen-Image reference (eval mode, float32, CPU); needs COMFYUI_PATH."""
    comfyui_path()  # the checkout is needed whatever else is missing: say so first
    paths = [directory / name for name in (QWEN_CONFIG_FILE, QWEN_TRANSFORMER_FILE, QWEN_CONDITIONER_FILE)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"load_qwen_reference: missing {missing}; train them with "
            f"`COMFYUI_PATH=/path/to/ComfyUI python3 scripts/train_reference_qwen.py`"
        )
    document = json.loads(paths[0].read_text())
    config = QwenReferenceConfig.from_dict(document["config"])
    module = build_qwen_image(config.qwen_image)
    model_config = host_model_config(host_unet_config(IMAGE_MODEL, config.qwen_image.comfy_kwargs()))
    load_state_dict_like_host(model_config, module, load_file(str(paths[1])))
    conditioner = ClassConditioner(config.conditioner)
    rest = load_file(str(paths[2]))
    conditioner.load_state_dict({k[len("conditioner."):]: v for k, v in rest.items() if k.startswith("conditioner.")},
                                strict=True)
    info = {k: v for k, v in document.items() if k != "config"}
    return QwenReferenceModel(config=config, diffusion_model=module.eval(), conditioner=conditioner.eval(),
                              codec=load_shared_codec(directory), info=info)
