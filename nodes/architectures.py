"""Which diffusion models the pack can drive, as data.

We never copy a model's forward. A model is supported when its transformer calls ComfyUI's DIFFUSION_MODEL
wrapper (feature-detected from the class's own source, so models that adopt the wrapper in a later ComfyUI work
without a release of ours); the table below only names families for predictor-file metadata and messages.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

from ..predictors.errors import UnsupportedModelError


@dataclass(frozen=True)
class Family:
    name: str  # stored in predictor files; a file calibrated for one family is refused for another
    classes: tuple[str, ...]  # diffusion-model class names in ComfyUI (comfy/ldm/...)
    display: str


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
    Family("aura", ("MMDiT",), "AuraFlow"),
)


@functools.lru_cache(maxsize=None)
def _calls_diffusion_model_wrapper(cls: type) -> bool:
    for klass in cls.__mro__:
        fwd = klass.__dict__.get("forward")
        if fwd is None:
            continue
        try:
            src = inspect.getsource(fwd)
        except (OSError, TypeError):
            continue
        if "DIFFUSION_MODEL" in src:
            return True
    return False


def family_of(diffusion_model) -> str:
    """The family name for a transformer instance; the class name itself for wrapper-capable unknown models.

    Raises UnsupportedModelError, listing what is supported, when the model never calls the wrapper.
    """
    cls = type(diffusion_model)
    names = {k.__name__ for k in cls.__mro__}
    for fam in FAMILIES:
        if names & set(fam.classes):
            return fam.name
    if _calls_diffusion_model_wrapper(cls):
        return cls.__name__
    supported = ", ".join(f.display for f in FAMILIES)
    raise UnsupportedModelError(
        f"L2P cannot drive the model class {cls.__name__}: its forward does not call ComfyUI's DIFFUSION_MODEL"
        f" wrapper, which is where L2P skips the transformer. Supported: {supported}, and any other model whose"
        f" transformer calls that wrapper. Update ComfyUI if your model is listed, otherwise remove the L2P node."
    )
