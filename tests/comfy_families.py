"""Tiny models of every family ComfyUI drives through its DIFFUSION_MODEL wrapper, built from ComfyUI's own classes
(the table, as data, is tests/family_specs.py), sampled through the KSampler / KSamplerAdvanced bodies.

The model is built the way ``comfy/sd.py`` builds a loaded checkpoint (config -> ``get_model`` -> ``ModelPatcher``),
fp32 on the CPU, with seeded random weights (``tiny_models.init_weights``). The config is instantiated directly, not
through ``model_detection`` matching: some configs match on a real size (Z-Image's ``dim`` 3840), which a tiny model
does not have, yet it must run as that config's model (its model_base class, sampling settings, latent format).
Entries a newer ComfyUI added to a class (``optional``) are passed only where the host's class takes them; a spec
whose config the host lacks is skipped with the host named.

Public API:
    SPECS: tuple[TinySpec, ...]            every family, in table order (family_specs.py)
    spec(key) -> TinySpec
    host_has(spec) -> str | None           None when the host has the config, else why not
    build(spec, seed=0) -> FamilyModel     ComfyUI MODEL + latent shape + conditioning
    FamilyModel.conditioning(seed, text_len=None) -> CONDITIONING
    sample(model, *, steps, cfg, seed, ...) -> latent       the KSampler body (nodes.common_ksampler)
    sample_advanced(model, *, steps, start, end, ...)       the KSamplerAdvanced body (start_at_step / end_at_step)
    apply_node(node_cls, model, **inputs) -> MODEL          a pack node, inputs not given at their schema defaults
    reports(patched) -> list of RunReport
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

import torch

import comfy_host
import comfy_sampling
import tiny_models
from family_specs import SPECS, CondRecipe, TinySpec, randn, spec  # noqa: F401  (re-exported)


# ------------------------------------------------------------------------------------------------ build
def host_has(tiny: TinySpec) -> str | None:
    """None when the host defines the spec's config class, else the reason to skip (host named)."""
    comfy = comfy_host.bootstrap()
    if getattr(comfy.supported_models, tiny.config, None) is None:
        return f"{comfy_host.host_line()}: no comfy.supported_models.{tiny.config} ({tiny.key} is newer)"
    return None


def _family_class(tiny: TinySpec) -> type:
    from comfyui_l2p.nodes.architectures import FAMILIES

    path = next(f.model_class for f in FAMILIES if f.name == tiny.family)
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _accepted_fields(cls: type) -> set[str]:
    """The unet_config keys ``cls`` takes: its constructor's keywords, and for classes that pass **kwargs on to a
    params dataclass (FluxParams, HunyuanVideoParams, ...), that dataclass's fields, through the class's bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        names |= {n for n, p in inspect.signature(init).parameters.items()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        module = importlib.import_module(klass.__module__)
        for value in vars(module).values():
            if isinstance(value, type) and value.__name__.endswith("Params") and dataclasses.is_dataclass(value):
                names |= {f.name for f in dataclasses.fields(value)}
    return names


@dataclasses.dataclass(frozen=True)
class FamilyModel:
    """A tiny model of one family: the ComfyUI MODEL and what sampling it needs."""

    spec: TinySpec
    patcher: Any  # comfy.model_patcher.ModelPatcher

    @property
    def diffusion_model(self) -> torch.nn.Module:
        return self.patcher.model.diffusion_model

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, *self.spec.latent)

    def conditioning(self, seed: int, text_len: int | None = None) -> list:
        """A CONDITIONING list [[context, {extras}]] like the family's text encoder and conditioning nodes give."""
        recipe = self.spec.cond
        gen = torch.Generator(device="cpu").manual_seed(seed)
        context = randn(gen, 1, text_len or recipe.text_len, recipe.context_dim)
        # CLIPTextEncode always sets pooled_output, None for encoders without one (T5, Gemma, Qwen, ...)
        pooled = None if recipe.pooled_dim is None else randn(gen, 1, recipe.pooled_dim)
        extras: dict[str, Any] = {"pooled_output": pooled}
        if recipe.guidance is not None:
            extras["guidance"] = recipe.guidance
        if recipe.extras is not None:
            extras.update(recipe.extras(gen, self.latent_shape(1), context.shape[1]))
        return [[context, extras]]


def build(tiny: TinySpec, seed: int = 0) -> FamilyModel:
    """The tiny model of ``tiny`` on the host at COMFYUI_PATH (ComfyHostError when the host lacks the config)."""
    comfy = comfy_host.bootstrap()
    reason = host_has(tiny)
    if reason is not None:
        raise comfy_host.ComfyHostError(reason)
    accepted = _accepted_fields(_family_class(tiny))
    unet_config = {**tiny.unet_config, **{k: v for k, v in tiny.optional.items() if k in accepted}}
    model_config = getattr(comfy.supported_models, tiny.config)(unet_config)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, "").to(comfy.model_management.unet_offload_device())
    tiny_models.init_weights(model.diffusion_model, seed)
    return FamilyModel(tiny, tiny_models.patch_model(model))


# ------------------------------------------------------------------------------------------------ sampling
def sample(model: FamilyModel, *, steps: int, cfg: float, seed: int, patched: Any = None, sampler_name: str = "euler",
           scheduler: str = "simple", batch: int = 1, negative_text_len: int | None = None) -> torch.Tensor:
    """The KSampler node's body on ``patched`` (default the model itself) with the family's conditioning
    (positive from ``seed + 1``, negative from ``seed + 2``); returns the output latent."""
    return sample_advanced(model, steps=steps, cfg=cfg, seed=seed, patched=patched, sampler_name=sampler_name,
                           scheduler=scheduler, batch=batch, negative_text_len=negative_text_len)


def sample_advanced(model: FamilyModel, *, steps: int, cfg: float, seed: int, patched: Any = None,
                    start: int = 0, end: int = 10000, add_noise: bool = True, return_with_leftover_noise: bool = False,
                    latent: torch.Tensor | None = None, noise_mask: torch.Tensor | None = None,
                    sampler_name: str = "euler", scheduler: str = "simple", batch: int = 1,
                    negative_text_len: int | None = None) -> torch.Tensor:
    """The KSamplerAdvanced node's body: steps ``start``..``end`` of a ``steps``-step schedule, noise added or not,
    leftover noise returned or not (how Wan 2.2's two experts share one run). ``noise_mask``: the LATENT's mask
    (0 keeps the input latent, e.g. Wan 2.2 TI2V's start frame)."""
    comfy = comfy_host.bootstrap()
    positive = model.conditioning(seed + 1)
    negative = model.conditioning(seed + 2, negative_text_len)
    samples = torch.zeros(model.latent_shape(batch)) if latent is None else latent
    latent_dict = {"samples": samples} if noise_mask is None else {"samples": samples, "noise_mask": noise_mask}
    with comfy_sampling.one_thread():
        (out,) = comfy.nodes.common_ksampler(
            tiny_models.patcher_of(patched if patched is not None else model), seed, steps, cfg, sampler_name,
            scheduler, positive, negative, latent_dict, denoise=1.0, disable_noise=not add_noise, start_step=start,
            last_step=end, force_full_denoise=not return_with_leftover_noise,
        )
    return out["samples"]


# ------------------------------------------------------------------------------------------------ nodes
def apply_node(node_cls: type, model: Any, **inputs: Any) -> Any:
    """Run one of the pack's model nodes on ``model`` (a FamilyModel or a ModelPatcher) through ComfyUI's executor,
    every input not given at the default its schema declares (so a test states only what it is about) and return
    the patched MODEL."""
    schema = node_cls.define_schema()
    values: dict[str, Any] = {}
    for item in schema.inputs:
        if item.id == "model":
            continue
        if item.id in inputs:
            values[item.id] = inputs.pop(item.id)
        elif getattr(item, "default", None) is not None:
            values[item.id] = item.default
        elif getattr(item, "options", None):
            values[item.id] = item.options[0]
    if inputs:
        raise comfy_host.ComfyHostError(f"{schema.node_id} has no inputs {sorted(inputs)}")
    (patched,) = comfy_host.run_node(node_cls, model=tiny_models.patcher_of(model), **values)
    return patched


def reports(patched: Any) -> list:
    """The run reports a patched MODEL collected, oldest first."""
    return patched.model_options["transformer_options"]["l2p"].reports
