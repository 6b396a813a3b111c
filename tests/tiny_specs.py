"""The tiny models the harness builds, as data: FLUX / Qwen-Image / HunyuanVideo (``Family``, sampled through the
DIFFUSION_MODEL hook) and the hook-point models (``HookModel``: SD3, PixArt, LTXV, LTX-2), each with its unet_config
at tiny sizes and the conditioning its ``model_base`` class reads. Built by tests/tiny_models.py; the other families'
table is tests/family_specs.py (which reuses these sizes). Nothing here imports ComfyUI.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping

# ------------------------------------------------------------------------------------------- DIFFUSION_MODEL families


class Family(enum.Enum):
    """Model families the harness builds; value = the ``comfy.supported_models`` class name."""

    FLUX = "Flux"
    QWEN_IMAGE = "QwenImage"
    HUNYUAN_VIDEO = "HunyuanVideo"


@dataclasses.dataclass(frozen=True)
class CondSpec:
    """Shapes of the conditioning a family's diffusion model reads (model_base.<Class>.extra_conds)."""

    context_dim: int  # last dim of the cross-attention context (B, L, context_dim)
    pooled_dim: int | None  # pooled_output (B, pooled_dim) -> `y`; None when the model takes no `y`
    guidance: float | None  # distilled guidance stored in the cond dict; None when the model has none
    attention_mask: bool = False  # an integer text attention mask (B, L) in the cond dict, as LTXV's T5 gives one


FLUX_TINY: dict[str, Any] = {
    "image_model": "flux",
    "guidance_embed": True,  # FLUX.1-dev style: guidance distilled into the model
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": 8,
    "context_in_dim": 16,
    "hidden_size": 64,
    "mlp_ratio": 2.0,
    "num_heads": 2,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [8, 12, 12],  # sums to the head dim 64 / 2
    "theta": 10000,
    "qkv_bias": True,
}

QWEN_IMAGE_TINY: dict[str, Any] = {
    "image_model": "qwen_image",
    "patch_size": 2,
    "in_channels": 64,  # 16 latent channels x 2x2 patch
    "out_channels": 16,
    "num_layers": 1,
    "attention_head_dim": 32,
    "num_attention_heads": 2,
    "joint_attention_dim": 16,
    "axes_dims_rope": (8, 12, 12),  # sums to attention_head_dim
}

HUNYUAN_VIDEO_TINY: dict[str, Any] = {
    **FLUX_TINY,  # the same double/single-stream sizes; what differs:
    "image_model": "hunyuan_video",
    "patch_size": [1, 2, 2],
    "theta": 256,
    "byt5": False,
    "meanflow": False,
}

TINY_CONFIGS = {Family.FLUX: FLUX_TINY, Family.QWEN_IMAGE: QWEN_IMAGE_TINY, Family.HUNYUAN_VIDEO: HUNYUAN_VIDEO_TINY}


# ------------------------------------------------------------------------- hook-point models (tests of the hooks)
# Models that reach L2P only through APPLY_MODEL (SD3, PixArt, a Nunchaku-like replacement of diffusion_model) and
# the LTX models (transformer_options sixth of seven positional arguments; LTX-2's list latents). Built like the
# families above (supported_models config -> get_model -> ModelPatcher, seeded weights), kept in their own table.


class HookModel(enum.Enum):
    """Tiny models for the hook-point tests; value = the ``comfy.supported_models`` class name."""

    SD3 = "SD3"
    PIXART = "PixArtAlpha"
    LTXV = "LTXV"
    LTXAV = "LTXAV"  # LTX-2: [video, audio] latents, ComfyUI 0.33 and later


@dataclasses.dataclass(frozen=True)
class HookModelSpec:
    unet_config: Mapping[str, Any]  # as ComfyUI's model detection writes it for a checkpoint of this shape
    base_class: str  # the comfy.model_base class sampling it
    cond: CondSpec
    latent_shapes: tuple[tuple[int, ...], ...]  # per part, batch 1; two parts: a NestedTensor latent (LTX-2)
    random_buffers: tuple[str, ...] = ()  # buffers a checkpoint fills and the model leaves uninitialised


HOOK_MODEL_SPECS: dict[HookModel, HookModelSpec] = {
    # comfy/model_detection.py's mmdit branch: hidden size 64 * depth, pos_embed from the checkpoint
    HookModel.SD3: HookModelSpec(
        {"in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 2, "input_size": None,
         "adm_in_channels": 8, "num_patches": 256, "pos_embed_max_size": 16, "pos_embed_scaling_factor": None,
         "x_block_self_attn_layers": [],
         "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 16, "out_features": 128}}},
        "SD3", CondSpec(16, 8, None), ((1, 16, 8, 8),), random_buffers=("pos_embed",)),
    # PixArt-alpha (EPS prediction, micro-conditions: hidden size divisible by 3); its positional embedding needs
    # (H + W) / 2 >= 33 latent pixels
    HookModel.PIXART: HookModelSpec(
        {"image_model": "pixart_alpha", "micro_condition": True, "patch_size": 2, "in_channels": 4, "hidden_size": 96,
         "num_heads": 2, "depth": 1, "caption_channels": 16, "model_max_length": 8, "input_size": 16,
         "pe_interpolation": None},
        "PixArt", CondSpec(16, None, None), ((1, 4, 32, 40),)),
    HookModel.LTXV: HookModelSpec(
        {"image_model": "ltxv", "in_channels": 128, "num_layers": 1, "attention_head_dim": 32,
         "num_attention_heads": 2, "cross_attention_dim": 64, "caption_channels": 16},
        "LTXV", CondSpec(16, None, None, attention_mask=True), ((1, 128, 2, 4, 4),)),
    # the text connectors at 2 x 8 (their default is 30 x 128); the audio latent is (B, 8 channels, T, 16 bins)
    HookModel.LTXAV: HookModelSpec(
        {"image_model": "ltxav", "in_channels": 128, "audio_in_channels": 128, "num_layers": 1,
         "attention_head_dim": 32, "num_attention_heads": 2, "cross_attention_dim": 64,
         "audio_attention_head_dim": 32, "audio_num_attention_heads": 2, "audio_cross_attention_dim": 64,
         "caption_channels": 16, "connector_attention_head_dim": 8, "connector_num_attention_heads": 2,
         "connector_num_layers": 1},
        "LTXAV", CondSpec(16, None, None), ((1, 128, 2, 4, 4), (1, 8, 3, 16))),
}



def cond_spec(kind: Family | HookModel, unet_config: Mapping[str, Any]) -> CondSpec:
    """The conditioning ``kind``'s model_base class reads, for a model of ``unet_config``."""
    if kind in HOOK_MODEL_SPECS:
        return HOOK_MODEL_SPECS[kind].cond
    if kind is Family.FLUX:
        # model_base.Flux: y = pooled_output, guidance defaults to 3.5 (None disables it)
        return CondSpec(unet_config["context_in_dim"], unet_config["vec_in_dim"],
                        3.5 if unet_config.get("guidance_embed") else None)
    if kind is Family.QWEN_IMAGE:
        # model_base.QwenImage: only the context (no y, no guidance)
        return CondSpec(unet_config["joint_attention_dim"], None, None)
    # model_base.HunyuanVideo: y = pooled_output (when vector_in exists), guidance defaults to 6.0
    return CondSpec(unet_config["context_in_dim"], unet_config["vec_in_dim"],
                    6.0 if unet_config.get("guidance_embed") else None)


def kinds_by_base_class() -> dict[str, Family | HookModel]:
    """The ``comfy.model_base`` class name that samples each kind (a Family's is its supported_models name)."""
    kinds: dict[str, Family | HookModel] = {f.value: f for f in Family}
    kinds.update({spec.base_class: kind for kind, spec in HOOK_MODEL_SPECS.items()})
    return kinds
