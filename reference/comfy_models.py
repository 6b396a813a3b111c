"""ComfyUI's own diffusion-model classes at a chosen size, configured and loaded the way the host at COMFYUI_PATH
does it, whichever release that is.

ComfyUI's model classes change between releases (seen from 0.3.64 to 0.33): `FluxParams` gained the required
`txt_ids_dims` and optional Flux 2 / Ovis fields, `HunyuanVideoParams` three required HunyuanVideo 1.5 fields,
Qwen-Image's constructor lost `guidance_embeds`, and FLUX's QK norm became torch's RMSNorm, whose gain a
checkpoint's `.scale` key is renamed to on load (`supported_models.Flux.process_unet_state_dict`). So nothing here
hard-codes one release's argument list:

- `host_unet_config(image_model, config)`: `config` completed with what the host's class requires and `config`
  does not state, from `HOST_MODELS`: the values ComfyUI's model detection writes for the family's original
  release (FLUX.1, HunyuanVideo 1.0), i.e. the later features switched off. Keys the host's class does not take,
  and required ones nobody knows a value for, are refused with the host's version in the message.
- `host_model_config(unet_config)`: the `supported_models` config ComfyUI picks for it (model detection).
- `load_state_dict_like_host(model_config, module, state_dict)`: the state dict through the config's own
  `process_unet_state_dict`, as `model_base.BaseModel.load_model_weights` does, then loaded strictly (ComfyUI
  only logs missing keys; a reference model or a test must not run half-loaded).
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from .comfy_import import comfy_modules, comfyui_path, comfyui_version


class HostModelError(ValueError):
    """A config or state dict that does not fit the host's model class."""


@dataclass(frozen=True)
class HostModel:
    """Where ComfyUI defines one family's transformer and what a config must say to build its original release."""

    module: str  # the Python module of the transformer class
    class_name: str
    params: str | None  # the dataclass the constructor builds from **kwargs (FluxParams); None: its own keywords
    original_release: Mapping[str, Any]  # fields later hosts made required -> the value that switches them off


HOST_MODELS: Mapping[str, HostModel] = {
    # model_detection.py writes txt_ids_dims [] for FLUX.1 ([3] for Flux 2, [1, 2] for Ovis)
    "flux": HostModel("comfy.ldm.flux.model", "Flux", "FluxParams", {"txt_ids_dims": []}),
    # HunyuanVideo 1.0: no cond-type embedding, no vision input, meanflow averaged (model_detection.py)
    "hunyuan_video": HostModel("comfy.ldm.hunyuan_video.model", "HunyuanVideo", "HunyuanVideoParams",
                               {"use_cond_type_embedding": False, "vision_in_dim": None, "meanflow_sum": False}),
    "qwen_image": HostModel("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel", None, {}),
}
CONSTRUCTION_ONLY = frozenset({"self", "dtype", "device", "operations"})  # not part of a unet_config
CHECKPOINT_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def host_model(image_model: str) -> HostModel:
    if image_model not in HOST_MODELS:
        raise HostModelError(f"image_model {image_model!r} is not one of {sorted(HOST_MODELS)} (reference/comfy_models.py)")
    return HOST_MODELS[image_model]


def host_class(image_model: str) -> type[torch.nn.Module]:
    """The host's transformer class for ``image_model``."""
    spec = host_model(image_model)
    (module,) = comfy_modules(spec.module)
    return getattr(module, spec.class_name)


def host_fields(image_model: str) -> tuple[frozenset[str], frozenset[str]]:
    """(required, accepted) unet_config keys of the host's class: its params dataclass's fields and its
    constructor's own keywords (image_model, final_layer, ...)."""
    spec = host_model(image_model)
    (module,) = comfy_modules(spec.module)
    required: set[str] = set()
    accepted: set[str] = set()
    for name, parameter in inspect.signature(getattr(module, spec.class_name).__init__).parameters.items():
        if name in CONSTRUCTION_ONLY or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        accepted.add(name)
        if parameter.default is parameter.empty:
            required.add(name)
    if spec.params is not None:
        for field in dataclasses.fields(getattr(module, spec.params)):
            accepted.add(field.name)
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                required.add(field.name)
    return frozenset(required), frozenset(accepted)


def host_unet_config(image_model: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (the family's sizes, keys as the host names them) as the host's complete unet_config."""
    spec = host_model(image_model)
    if config.get("image_model", image_model) != image_model:
        raise HostModelError(f"config says image_model {config['image_model']!r}, expected {image_model!r}")
    required, accepted = host_fields(image_model)
    unet_config = {**{k: v for k, v in spec.original_release.items() if k in required}, **config,
                   "image_model": image_model}
    where = f"ComfyUI {comfyui_version()} ({comfyui_path()}) {spec.module}.{spec.params or spec.class_name}"
    unknown = sorted(set(unet_config) - accepted)
    missing = sorted(required - set(unet_config))
    if unknown or missing:
        raise HostModelError(
            f"{where}: the config does not fit: missing {missing}, unknown {unknown}. Give the missing sizes; for a "
            f"field a newer ComfyUI made required, add the value that switches it off to HOST_MODELS in "
            f"reference/comfy_models.py."
        )
    return unet_config


def host_model_config(unet_config: Mapping[str, Any]):
    """The supported_models config ComfyUI picks for a complete unet_config (model_detection), float32."""
    (model_detection,) = comfy_modules("comfy.model_detection")
    model_config = model_detection.model_config_from_unet_config(dict(unet_config))
    if model_config is None or model_config.unet_config.get("image_model") != unet_config.get("image_model"):
        raise HostModelError(f"ComfyUI {comfyui_version()} has no model config for {dict(unet_config)}")
    model_config.set_inference_dtype(torch.float32, None)
    return model_config


def load_state_dict_like_host(model_config, module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ``state_dict`` (keys as the module names them, or with a checkpoint's diffusion-model prefix) into
    ``module`` through ``model_config.process_unet_state_dict``, strictly."""
    stripped = {}
    for key, value in state_dict.items():
        for prefix in CHECKPOINT_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        stripped[key] = value
    processed = model_config.process_unet_state_dict(stripped)
    missing, unexpected = module.load_state_dict(processed, strict=False)
    if missing or unexpected:
        raise HostModelError(
            f"state dict does not fit ComfyUI {comfyui_version()}'s {type(module).__module__}.{type(module).__name__}"
            f"({dict(model_config.unet_config)}): missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
