"""The tiny model of every family ComfyUI drives through its DIFFUSION_MODEL wrapper, as data (built and sampled by
tests/comfy_families.py).

Each ``TinySpec``: the ``comfy.supported_models`` config class ComfyUI's model detection picks for the real
checkpoint, that config's unet_config at tiny sizes (keys as ComfyUI's detection writes them; ``optional`` entries
only where the host's class takes them, so one table serves 0.3.64 and 0.33), the latent layout the family samples
on (``latent_formats``: channels, 2-D image or 5-D video), and the conditioning its ``model_base`` class reads (text
context, pooled vector, distilled guidance and the family's extra inputs: Kontext's reference latents, Fill's masked
image, Wan i2v's start frame and CLIP features, VACE's control frames, HiDream's Llama states ...).
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping

import torch

import tiny_specs

Extras = Callable[[torch.Generator, tuple, int], dict]  # (generator, latent shape at batch 1, text_len) -> entries


@dataclasses.dataclass(frozen=True)
class CondRecipe:
    """What a family's ``model_base.extra_conds`` reads from a CONDITIONING entry."""

    context_dim: int  # last dim of the text context (B, text_len, context_dim)
    text_len: int = 4
    pooled_dim: int | None = None  # pooled_output (B, pooled_dim); None when the family reads none
    guidance: float | None = None  # distilled guidance stored in the cond dict; None: the model_base default
    extras: Extras | None = None  # the family's extra inputs (reference latents, masks, control frames ...)


@dataclasses.dataclass(frozen=True)
class TinySpec:
    key: str  # test id, e.g. "flux-kontext"
    family: str  # what nodes/architectures.py must call it
    config: str  # comfy.supported_models class
    unet_config: Mapping[str, Any]
    latent: tuple[int, ...]  # latent shape without the batch: (C, H, W) or (C, T, H, W)
    cond: CondRecipe
    optional: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # only where the host's class takes it


# ------------------------------------------------------------------------------------------------ extras
def randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen)


def _reference_latent(gen, shape, text_len):  # Kontext / FLUX.2 / Qwen-Image edit: ReferenceLatent node
    return {"reference_latents": [randn(gen, *shape)]}


def _inpaint(gen, shape, text_len):  # FLUX Fill: InpaintModelConditioning (image latent + pixel-space mask)
    mask = (torch.rand((1, 1, shape[-2] * 8, shape[-1] * 8), generator=gen) > 0.5).float()
    return {"concat_latent_image": randn(gen, *shape), "concat_mask": mask}


def _wan_i2v(gen, shape, text_len):  # WanImageToVideo: start-frame latent, its mask, CLIP vision features
    mask = torch.ones((1, 1) + tuple(shape[2:]))
    mask[:, :, :1] = 0.0
    clip = types.SimpleNamespace(penultimate_hidden_states=randn(gen, 1, 257, 1280))
    return {"concat_latent_image": randn(gen, *shape), "concat_mask": mask, "clip_vision_output": clip}


def _wan_vace(gen, shape, text_len):  # WanVaceToVideo: control video (inactive + reactive latents), mask, strength
    _, _, frames, h, w = shape
    return {"vace_frames": [randn(gen, 1, 32, frames, h, w)], "vace_mask": [torch.ones((1, 64, frames, h, w))],
            "vace_strength": [1.0]}


def _attention_mask(gen, shape, text_len):  # Gemma / Qwen3 text encoders (Lumina 2, Z-Image): which tokens count
    return {"attention_mask": torch.ones((1, text_len), dtype=torch.long)}


def _hidream_llama(gen, shape, text_len):  # the Llama 3 hidden states HiDream's text encoder returns per layer
    return {"conditioning_llama3": randn(gen, 1, 2, 4, 16)}


# ------------------------------------------------------------------------------------------------ specs
_FLUX = tiny_specs.FLUX_TINY  # the sizes comfy_host's own tiny FLUX / Qwen-Image / HunyuanVideo use
_FLUX_TXT_IDS = {"txt_ids_dims": []}
_HUNYUAN = tiny_specs.HUNYUAN_VIDEO_TINY
_HUNYUAN_V1 = {"use_cond_type_embedding": False, "vision_in_dim": None, "meanflow_sum": False}
_WAN = {
    "image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "in_dim": 16, "out_dim": 16, "dim": 32,
    "ffn_dim": 64, "freq_dim": 256, "text_dim": 16, "num_heads": 2, "num_layers": 1, "window_size": (-1, -1),
    "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6,
}
_LUMINA = {
    "image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 64, "n_layers": 1, "n_refiner_layers": 1,
    "n_heads": 2, "n_kv_heads": 1, "cap_feat_dim": 16, "qk_norm": True, "axes_dims": [8, 12, 12],
    "axes_lens": [300, 512, 512], "ffn_dim_multiplier": 4.0, "multiple_of": 16,
}
_PREDICT2 = {
    "image_model": "cosmos_predict2", "max_img_h": 240, "max_img_w": 240, "max_frames": 128, "in_channels": 16,
    "out_channels": 16, "patch_spatial": 2, "patch_temporal": 1, "model_channels": 64, "num_blocks": 1,
    "num_heads": 2, "crossattn_emb_channels": 16, "concat_padding_mask": True, "pos_emb_cls": "rope3d",
    "pos_emb_learnable": True, "pos_emb_interpolation": "crop", "min_fps": 1, "max_fps": 30, "use_adaln_lora": True,
    "adaln_lora_dim": 16, "extra_per_block_abs_pos_emb": False, "rope_enable_fps_modulation": False,
}
_UNET = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 32,
    "use_spatial_transformer": True, "legacy": False, "num_res_blocks": [1, 1], "channel_mult": [1, 2],
    "transformer_depth_middle": 1, "use_temporal_attention": False, "use_temporal_resblock": False,
}

SPECS: tuple[TinySpec, ...] = (
    TinySpec("flux", "flux", "Flux", _FLUX, (16, 8, 8), CondRecipe(16, pooled_dim=8, guidance=3.5),
             optional=_FLUX_TXT_IDS),
    TinySpec("flux-kontext", "flux", "Flux", _FLUX, (16, 8, 8),
             CondRecipe(16, pooled_dim=8, guidance=2.5, extras=_reference_latent), optional=_FLUX_TXT_IDS),
    TinySpec("flux-fill", "flux_fill", "FluxInpaint", {**_FLUX, "in_channels": 96}, (16, 8, 8),
             CondRecipe(16, pooled_dim=8, guidance=30.0, extras=_inpaint), optional=_FLUX_TXT_IDS),
    TinySpec("flux-schnell", "flux_schnell", "FluxSchnell", {**_FLUX, "guidance_embed": False}, (16, 8, 8),
             CondRecipe(16, pooled_dim=8), optional=_FLUX_TXT_IDS),
    TinySpec("flux2", "flux2", "Flux2", {
        **_FLUX, "image_model": "flux2", "in_channels": 128, "out_channels": 128, "patch_size": 1, "vec_in_dim": None,
        "axes_dim": [8, 8, 8, 8], "mlp_ratio": 3.0, "theta": 2000, "qkv_bias": False, "global_modulation": True,
        "mlp_silu_act": True, "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0,
        "txt_ids_dims": [3]}, (128, 4, 4), CondRecipe(16, guidance=4.0, extras=_reference_latent)),
    TinySpec("longcat-image", "longcat_image", "LongCatImage", {
        **_FLUX, "guidance_embed": False, "vec_in_dim": None, "context_in_dim": 3584, "txt_ids_dims": [1, 2]},
        (16, 8, 8), CondRecipe(3584)),
    TinySpec("chroma", "chroma", "Chroma", {
        **{k: v for k, v in _FLUX.items() if k not in ("vec_in_dim", "guidance_embed")}, "image_model": "chroma",
        "in_channels": 64, "out_channels": 64, "in_dim": 64, "out_dim": 64, "hidden_dim": 64, "n_layers": 1},
        (16, 8, 8), CondRecipe(16), optional={"txt_ids_dims": [], "vec_in_dim": None}),
    TinySpec("chroma-radiance", "chroma_radiance", "ChromaRadiance", {
        **{k: v for k, v in _FLUX.items() if k not in ("vec_in_dim", "guidance_embed")},
        "image_model": "chroma_radiance", "in_channels": 3, "out_channels": 3, "patch_size": 4, "in_dim": 64,
        "out_dim": 64, "hidden_dim": 64, "n_layers": 1, "nerf_hidden_size": 16, "nerf_mlp_ratio": 2,
        "nerf_depth": 1, "nerf_max_freqs": 4, "nerf_tile_size": 16, "nerf_final_head_type": "linear",
        "nerf_embedder_dtype": torch.float32}, (3, 16, 16), CondRecipe(16),
        optional={"txt_ids_dims": [], "vec_in_dim": None, "use_x0": False, "use_sequential_txt_ids": False}),
    TinySpec("qwen-image", "qwen_image", "QwenImage", tiny_specs.QWEN_IMAGE_TINY, (16, 1, 8, 8), CondRecipe(16)),
    TinySpec("qwen-image-edit", "qwen_image", "QwenImage", tiny_specs.QWEN_IMAGE_TINY, (16, 1, 8, 8),
             CondRecipe(16, extras=_reference_latent)),
    TinySpec("hunyuan-video", "hunyuan_video", "HunyuanVideo", _HUNYUAN, (16, 2, 8, 8),
             CondRecipe(16, pooled_dim=8, guidance=6.0), optional=_HUNYUAN_V1),
    TinySpec("hunyuan-video-1.5", "hunyuan_video_15", "HunyuanVideo15", {
        **_HUNYUAN, "in_channels": 65, "out_channels": 32, "patch_size": [1, 1, 1], "vec_in_dim": None,
        "guidance_embed": False, "use_cond_type_embedding": True, "vision_in_dim": 1152, "meanflow_sum": True},
        (32, 2, 4, 4), CondRecipe(16, pooled_dim=8)),
    TinySpec("hunyuan-image-2.1", "hunyuan_image_21", "HunyuanImage21", {
        **_HUNYUAN, "in_channels": 64, "out_channels": 64, "patch_size": [1, 1], "vec_in_dim": None,
        "axes_dim": [16, 16], "guidance_embed": True}, (64, 4, 4), CondRecipe(16, guidance=3.5),
        optional=_HUNYUAN_V1),
    TinySpec("wan2.1-t2v", "wan", "WAN21_T2V", _WAN, (16, 2, 8, 8), CondRecipe(16)),
    TinySpec("wan2.1-i2v", "wan_i2v", "WAN21_I2V", {**_WAN, "model_type": "i2v", "in_dim": 36}, (16, 2, 8, 8),
             CondRecipe(16, extras=_wan_i2v)),
    TinySpec("wan2.1-vace", "wan_vace", "WAN21_Vace", {**_WAN, "model_type": "vace", "vace_layers": 1,
                                                        "vace_in_dim": 96}, (16, 2, 8, 8),
             CondRecipe(16, extras=_wan_vace)),
    TinySpec("wan2.2-5b", "wan22_5b", "WAN22_T2V", {**_WAN, "in_dim": 48, "out_dim": 48}, (48, 2, 8, 8),
             CondRecipe(16)),
    TinySpec("lumina2", "lumina", "Lumina2", _LUMINA, (16, 8, 8), CondRecipe(16, extras=_attention_mask),
             optional={"rope_theta": 10000.0}),
    # Z-Image's modulation takes min(dim, 256) features from a 256-wide timestep embedding: dim must reach 256
    TinySpec("z-image", "z_image", "ZImage", {
        **_LUMINA, "dim": 256, "n_heads": 8, "n_kv_heads": 8, "axes_lens": [1536, 512, 512],
        "ffn_dim_multiplier": 8.0 / 3.0, "rope_theta": 256.0, "z_image_modulation": True, "time_scale": 1000.0, "pad_tokens_multiple": 32},
        (16, 8, 8), CondRecipe(16, extras=_attention_mask)),
    TinySpec("z-image-pixel", "z_image_pixel", "ZImagePixelSpace", {
        **_LUMINA, "image_model": "zimage_pixel", "in_channels": 3, "patch_size": 4, "dim": 256, "n_heads": 8,
        "n_kv_heads": 8,
        "axes_lens": [1536, 512, 512], "ffn_dim_multiplier": 8.0 / 3.0, "rope_theta": 256.0,
        "z_image_modulation": True, "time_scale": 1000.0, "decoder_in_channels": 48, "decoder_hidden_size": 32,
        "decoder_num_res_blocks": 1, "decoder_max_freqs": 4}, (3, 16, 16), CondRecipe(16, extras=_attention_mask)),
    TinySpec("hidream", "hidream", "HiDream", {
        "image_model": "hidream", "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 1,
        "num_single_layers": 1, "attention_head_dim": 32, "num_attention_heads": 2, "caption_channels": [16, 16],
        "text_emb_dim": 16, "num_routed_experts": 2, "num_activated_experts": 1, "axes_dims_rope": [16, 8, 8],
        "max_resolution": [128, 128], "llama_layers": [0, 1]}, (16, 8, 8),
        CondRecipe(16, pooled_dim=16, extras=_hidream_llama)),
    TinySpec("cosmos-predict2", "cosmos_predict2", "CosmosT2IPredict2", _PREDICT2, (16, 1, 8, 8), CondRecipe(16)),
    TinySpec("anima", "anima", "Anima", {**_PREDICT2, "image_model": "anima"}, (16, 1, 8, 8), CondRecipe(16)),
    TinySpec("auraflow", "aura", "AuraFlow", {
        "in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 64, "n_layers": 2, "n_double_layers": 1,
        "n_heads": 2, "global_conddim": 64, "cond_seq_dim": 16, "max_seq": 64}, (4, 8, 8), CondRecipe(16)),
    TinySpec("kandinsky5", "kandinsky5", "Kandinsky5", {
        "image_model": "kandinsky5", "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 16,
        "in_text_dim2": 8, "time_dim": 32, "model_dim": 64, "ff_dim": 128, "visual_embed_dim": 132,
        "patch_size": (1, 2, 2), "num_text_blocks": 1, "num_visual_blocks": 1, "axes_dims": (8, 12, 12)},
        (16, 2, 8, 8), CondRecipe(16, pooled_dim=8)),
    TinySpec("kandinsky5-image", "kandinsky5_image", "Kandinsky5Image", {
        "image_model": "kandinsky5", "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 16,
        "in_text_dim2": 8, "time_dim": 32, "model_dim": 64, "ff_dim": 128, "visual_embed_dim": 64,
        "patch_size": (1, 2, 2), "num_text_blocks": 1, "num_visual_blocks": 1, "axes_dims": (8, 12, 12),
        "rope_scale_factor": (1.0, 1.0, 1.0)}, (16, 8, 8), CondRecipe(16, pooled_dim=8)),
    TinySpec("sd1.5", "sd15", "SD15", {
        **_UNET, "adm_in_channels": None, "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1],
        "use_linear_in_transformer": False, "context_dim": 32}, (4, 8, 8), CondRecipe(32)),
    TinySpec("sdxl", "sdxl", "SDXL", {
        **_UNET, "num_classes": "sequential", "adm_in_channels": 32 + 6 * 256, "transformer_depth": [0, 1],
        "transformer_depth_output": [0, 0, 1, 1], "use_linear_in_transformer": True, "context_dim": 32},
        (4, 8, 8), CondRecipe(32, pooled_dim=32)),
)

_BY_KEY = {s.key: s for s in SPECS}


def spec(key: str) -> TinySpec:
    return _BY_KEY[key]
