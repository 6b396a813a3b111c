"""What the pack knows about diffusion models, as data and feature detection (never a guess at positions).

* ``FAMILIES``: family names for predictor-file metadata and messages. A file calibrated for one family is refused
  for another; a class not listed is named by its own class name.
* Which of ComfyUI's wrappers a model goes through, read from the classes' own source, so a model that adopts a
  wrapper in a later ComfyUI works without a release of ours: ``runs_apply_model_wrappers`` (the BaseModel, every
  model ComfyUI samples) and ``calls_diffusion_model_wrapper`` (the transformer's forward, most DiTs).
* Where ``transformer_options`` is among a call's arguments: read from the called function's signature
  (``find_transformer_options``). LTXV, for one, passes it sixth of seven positionally, ahead of keyframe_idxs.

We never copy a model's forward.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Family:
    name: str  # stored in predictor files; a file calibrated for one family is refused for another
    classes: tuple[str, ...]  # diffusion-model class names in ComfyUI (comfy/ldm/...)
    display: str


# Matched in table order against the class and its parents: a subclass listed itself must come before its parent's
# family (SD3's OpenAISignatureMMDITWrapper subclasses a class named MMDiT, as AuraFlow's transformer is called).
FAMILIES: tuple[Family, ...] = (
    Family("flux", ("Flux",), "FLUX.1 / FLUX-style (incl. Kontext)"),
    Family("chroma", ("Chroma",), "Chroma"),
    Family("qwen_image", ("QwenImageTransformer2DModel",), "Qwen-Image"),
    Family("hunyuan_video", ("HunyuanVideo",), "HunyuanVideo"),
    Family("wan", ("WanModel", "VaceWanModel", "CameraWanModel", "WanModel_S2V", "HumoWanModel"), "Wan 2.1 / 2.2"),
    Family("hidream", ("HiDreamImageTransformer2DModel",), "HiDream-I1"),
    Family("lumina", ("NextDiT",), "Lumina 2 / Z-Image"),
    Family("ltxv", ("LTXVModel",), "LTX-Video"),
    Family("cosmos", ("GeneralDIT", "MiniTrainDIT"), "Cosmos"),
    Family("sd3", ("OpenAISignatureMMDITWrapper",), "Stable Diffusion 3 / 3.5"),
    Family("aura", ("MMDiT",), "AuraFlow"),
    Family("pixart", ("PixArtMS",), "PixArt-alpha / PixArt-sigma"),
)


class UnsupportedModelError(ValueError):
    pass


def family_of(diffusion_model) -> str:
    """The family name of a transformer instance: its row in FAMILIES, else its own class name."""
    cls = type(diffusion_model)
    names = {k.__name__ for k in cls.__mro__}
    for fam in FAMILIES:
        if names & set(fam.classes):
            return fam.name
    return cls.__name__


def supported_text() -> str:
    """What the pack drives, for messages."""
    named = ", ".join(f.display for f in FAMILIES)
    return (f"every model ComfyUI samples through its BaseModel.apply_model (named families: {named}; others, such as"
            f" Nunchaku's FLUX, by their class name), and any transformer whose forward calls ComfyUI's"
            f" DIFFUSION_MODEL wrapper")


# ----------------------------------------------------------------------------------- which wrappers a model runs


def _source_mentions(cls: type, method: str, text: str) -> bool:
    """True when ``cls.method`` mentions ``text`` in its source, following ``super()`` calls up the MRO: the method
    Python resolves is read first, its parent's only when it calls super() (an override that does not call it
    replaces the parent's behaviour)."""
    for klass in cls.__mro__:
        fn = klass.__dict__.get(method)
        if fn is None:
            continue
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            return False
        if text in source:
            return True
        if "super(" not in source:
            return False
    return False


@functools.lru_cache(maxsize=None)
def calls_diffusion_model_wrapper(cls: type) -> bool:
    """The transformer's forward runs ComfyUI's DIFFUSION_MODEL wrappers."""
    return _source_mentions(cls, "forward", "DIFFUSION_MODEL")


@functools.lru_cache(maxsize=None)
def runs_apply_model_wrappers(cls: type) -> bool:
    """A BaseModel class whose apply_model runs ComfyUI's APPLY_MODEL wrappers around an ``_apply_model`` that
    calls ``self.diffusion_model``: the call a proxy can stand in for."""
    return (_source_mentions(cls, "apply_model", "APPLY_MODEL")
            and _source_mentions(cls, "_apply_model", "self.diffusion_model("))


# ------------------------------------------------------------------------------ where transformer_options is


@functools.lru_cache(maxsize=None)
def _transformer_options_position(fn: Callable) -> int | None:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    for i, p in enumerate(params):
        if p.name == "transformer_options" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            return i
    return None


def find_transformer_options(called: Callable, args: tuple, kwargs: dict) -> dict:
    """The ``transformer_options`` dict of a call of ``called`` (a function or bound method, such as a wrapper
    executor's ``original``) with ``args`` / ``kwargs``: the keyword, else the positional argument at the place
    ``called``'s signature gives it."""
    to = kwargs.get("transformer_options")
    if isinstance(to, dict):
        return to
    bound_to = getattr(called, "__self__", None)
    fn = getattr(called, "__func__", called) if bound_to is not None else called
    position = _transformer_options_position(fn) if inspect.isfunction(fn) else None
    if position is not None and bound_to is not None:
        position -= 1  # the function's signature includes self; a bound call's args do not
    if position is not None and 0 <= position < len(args) and isinstance(args[position], dict):
        return args[position]
    name = getattr(called, "__qualname__", type(called).__name__)
    raise TypeError(
        f"L2P: {name} was called without transformer_options (as a keyword or at the position its signature"
        f" gives), so L2P cannot find its run state. Please report this with your ComfyUI version and model."
    )
