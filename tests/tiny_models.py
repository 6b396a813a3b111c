"""Tiny ComfyUI models with seeded random weights, built the way ``comfy/sd.py`` builds a loaded state dict
(``comfy.supported_models`` config -> ``get_model`` -> ``ModelPatcher``): no files, no network, CPU, fp32.

``TinyModel`` is a ComfyUI MODEL plus what a test needs to sample it; ``as_tiny`` describes a ModelPatcher a node
returned. The sizes are data in tests/tiny_specs.py; the hook-point models (SD3, PixArt, LTX) are built in
tests/hook_models.py, the other families in tests/comfy_families.py, all through ``patch_model`` and
``init_weights`` here.

Public API:
    tiny_flux(seed=0, **overrides) / tiny_qwen_image(...) / tiny_hunyuan_video(...) / tiny_model(family, ...)
    model_skeleton(family, *, dtype, device, **overrides)      the model on any device, weights not drawn
    flux_from_state_dict(state_dict, unet_config) / qwen_image_from_state_dict(...)
    host_unet_config(family, config) -> dict                   config completed for the host's class
    as_tiny(model_patcher_or_tiny) -> TinyModel / patcher_of(model) -> ModelPatcher
    init_weights(module, seed) / patch_model(model) -> ModelPatcher
"""
from __future__ import annotations

import dataclasses
import math
import types
from typing import Any, Mapping

import torch

from comfy_host import ComfyHostError, bootstrap
from tiny_specs import TINY_CONFIGS, CondSpec, Family, HookModel, cond_spec, kinds_by_base_class


@dataclasses.dataclass(frozen=True)
class TinyModel:
    """A ComfyUI MODEL (``ModelPatcher``) plus what a test needs to sample it."""

    family: Family | HookModel
    patcher: Any  # comfy.model_patcher.ModelPatcher
    unet_config: Mapping[str, Any]
    cond: CondSpec
    latent_channels: int
    latent_dims: int  # ComfyUI's latent_format.latent_dimensions: 2 -> (B, C, H, W), 3 -> (B, C, T, H, W)

    @property
    def diffusion_model(self) -> torch.nn.Module:
        return self.patcher.model.diffusion_model

    def latent_shape(self, batch: int, height: int = 8, width: int = 8, frames: int = 1) -> tuple[int, ...]:
        """The latent shape ComfyUI samples this model on (height/width in latent pixels).

        Qwen-Image (Wan21 latent format) is 3-D with T=1: ComfyUI unsqueezes a 4-D EmptyLatentImage to it.
        """
        if self.latent_dims == 3:
            return (batch, self.latent_channels, frames, height, width)
        return (batch, self.latent_channels, height, width)


def _host_models():
    """reference/comfy_models.py: the host's unet_config fields and its state-dict processing. Imported when a model
    is built, so bootstrap alone needs nothing of the pack; tests/conftest.py makes the pack importable as
    comfyui_l2p, also where the harness runs outside pytest (a subprocess, scripts/)."""
    import conftest  # noqa: F401  (a no-op under pytest, which imported it first)
    from comfyui_l2p.reference import comfy_models

    return comfy_models


def host_unet_config(family: Family, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` completed for the host's class (fields a newer ComfyUI requires, switched off); ComfyHostError
    naming the host when it does not fit."""
    comfy_models = _host_models()
    image_model = config.get("image_model") or TINY_CONFIGS[family]["image_model"]
    try:
        return comfy_models.host_unet_config(image_model, config)
    except comfy_models.HostModelError as error:
        raise ComfyHostError(str(error)) from error


def _load_like_host(model_config, module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    comfy_models = _host_models()
    try:
        comfy_models.load_state_dict_like_host(model_config, module, state_dict)
    except comfy_models.HostModelError as error:
        raise ComfyHostError(str(error)) from error
    module.float()


def _build(family: Family, unet_config: Mapping[str, Any], dtype: torch.dtype = torch.float32,
           device: torch.device | None = None) -> TinyModel:
    """config -> get_model -> ModelPatcher, as comfy/sd.py load_diffusion_model_state_dict does. The parameters
    are allocated on ``device`` (default: ComfyUI's offload device, the CPU here), uninitialised."""
    comfy = bootstrap()
    unet_config = host_unet_config(family, unet_config)
    config_cls = getattr(comfy.supported_models, family.value)
    if not config_cls.matches(dict(unet_config)):
        raise ComfyHostError(
            f"unet_config does not match supported_models.{family.value}: it needs {config_cls.unet_config}, "
            f"found {dict(unet_config)}"
        )
    model_config = config_cls(dict(unet_config))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, "", device=device)
    if device is None:
        model = model.to(comfy.model_management.unet_offload_device())
    return as_tiny(patch_model(model))


def patch_model(model: Any) -> Any:
    """A ModelPatcher of a ``comfy.model_base`` model, on ComfyUI's load and offload devices, as comfy/sd.py makes
    one."""
    comfy = bootstrap()
    return comfy.model_patcher.ModelPatcher(
        model,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )


def patcher_of(model: Any) -> Any:
    """The ModelPatcher of a TinyModel, of another tiny model holding one (``comfy_families.FamilyModel``), or
    ``model`` itself."""
    return model.patcher if hasattr(model, "patcher") else model


def as_tiny(model: Any) -> TinyModel:
    """``model`` as a TinyModel: a TinyModel is returned as is; a ModelPatcher of a FLUX / Qwen-Image /
    HunyuanVideo model (e.g. the clone a node returned) is described from its model_base class and unet_config."""
    if isinstance(model, TinyModel):
        return model
    base = getattr(model, "model", None)
    families = kinds_by_base_class()
    family = families.get(type(base).__name__)
    if family is None:
        raise ComfyHostError(
            f"expected a TinyModel or a ModelPatcher of {sorted(families)}, found {type(model).__name__} "
            f"wrapping {type(base).__name__}"
        )
    unet_config = {k: v for k, v in base.model_config.unet_config.items() if k != "dtype"}
    latent_format = base.latent_format
    return TinyModel(
        family=family,
        patcher=model,
        unet_config=types.MappingProxyType(unet_config),
        cond=cond_spec(family, unet_config),
        latent_channels=latent_format.latent_channels,
        latent_dims=latent_format.latent_dimensions,
    )


_NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm)


@torch.no_grad()
def init_weights(module: torch.nn.Module, seed: int, bias_std: float = 0.1) -> None:
    """Seeded random init that keeps activations O(1) and no output identically zero.

    ComfyUI's ops skip weight init (``disable_weight_init``: parameters hold whatever memory they got), and real
    checkpoints zero-init nothing we can rely on, so every parameter is set here, in ``named_parameters`` order
    from one generator: matrices/kernels ~ N(0, 1/fan_in) (unit-variance outputs for unit-variance inputs),
    norm gains (norm modules' weights and QK-norm ``scale``) = 1, other vectors (biases) ~ N(0, bias_std^2).
    In particular the final layers (adaLN modulation and output projection) are random, not zero.
    """
    device = next(module.parameters()).device  # drawn where the parameters live: a 12B model is not drawn on a CPU
    gen = torch.Generator(device=device).manual_seed(seed)
    owners = {name: mod for name, mod in module.named_modules()}
    for name, param in module.named_parameters():
        owner = owners[name.rpartition(".")[0]] if "." in name else module
        leaf = name.rpartition(".")[2]
        if param.ndim >= 2:
            fan_in = math.prod(param.shape[1:])
            value = torch.randn(param.shape, generator=gen, device=device) / math.sqrt(fan_in)
        elif leaf == "scale" or (isinstance(owner, _NORM_TYPES) and leaf == "weight") or "Norm" in type(owner).__name__:
            value = torch.ones(param.shape, device=device) if leaf != "bias" else torch.zeros(param.shape, device=device)
        else:
            value = torch.randn(param.shape, generator=gen, device=device) * bias_std
        param.copy_(value.to(param.dtype))


def tiny_model(family: Family, seed: int = 0, *, dtype: torch.dtype = torch.float32,
               device: torch.device | None = None, **overrides: Any) -> TinyModel:
    """A tiny ``family`` model, random weights from ``seed``; ``overrides`` replace unet_config entries (so any
    size: scripts/gpu_timing.py builds FLUX.1-dev's this way). ``dtype`` / ``device``: the parameters' (default
    float32 on ComfyUI's offload device, the CPU)."""
    unet_config = {**TINY_CONFIGS[family], **overrides}
    tiny = _build(family, unet_config, dtype, device)
    init_weights(tiny.diffusion_model, seed)
    return tiny


def model_skeleton(family: Family, *, dtype: torch.dtype, device: torch.device, **overrides: Any) -> TinyModel:
    """``tiny_model``'s model without its weights drawn: on the meta device, a full-size model's shape for free."""
    return _build(family, {**TINY_CONFIGS[family], **overrides}, dtype, device)


def tiny_flux(seed: int = 0, **overrides: Any) -> TinyModel:
    """Tiny guidance-distilled FLUX (supported_models.Flux); 4-D latents (B, 16, H, W)."""
    return tiny_model(Family.FLUX, seed, **overrides)


def tiny_qwen_image(seed: int = 0, **overrides: Any) -> TinyModel:
    """Tiny Qwen-Image (supported_models.QwenImage); ComfyUI samples it on 5-D latents (B, 16, 1, H, W)."""
    return tiny_model(Family.QWEN_IMAGE, seed, **overrides)


def tiny_hunyuan_video(seed: int = 0, **overrides: Any) -> TinyModel:
    """Tiny HunyuanVideo (supported_models.HunyuanVideo); 5-D video latents (B, 16, T, H, W)."""
    return tiny_model(Family.HUNYUAN_VIDEO, seed, **overrides)


def flux_from_state_dict(state_dict: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> TinyModel:
    """A FLUX ModelPatcher whose ``comfy.ldm.flux.model.Flux`` holds ``state_dict``.

    ``unet_config``: the FLUX.1 sizes (FluxParams as ComfyUI 0.3.64 has them) plus ``image_model: "flux"``; fields a
    newer host requires are completed (``host_unet_config``). ComfyUI picks the config class from it as
    ``model_detection.model_config_from_unet_config`` does (guidance_embed True -> Flux, False -> FluxSchnell,
    which samples with shift 1). The state dict goes through that config's ``process_unet_state_dict``, as ComfyUI
    loads a checkpoint (so FLUX's QK-norm ``.scale`` keys load into a host whose norm is RMSNorm ``.weight``);
    keys as the module names them or with a checkpoint's ``model.diffusion_model.`` / ``diffusion_model.`` prefix.
    Loading is strict: ComfyUI itself only logs missing keys, a test must not.
    """
    comfy = bootstrap()
    complete = host_unet_config(Family.FLUX, unet_config)
    comfy_models = _host_models()
    try:
        model_config = comfy_models.host_model_config(complete)
    except comfy_models.HostModelError as error:
        raise ComfyHostError(str(error)) from error
    model = model_config.get_model({}, "").to(comfy.model_management.unet_offload_device())
    _load_like_host(model_config, model.diffusion_model, state_dict)
    return as_tiny(patch_model(model))


def qwen_image_from_state_dict(state_dict: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> TinyModel:
    """A Qwen-Image ModelPatcher (supported_models.QwenImage) whose transformer holds ``state_dict``, loaded
    strictly through the config's ``process_unet_state_dict`` like ``flux_from_state_dict``.

    ``unet_config``: QwenImageTransformer2DModel's keyword arguments plus ``image_model: "qwen_image"``.
    """
    tiny = _build(Family.QWEN_IMAGE, unet_config)
    _load_like_host(tiny.patcher.model.model_config, tiny.diffusion_model, state_dict)
    return tiny
