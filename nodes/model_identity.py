"""The identity of the model a run samples (``predictors.files.identity.ModelIdentity``), read from ComfyUI's
objects, and the check of a predictor file against it for L2P Cache and L2P Calibrate.

What is read, and from where:
- class: the transformer's exact class (``type(diffusion_model)``), module-qualified; a class a custom node pack
  defines is named without the folder ComfyUI loaded it from, so two machines agree;
- config: ``model_patcher.model.model_config`` (ComfyUI's supported_models class, e.g. Flux / FluxSchnell) and its
  ``unet_config`` (JSON-able entries; dtype and device dropped: they say how the model was loaded, not what it is);
- weights: ``VALUES_PER_TENSOR`` values at evenly spaced positions of ``FINGERPRINT_TENSORS`` parameter tensors,
  those whose names hash lowest (so a host that adds or renames a parameter keeps most picks). Read from the
  patcher's ``backup`` where ComfyUI has patched a weight in place, so the base model's values are read whichever
  LoRA was loaded last; about 256 numbers copied to the CPU per run;
- patches: ``model_patcher.patches`` (LoRA and model-merge patches): per patched key its strengths, and for up to
  16 keys a sample of the patch tensors, hashed.
Nothing here imports ComfyUI; every read is feature-detected, and what cannot be read is recorded as unknown.
"""
from __future__ import annotations

import hashlib
import os

import torch

from ..predictors.files.identity import (
    POLICY, UNKNOWN, ModelIdentity, OtherModel, Use, WeightFingerprint, compare, identity_of, patches_digest,
)
from ..predictors.files.predictor_file import PredictorFile, PredictorFileError

FINGERPRINT_TENSORS = 8
VALUES_PER_TENSOR = 32
MIN_ELEMENTS = 16  # skip scalars and tiny vectors: too few positions to tell weights apart
PATCH_KEYS_SAMPLED = 16
_DROPPED_CONFIG_KEYS = {"dtype", "device", "operations"}


def model_identity(diffusion_model, model_patcher=None) -> ModelIdentity:
    """The identity of ``diffusion_model`` (the transformer), with config and patches from its ModelPatcher."""
    cls = type(diffusion_model)
    model_config = getattr(getattr(model_patcher, "model", None), "model_config", None)
    config_name, config = UNKNOWN, {}
    if model_config is not None:
        config_name = type(model_config).__name__
        config = _json_entries(getattr(model_config, "unet_config", None) or {})
    weights, note = _fingerprint(diffusion_model, getattr(model_patcher, "backup", None) or {})
    return ModelIdentity(f"{_module_name(cls)}.{cls.__qualname__}", config_name, config, weights, note,
                         _patches(getattr(model_patcher, "patches", None) or {}))


def _module_name(cls: type) -> str:
    # ComfyUI imports a custom node pack under its folder's path ("/home/u/ComfyUI/custom_nodes/Pack.models")
    module = cls.__module__
    return os.path.basename(module.replace("\\", "/")) if "/" in module or "\\" in module else module


_SKIP = object()


def _plain(value):
    """``value`` as JSON data, or _SKIP (classes, functions, dtypes: how the model is built, not what it is)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else items
    return _SKIP


def _json_entries(config: dict) -> dict:
    entries = ((str(k), _plain(v)) for k, v in config.items() if k not in _DROPPED_CONFIG_KEYS)
    return {k: v for k, v in entries if v is not _SKIP}


def _fingerprint(diffusion_model, backup) -> tuple[WeightFingerprint | None, str]:
    try:
        params = [(n, p) for n, p in diffusion_model.named_parameters() if p.numel() >= MIN_ELEMENTS]
        chosen = sorted(params, key=lambda item: hashlib.sha256(item[0].encode("utf-8")).digest())
        values, dtypes = {}, {}
        for name, param in chosen[:FINGERPRINT_TENSORS]:
            saved = backup.get("diffusion_model." + name)
            tensor = getattr(saved, "weight", None) if saved is not None else None
            tensor = param if tensor is None else tensor
            flat = tensor.detach().reshape(-1)
            index = torch.linspace(0, flat.numel() - 1, VALUES_PER_TENSOR).round().long().to(flat.device)
            values[name] = flat.index_select(0, index).to(device="cpu", dtype=torch.float32).numpy()
            dtypes[name] = str(tensor.dtype).removeprefix("torch.")
    except Exception as exc:  # quantised or not-yet-loaded weights of other packs: say so, never fail the run
        return None, f"weights not readable: {type(exc).__name__}: {exc}"
    if not values:
        return None, "no weight tensor to fingerprint"
    return WeightFingerprint(values, dtypes), ""


def _patches(patches: dict) -> str:
    keys = sorted(str(k) for k in patches)
    sampled = set(keys[::max(1, len(keys) // PATCH_KEYS_SAMPLED)])
    entries = []
    for key in keys:
        parts = [key]
        for patch in patches[key]:
            strengths = patch[:1] + patch[2:4] if isinstance(patch, tuple) else (patch,)
            parts.append(repr(strengths))
            if key in sampled and isinstance(patch, tuple) and len(patch) > 1:
                parts.append(_content(patch[1]))
        entries.append("|".join(parts).encode("utf-8"))
    return patches_digest(entries)


def _content(value, depth: int = 0) -> str:
    """A short, deterministic description of a patch value: tensor shapes and a few of their values."""
    if torch.is_tensor(value):
        flat = value.detach().reshape(-1)
        index = torch.linspace(0, max(flat.numel() - 1, 0), 8).round().long().to(flat.device)
        sample = flat.index_select(0, index).float().cpu().tolist() if flat.numel() else []
        return f"{list(value.shape)}:{[round(v, 6) for v in sample]}"
    if depth < 4 and isinstance(value, (tuple, list)):
        return "(" + ",".join(_content(v, depth + 1) for v in value) + ")"
    if depth < 4 and hasattr(value, "weights"):  # comfy.weight_adapter's LoRA adapters hold their tensors here
        return type(value).__name__ + _content(value.weights, depth + 1)
    return value if isinstance(value, str) else type(value).__name__


# ---------------------------------------------------------------------------------------------- the check
def check_file_identity(path: str, pf: PredictorFile, model: ModelIdentity, other_model: OtherModel,
                        fix: str) -> str | None:
    """Refuse ``pf`` for ``model`` per ``identity.POLICY`` (PredictorFileError naming the file, what it was
    calibrated on, what differs and how to fix it), or return the note for the run's report (None: the same
    model). ``fix``: what to do instead, for the node that asks."""
    try:
        recorded = identity_of(pf.extra, path)
    except ValueError as err:
        raise PredictorFileError(f"L2P predictor file '{path}': {err}. Recalibrate with L2P Calibrate") from None
    comparison = compare(recorded, model)
    rule = POLICY[comparison.verdict]
    if not comparison.accepted(other_model):
        allow = (f" If this model is a LoRA or fine-tune of the calibrated one, set other_model to"
                 f" '{OtherModel.ALLOW.value}' to use the file anyway (the report says so).") \
            if rule.use is Use.WHEN_ALLOWED else ""
        raise PredictorFileError(
            f"L2P predictor file '{path}': calibrated on {recorded.describe()}, but this run samples"
            f" {model.describe()}: {comparison.text()}.{allow} {fix}")
    if not rule.note:
        return None
    if recorded is None:
        return (f"{os.path.basename(path)}: the file records no model identity (made before identities were"
                f" recorded), so it was not checked against this model")
    used = "; used because other_model allows it" if rule.use is Use.WHEN_ALLOWED else ""
    return f"{os.path.basename(path)}: calibrated on {comparison.text()}{used}"
