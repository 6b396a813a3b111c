"""What the pack knows about diffusion models, as data and feature detection.

* ``FAMILIES``: family names for predictor-file metadata and messages. A file calibrated for one family is refused
  for another; a class not listed is named by its own class name.
* Which of ComfyUI's wrappers a model goes through, read from the classes' own source, so a model that adopts a
  wrapper in a later ComfyUI works without a release of ours: ``runs_apply_model_wrappers`` (the BaseModel, every
  model ComfyUI samples) and ``calls_diffusion_model_wrapper`` (the transformer's forward, most DiTs).
We never copy a model's forward.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass


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
