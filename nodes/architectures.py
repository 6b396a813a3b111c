"""Which diffusion models the pack can drive, and what each is called in predictor files: the family table.

A family is exact: ComfyUI's model config class (``comfy.supported_models``; what its model detection chose for
the checkpoint, e.g. ``Flux`` for FLUX.1-dev and Kontext, ``FluxSchnell``, ``Flux2``) together with the exact
transformer class, module-qualified. One transformer class serves several models (``comfy.ldm.flux.model.Flux``
is FLUX.1-dev, Fill, schnell, FLUX.2 and LongCat-Image; ``HunyuanVideo`` is also HunyuanVideo 1.5 and
HunyuanImage 2.1; ``NextDiT`` is Lumina 2 and Z-Image) and subclasses are other models (Anima subclasses Cosmos
Predict2's class, LTX-2 LTXV's), so neither the class alone nor a parent class names a model. Models that share
config and class (FLUX.1-dev and Kontext, Wan 2.1 14B and each Wan 2.2 14B expert) differ by weights, which the
predictor file's model identity tells apart.

A model is driven when its transformer's forward calls ComfyUI's DIFFUSION_MODEL wrapper, feature-detected from
the forward that runs (so a model that adopts the wrapper in a later ComfyUI works without a release of ours). A
driven model outside the table is named by its config and class, e.g. ``Krea2/SingleStreamDiT``, so files of two
unknown models never mix.
"""
from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str  # stored in predictor files; a file calibrated for one family is refused for another
    display: str
    config: str  # comfy.supported_models class name (the model config ComfyUI detected)
    model_class: str  # the transformer's class, module-qualified (comfy/ldm/...)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", self.name) or "." not in self.model_class:
            raise ValueError(f"Family {self.name!r}: name must be lower_snake_case and model_class module-qualified,"
                             f" got {self.model_class!r}")


_FLUX = "comfy.ldm.flux.model.Flux"
_HUNYUAN = "comfy.ldm.hunyuan_video.model.HunyuanVideo"
_WAN = "comfy.ldm.wan.model.WanModel"
_NEXTDIT = "comfy.ldm.lumina.model.NextDiT"
_UNET = "comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel"
_PREDICT2 = "comfy.ldm.cosmos.predict2.MiniTrainDIT"

FAMILIES: tuple[Family, ...] = (
    Family("flux", "FLUX.1-dev / Kontext", "Flux", _FLUX),
    Family("flux_fill", "FLUX.1 Fill", "FluxInpaint", _FLUX),
    Family("flux_schnell", "FLUX.1-schnell", "FluxSchnell", _FLUX),
    Family("flux2", "FLUX.2", "Flux2", _FLUX),
    Family("longcat_image", "LongCat-Image", "LongCatImage", _FLUX),
    Family("chroma", "Chroma", "Chroma", "comfy.ldm.chroma.model.Chroma"),
    Family("chroma_radiance", "Chroma Radiance", "ChromaRadiance", "comfy.ldm.chroma_radiance.model.ChromaRadiance"),
    Family("qwen_image", "Qwen-Image", "QwenImage", "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel"),
    Family("hunyuan_video", "HunyuanVideo", "HunyuanVideo", _HUNYUAN),
    Family("hunyuan_video_i2v", "HunyuanVideo I2V", "HunyuanVideoI2V", _HUNYUAN),
    Family("hunyuan_video_skyreels_i2v", "SkyReels I2V", "HunyuanVideoSkyreelsI2V", _HUNYUAN),
    Family("hunyuan_video_15", "HunyuanVideo 1.5", "HunyuanVideo15", _HUNYUAN),
    Family("hunyuan_video_15_sr", "HunyuanVideo 1.5 super-resolution", "HunyuanVideo15_SR_Distilled", _HUNYUAN),
    Family("hunyuan_image_21", "HunyuanImage 2.1", "HunyuanImage21", _HUNYUAN),
    Family("hunyuan_image_21_refiner", "HunyuanImage 2.1 refiner", "HunyuanImage21Refiner", _HUNYUAN),
    Family("wan", "Wan 2.1 / 2.2 14B text-to-video (each expert)", "WAN21_T2V", _WAN),
    Family("wan_i2v", "Wan 2.1 / 2.2 14B image-to-video (each expert)", "WAN21_I2V", _WAN),
    Family("wan_fun_control", "Wan Fun Control", "WAN21_FunControl2V", _WAN),
    Family("wan_vace", "Wan VACE", "WAN21_Vace", "comfy.ldm.wan.model.VaceWanModel"),
    Family("wan_camera", "Wan 2.1 camera", "WAN21_Camera", "comfy.ldm.wan.model.CameraWanModel"),
    Family("wan22_camera", "Wan 2.2 Fun camera", "WAN22_Camera", "comfy.ldm.wan.model.CameraWanModel"),
    Family("wan_humo", "Wan HuMo", "WAN21_HuMo", "comfy.ldm.wan.model.HumoWanModel"),
    Family("wan22_s2v", "Wan 2.2 S2V", "WAN22_S2V", "comfy.ldm.wan.model.WanModel_S2V"),
    Family("wan22_animate", "Wan 2.2 Animate", "WAN22_Animate", "comfy.ldm.wan.model_animate.AnimateWanModel"),
    Family("wan22_5b", "Wan 2.2 TI2V 5B", "WAN22_T2V", _WAN),
    Family("lumina", "Lumina 2", "Lumina2", _NEXTDIT),
    Family("z_image", "Z-Image", "ZImage", _NEXTDIT),
    Family("z_image_pixel", "Z-Image pixel space", "ZImagePixelSpace", "comfy.ldm.lumina.model.NextDiTPixelSpace"),
    Family("hidream", "HiDream-I1", "HiDream", "comfy.ldm.hidream.model.HiDreamImageTransformer2DModel"),
    Family("cosmos", "Cosmos 1 text-to-video", "CosmosT2V", "comfy.ldm.cosmos.model.GeneralDIT"),
    Family("cosmos_i2v", "Cosmos 1 image-to-video", "CosmosI2V", "comfy.ldm.cosmos.model.GeneralDIT"),
    Family("cosmos_predict2", "Cosmos Predict2 text-to-image", "CosmosT2IPredict2", _PREDICT2),
    Family("cosmos_predict2_i2v", "Cosmos Predict2 image-to-video", "CosmosI2VPredict2", _PREDICT2),
    Family("anima", "Anima", "Anima", "comfy.ldm.anima.model.Anima"),
    Family("aura", "AuraFlow", "AuraFlow", "comfy.ldm.aura.mmdit.MMDiT"),
    Family("kandinsky5", "Kandinsky 5 video", "Kandinsky5", "comfy.ldm.kandinsky5.model.Kandinsky5"),
    Family("kandinsky5_image", "Kandinsky 5 image", "Kandinsky5Image", "comfy.ldm.kandinsky5.model.Kandinsky5"),
    Family("sd15", "Stable Diffusion 1.5", "SD15", _UNET),
    Family("sd2", "Stable Diffusion 2.x", "SD20", _UNET),
    Family("sdxl", "SDXL", "SDXL", _UNET),
    Family("sdxl_refiner", "SDXL refiner", "SDXLRefiner", _UNET),
    Family("ltxv", "LTX-Video", "LTXV", "comfy.ldm.lightricks.model.LTXVModel"),
    Family("ltx2", "LTX-2", "LTXAV", "comfy.ldm.lightricks.av_model.LTXAVModel"),
)

_BY_KEY = {(f.config, f.model_class): f for f in FAMILIES}
if len(_BY_KEY) != len(FAMILIES) or len({f.name for f in FAMILIES}) != len(FAMILIES):
    raise ValueError("nodes/architectures.py: two families share a name or a (config, class) pair")


class UnsupportedModelError(ValueError):
    pass


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def model_config_of(model_patcher: Any) -> Any:
    """The model config (``comfy.supported_models`` instance) of a ModelPatcher, or None without one."""
    return getattr(getattr(model_patcher, "model", None), "model_config", None)


def find_family(diffusion_model: Any, model_config: Any = None) -> Family | None:
    """The table's family for this exact transformer class and config; None when the table does not name it.

    Without a model config (a caller outside ComfyUI), the class alone decides when exactly one family has it."""
    cls_name = qualified_name(type(diffusion_model))
    if model_config is not None:
        return _BY_KEY.get((type(model_config).__name__, cls_name))
    matches = [f for f in FAMILIES if f.model_class == cls_name]
    return matches[0] if len(matches) == 1 else None


def _super_forward_call(source: str) -> bool:
    return re.search(r"super\(\s*[\w\s,]*\)\.forward\(", source) is not None


@functools.lru_cache(maxsize=None)
def calls_diffusion_model_wrapper(cls: type) -> bool:
    """True when the forward that runs for ``cls`` calls the DIFFUSION_MODEL wrapper: its own source says so, or it
    hands over to ``super().forward`` and that one does. A subclass whose forward bypasses the wrapper is not
    driven even if a parent's forward calls it (SD3's OpenAISignatureMMDITWrapper)."""
    for klass in cls.__mro__:
        fwd = klass.__dict__.get("forward")
        if fwd is None:
            continue
        try:
            src = inspect.getsource(fwd)
        except (OSError, TypeError):
            return False
        if "DIFFUSION_MODEL" in src:
            return True
        if not _super_forward_call(src):
            return False
    return False


def family_of(diffusion_model: Any, model_config: Any = None) -> str:
    """The family name for a transformer (and its model config, when known): the table's name, or
    ``<Config>/<Class>`` for a driven model the table does not list.

    Raises UnsupportedModelError, naming the class and what is supported, when the model never calls the wrapper.
    """
    cls = type(diffusion_model)
    family = find_family(diffusion_model, model_config)
    if family is not None:
        return family.name
    if calls_diffusion_model_wrapper(cls):
        return cls.__name__ if model_config is None else f"{type(model_config).__name__}/{cls.__name__}"
    supported = ", ".join(dict.fromkeys(f.display for f in FAMILIES))
    raise UnsupportedModelError(
        f"L2P cannot drive the model class {qualified_name(cls)}: its forward does not call ComfyUI's"
        f" DIFFUSION_MODEL wrapper, which is where L2P skips the transformer. Supported: {supported}, and any other"
        f" model whose transformer calls that wrapper. Update ComfyUI if your model is listed, otherwise remove the"
        f" L2P node."
    )


def display_name(family: str) -> str:
    """What users call a family (``FLUX.1-schnell``), or the name itself for one the table does not list."""
    return next((f.display for f in FAMILIES if f.name == family), family)


def family_of_run(context: Any) -> str:
    """The family of a run (``run_state.RunContext``): the one its caller named, else the model's."""
    if context.family is not None:
        return context.family
    return family_of(context.diffusion_model, model_config_of(context.model_patcher))
