"""Tiny models of the hook-point tests, built from tests/tiny_specs.py's ``HOOK_MODEL_SPECS``: the ones that reach
L2P only through APPLY_MODEL (SD3, PixArt, a Nunchaku-like replacement of ``diffusion_model``) and the LTX models
(``transformer_options`` sixth of seven positional arguments; LTX-2's list latents).

Public API:
    host_has(kind) -> bool / tiny_hook_model(kind, seed=0) -> TinyModel
    hook_model_latent(tiny, batch=1) / latent_parts(latent) -> list of tensors
    nunchaku_like_flux(seed=0) -> TinyModel
"""
from __future__ import annotations

import torch

from comfy_host import ComfyHostError, bootstrap, comfyui_version
from tiny_models import TinyModel, as_tiny, init_weights, patch_model, tiny_flux
from tiny_specs import HOOK_MODEL_SPECS, HookModel


def host_has(kind: HookModel) -> bool:
    """Whether the host's ComfyUI has this model (LTX-2 arrived after 0.3.64)."""
    return getattr(bootstrap().supported_models, kind.value, None) is not None


def tiny_hook_model(kind: HookModel, seed: int = 0) -> TinyModel:
    """A tiny ``kind`` model with seeded random weights; ComfyHostError when the host has no such model."""
    comfy = bootstrap()
    spec = HOOK_MODEL_SPECS[kind]
    config_cls = getattr(comfy.supported_models, kind.value, None)
    if config_cls is None:
        raise ComfyHostError(f"ComfyUI {comfyui_version(comfy.path)} has no supported_models.{kind.value}")
    if not config_cls.matches(dict(spec.unet_config)):
        raise ComfyHostError(f"{dict(spec.unet_config)} does not match supported_models.{kind.value}")
    model_config = config_cls(dict(spec.unet_config))
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, "").to(comfy.model_management.unet_offload_device())
    init_weights(model.diffusion_model, seed)
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    with torch.no_grad():
        for name in spec.random_buffers:
            buffer = model.diffusion_model.get_buffer(name)
            buffer.copy_(torch.randn(buffer.shape, generator=gen) * 0.1)
    return as_tiny(patch_model(model))


def hook_model_latent(tiny: TinyModel, batch: int = 1):
    """Zeros in the model's latent layout: a tensor, or a NestedTensor of the parts (LTX-2's video and audio)."""
    shapes = [(batch, *shape[1:]) for shape in HOOK_MODEL_SPECS[tiny.family].latent_shapes]
    if len(shapes) == 1:
        return torch.zeros(shapes[0])
    from comfy.nested_tensor import NestedTensor  # ComfyUI 0.33 and later, with the models that need it

    return NestedTensor([torch.zeros(shape) for shape in shapes])


def latent_parts(latent) -> list[torch.Tensor]:
    """A sampler's output as a list of tensors (one for a tensor, the parts of a NestedTensor)."""
    return list(latent.unbind()) if getattr(latent, "is_nested", False) else [latent]


class NunchakuLikeFlux(torch.nn.Module):
    """What Nunchaku's FLUX loader does to a model, with ComfyUI's own transformer inside: its own class in place of
    ``diffusion_model``, a ``dtype`` attribute, ``forward(x, timestep, context, y, guidance, control=None,
    transformer_options={}, **kwargs)`` that runs the transformer directly, never through the DIFFUSION_MODEL
    wrapper (nunchaku-tech/ComfyUI-nunchaku, wrappers/flux.py, ComfyFluxWrapper)."""

    def __init__(self, flux: torch.nn.Module) -> None:
        super().__init__()
        self.model = flux
        self.dtype = flux.dtype

    def forward(self, x, timestep, context, y=None, guidance=None, control=None, transformer_options={}, **kwargs):
        return self.model._forward(x, timestep, context, y=y, guidance=guidance, control=control,
                                   transformer_options=transformer_options, **kwargs)


def nunchaku_like_flux(seed: int = 0) -> TinyModel:
    """A tiny FLUX whose ``diffusion_model`` is replaced the way Nunchaku replaces it."""
    tiny = tiny_flux(seed=seed)
    tiny.patcher.model.diffusion_model = NunchakuLikeFlux(tiny.patcher.model.diffusion_model)
    return tiny
