"""Workflow descriptions for Wan 2.2 14B (two experts: calibrate, cache) and SDXL (cache); built into UI-format files
by scripts/make_workflows.py, like the FLUX, Qwen-Image and HunyuanVideo ones there. Nothing here needs ComfyUI.

Wan 2.2 14B is two models: the high-noise expert denoises the first part of the schedule, the low-noise expert the
rest, each in its own KSamplerAdvanced (start_at_step / end_at_step, leftover noise handed over), as ComfyUI's own
template video_wan2_2_14B_t2v does (20 steps split 10 + 10, cfg 3.5, euler / simple, ModelSamplingSD3 shift 8).
Each expert gets its own L2P node and its own predictor file, calibrated on its own sigma sub-range. The SDXL cache
learns by itself, like the FLUX, Qwen-Image and HunyuanVideo ones.
"""
from __future__ import annotations

from comfyui_l2p.nodes.learn_setup import AUTO_FILE
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_catalog import mention
from workflow_parts import (CALIBRATION_RIDGE, Description, ModelFile, N, Out, files_tree, grid_text, l2p_cache,
                            learned_file, learning_text, node, note)

_WAN22 = "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/"
WAN22_HIGH = ModelFile("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "diffusion_models",
                       _WAN22 + "diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors")
WAN22_LOW = ModelFile("wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "diffusion_models",
                      _WAN22 + "diffusion_models/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors")
UMT5 = ModelFile("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders",
                 "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/text_encoders/"
                 "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
WAN_VAE = ModelFile("wan_2.1_vae.safetensors", "vae", _WAN22 + "vae/wan_2.1_vae.safetensors")
SDXL_BASE = ModelFile("sd_xl_base_1.0.safetensors", "checkpoints",
                      "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
                      "sd_xl_base_1.0.safetensors")

# ComfyUI's Wan 2.2 14B template: 20 steps, the high-noise expert on steps 0-10, the low-noise one on 10-20, cfg 3.5
WAN_STEPS, WAN_SPLIT, WAN_CFG, WAN_SHIFT = 20, 10, 3.5, 8.0
# Each expert runs 10 steps; 2.5 computes 4 of them (8 of 20 in all). With CFG the guidance multiplies the
# difference of the cond and uncond forecasts, so a milder speedup than FLUX's, as for Qwen-Image.
WAN_SPEEDUP = 2.5
WAN_PREDICTORS = {expert: f"wan2.2-t2v-14b-{expert}-noise-euler-simple-{WAN_STEPS}-split-{WAN_SPLIT}-cfg.safetensors"
                  for expert in ("high", "low")}
# SDXL: 30 steps, cfg 7, euler / normal (the SDXL base model's usual setting); an EPS UNet under true CFG
SDXL_STEPS, SDXL_CFG, SDXL_SPEEDUP = 30, 7.0, 2.5


def wan22_graph(model_node, seed_control: str, prefix: str) -> list[N]:
    """Wan 2.2 14B text to video as ComfyUI's template builds it, with ``model_node(expert, model)`` between each
    expert's ModelSamplingSD3 and its KSamplerAdvanced."""
    high = node("UNETLoader", 0, node_title="High-noise expert", unet_name=WAN22_HIGH, weight_dtype="default")
    low = node("UNETLoader", 0, node_title="Low-noise expert", unet_name=WAN22_LOW, weight_dtype="default")
    clip = node("CLIPLoader", 0, clip_name=UMT5, type="wan", device="default")
    vae = node("VAELoader", 0, vae_name=WAN_VAE)
    latent = node("EmptyHunyuanLatentVideo", 0, width=640, height=640, length=81, batch_size=1)
    high_shift = node("ModelSamplingSD3", 1, model=high.out("MODEL"), shift=WAN_SHIFT)
    low_shift = node("ModelSamplingSD3", 1, model=low.out("MODEL"), shift=WAN_SHIFT)
    high_patch, low_patch = model_node("high", high_shift.out("MODEL")), model_node("low", low_shift.out("MODEL"))
    positive = node("CLIPTextEncode", 2, node_title="Positive prompt", node_width=420, clip=clip.out("CLIP"),
                    text="a red fox trotting through fresh snow in a birch forest at dawn, soft golden light,"
                         " tracking shot, cinematic")
    negative = node("CLIPTextEncode", 2, node_title="Negative prompt", node_width=420, clip=clip.out("CLIP"),
                    text="blurry, low quality, static, distorted, watermark, text")
    first = node("KSamplerAdvanced", 3, node_title="High-noise steps", model=high_patch.out("MODEL"),
                 positive=positive.out("CONDITIONING"), negative=negative.out("CONDITIONING"),
                 latent_image=latent.out("LATENT"), add_noise="enable", noise_seed=42,
                 control_after_generate=seed_control, steps=WAN_STEPS, cfg=WAN_CFG, sampler_name="euler",
                 scheduler="simple", start_at_step=0, end_at_step=WAN_SPLIT, return_with_leftover_noise="enable")
    second = node("KSamplerAdvanced", 3, node_title="Low-noise steps", model=low_patch.out("MODEL"),
                  positive=positive.out("CONDITIONING"), negative=negative.out("CONDITIONING"),
                  latent_image=first.out("LATENT"), add_noise="disable", noise_seed=0, control_after_generate="fixed",
                  steps=WAN_STEPS, cfg=WAN_CFG, sampler_name="euler", scheduler="simple", start_at_step=WAN_SPLIT,
                  end_at_step=10000, return_with_leftover_noise="disable")
    decode = node("VAEDecode", 4, samples=second.out("LATENT"), vae=vae.out("VAE"))
    video = node("CreateVideo", 4, images=decode.out("IMAGE"), fps=16.0)
    save = node("SaveVideo", 4, node_width=520, node_height=480, video=video.out("VIDEO"), filename_prefix=prefix,
                format="auto", codec="auto")
    return [high, low, clip, vae, latent, high_shift, low_shift, high_patch, low_patch, positive, negative, first,
            second, decode, video, save]


_WAN_GRID = (f"Each file is tied to its expert's part of the step grid ({WAN_STEPS} steps, euler, simple, shift"
             f" {WAN_SHIFT:g}, split at step {WAN_SPLIT}). L2P Cache refuses a file whose sigmas are not the run's:"
             f" the other expert's file (the message names both sigma ranges), or another step count or split:"
             f" calibrate again at the new setting.")


def wan22_l2p_calibrate() -> Description:
    text = f"""## Wan 2.2 14B: calibrate L2P for both experts

Wan 2.2 14B is two models: the **high-noise expert** samples steps 0-{WAN_SPLIT} of {WAN_STEPS}, the **low-noise\
 expert** steps {WAN_SPLIT}-{WAN_STEPS}. Each sees its own range of noise levels, so each gets its own **L2P\
 Calibrate** and its own predictor file; one queued run adds to both files.

1. Queue a handful of different prompts and seeds (the seed is set to *randomize*). Every finished run extends\
 `models/l2p/{WAN_PREDICTORS['high']}` and `models/l2p/{WAN_PREDICTORS['low']}`; a cancelled run adds nothing.
2. Then open the template {mention('wan2.2-14b-t2v-l2p-cache')}: its two L2P Cache nodes load these files (press R to refresh\
 the list), each its own expert's.

{_WAN_GRID} The CFG setup (cfg {WAN_CFG:g}, a negative prompt) is part of each file too; the experts may differ\
 (e.g. cfg 1 on a distilled low-noise LoRA): calibrate each as you sample it.

{files_tree([WAN22_HIGH, WAN22_LOW, UMT5, WAN_VAE], tuple(WAN_PREDICTORS.values()))}"""

    def calibrate(expert: str, model: Out) -> N:
        return node("L2PCalibrate", 1, highlight=True, node_title=f"L2P Calibrate ({expert}-noise expert)",
                    model=model, file_name=WAN_PREDICTORS[expert], ridge_lambda=CALIBRATION_RIDGE,
                    mode="teacher-forced", on_policy_speedup=WAN_SPEEDUP, lesa_sample=False)

    nodes = wan22_graph(calibrate, "randomize", "L2P/calibration/wan2.2-t2v")
    return Description("wan2.2-14b-t2v-l2p-calibrate", (note(text), *nodes))


def wan22_l2p_cache() -> Description:
    per_expert = WAN_STEPS - WAN_SPLIT
    k = computed_count(per_expert, WAN_SPEEDUP)
    text = f"""## Wan 2.2 14B text to video + L2P Cache on both experts

Each expert has its own **L2P Cache** with its own predictor file: at speedup {WAN_SPEEDUP} each computes {k} of its\
 {per_expert} steps for real and forecasts the others, {2 * k} of {WAN_STEPS} transformer passes in all. Each sits\
 between its expert's ModelSamplingSD3 and its KSamplerAdvanced.

**First make the two predictor files:** open the template {mention('wan2.2-14b-t2v-l2p-calibrate')} and queue a handful of\
 prompts and seeds; it writes both files.

{_WAN_GRID}

**Few steps:** a run too short for the speedup (e.g. a 4-step distilled LoRA split 2 + 2) computes the warm-up\
 steps, or every step, and the report says so; it never fails mid-video.

**Compare:** the seed is fixed. Select both L2P Cache nodes, press Ctrl+B (bypass) and queue again for the full\
 video.

{files_tree([WAN22_HIGH, WAN22_LOW, UMT5, WAN_VAE], tuple(WAN_PREDICTORS.values()))}"""
    nodes = wan22_graph(lambda expert, model: l2p_cache(1, model, WAN_PREDICTORS[expert], WAN_SPEEDUP,
                                                        title=f"L2P Cache ({expert}-noise expert)"),
                        "fixed", "L2P/wan2.2-t2v")
    return Description("wan2.2-14b-t2v-l2p-cache", (note(text), *nodes))


def sdxl_l2p_cache() -> Description:
    k = computed_count(SDXL_STEPS, SDXL_SPEEDUP)
    text = f"""## SDXL + L2P Cache

**L2P Cache** works on UNet models too: at speedup {SDXL_SPEEDUP} it runs {k} of the {SDXL_STEPS} UNet passes for\
 real and forecasts the others (the UNet's noise prediction) with a linear predictor fitted to this\
 checkpoint. It sits between the checkpoint loader (and any LoRA loaders) and the sampler.

{learning_text(SDXL_STEPS, SDXL_SPEEDUP, "checkpoint and LoRAs, steps, scheduler, CFG scale")}

**CFG:** with cfg {SDXL_CFG:g} the positive and negative prompts are two forecast streams and the guidance scale\
 multiplies the difference of their forecasts: a mild speedup to start with; raise it while the image holds up.\
 Not measured on the real SDXL weights: check the result against the full run.

**Compare:** the seed is fixed. Select L2P Cache, press Ctrl+B (bypass) and queue again for the full image.

{files_tree([SDXL_BASE], None, learned_file("sdxl", SDXL_STEPS, f"cfg{SDXL_CFG:g}", "normal"))}"""
    checkpoint = node("CheckpointLoaderSimple", 0, ckpt_name=SDXL_BASE)
    latent = node("EmptyLatentImage", 0, width=1024, height=1024, batch_size=1)
    cache = l2p_cache(1, checkpoint.out("MODEL"), AUTO_FILE, SDXL_SPEEDUP)
    positive = node("CLIPTextEncode", 2, node_title="Positive prompt", node_width=420, clip=checkpoint.out("CLIP"),
                    text="a lighthouse on a rocky cliff at sunset, crashing waves, dramatic clouds, oil painting")
    negative = node("CLIPTextEncode", 2, node_title="Negative prompt", node_width=420, clip=checkpoint.out("CLIP"),
                    text="blurry, low quality, watermark, text")
    sampler = node("KSampler", 3, model=cache.out("MODEL"), positive=positive.out("CONDITIONING"),
                   negative=negative.out("CONDITIONING"), latent_image=latent.out("LATENT"), seed=42,
                   control_after_generate="fixed", steps=SDXL_STEPS, cfg=SDXL_CFG, sampler_name="euler",
                   scheduler="normal", denoise=1.0)
    decode = node("VAEDecode", 4, samples=sampler.out("LATENT"), vae=checkpoint.out("VAE"))
    save = node("SaveImage", 4, node_width=520, node_height=560, images=decode.out("IMAGE"), filename_prefix="L2P/sdxl")
    return Description("sdxl-l2p-cache", (note(text), checkpoint, latent, cache, positive, negative, sampler, decode,
                                          save))


DESCRIPTIONS = (wan22_l2p_calibrate, wan22_l2p_cache, sdxl_l2p_cache)
