"""Workflow descriptions for FLUX.1-dev (L2P Cache, L2P Calibrate, Forecast Cache), Qwen-Image and HunyuanVideo
(L2P Cache); built into UI-format files by scripts/make_workflows.py, like the Wan 2.2 and SDXL ones in
workflows_wan_sdxl.py. Nothing here needs ComfyUI.

Each graph is the stock one of ComfyUI's own templates (comfyui_workflow_templates: flux_dev_full_text_to_image,
image_qwen_image, hunyuan_video_text_to_video) with our node between the model loader and the sampler.
"""
from __future__ import annotations

from typing import Callable

from comfyui_l2p.nodes.learn_setup import AUTO_FILE
from comfyui_l2p.nodes.tooltips import DEFAULT_FORECAST_METHOD
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_catalog import mention
from workflow_parts import (CALIBRATION_RIDGE, FLUX_SPEEDUP, FLUX_STEPS, FORECAST_WARMUP, SCHEDULE_DEFAULTS,
                            Description, ModelFile, N, Out, files_tree, grid_text, l2p_cache, learned_file,
                            learning_text, node, note)

# ------------------------------------------------------------------------------------ stock models, settings
# File names, folders and links as ComfyUI's own templates use them (comfyui_workflow_templates: flux_dev_full_text
# _to_image, image_qwen_image, hunyuan_video_text_to_video).

FLUX_DEV = ModelFile("flux1-dev.safetensors", "diffusion_models",
                     "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors")
CLIP_L = ModelFile("clip_l.safetensors", "text_encoders",
                   "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors")
T5XXL = ModelFile("t5xxl_fp16.safetensors", "text_encoders",
                  "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors")
FLUX_VAE = ModelFile("ae.safetensors", "vae",
                     "https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/"
                     "ae.safetensors")
_QWEN = "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/"
QWEN_IMAGE = ModelFile("qwen_image_fp8_e4m3fn.safetensors", "diffusion_models",
                       _QWEN + "diffusion_models/qwen_image_fp8_e4m3fn.safetensors")
QWEN_TE = ModelFile("qwen_2.5_vl_7b_fp8_scaled.safetensors", "text_encoders",
                    _QWEN + "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors")
QWEN_VAE = ModelFile("qwen_image_vae.safetensors", "vae", _QWEN + "vae/qwen_image_vae.safetensors")
_HUNYUAN = "https://huggingface.co/Comfy-Org/HunyuanVideo_repackaged/resolve/main/split_files/"
HUNYUAN_VIDEO = ModelFile("hunyuan_video_t2v_720p_bf16.safetensors", "diffusion_models",
                          _HUNYUAN + "diffusion_models/hunyuan_video_t2v_720p_bf16.safetensors")
LLAVA_LLAMA3 = ModelFile("llava_llama3_fp8_scaled.safetensors", "text_encoders",
                         _HUNYUAN + "text_encoders/llava_llama3_fp8_scaled.safetensors")
HUNYUAN_VAE = ModelFile("hunyuan_video_vae_bf16.safetensors", "vae",
                        _HUNYUAN + "vae/hunyuan_video_vae_bf16.safetensors")

FLUX_PREDICTOR = f"flux1-dev-euler-simple-{FLUX_STEPS}.safetensors"  # what the calibration template writes
# Qwen-Image: the Qwen team's 40 steps at cfg 2.5 (the stock template's table); with true CFG the guidance scale
# multiplies the difference of the cond and uncond forecasts, so a milder speedup than FLUX's.
QWEN_STEPS, QWEN_SPEEDUP = 40, 2.5
# HunyuanVideo: 50 steps, the model's reference setting; guidance is distilled (FluxGuidance 6, no CFG) like FLUX.
HUNYUAN_STEPS, HUNYUAN_SPEEDUP = 50, 5.0
FORECAST_SPEEDUP = 4.55  # 11 of 50 steps: the paper's mildest setting, a fair training-free starting point
FORECAST_METHOD = DEFAULT_FORECAST_METHOD  # the node's default: the best training-free mean at 4.55x

# --------------------------------------------------------------------------------------------- workflows


def flux_graph(model_node: Callable[[Out], N], steps: int, seed_control: str, prefix: str) -> list[N]:
    """FLUX.1-dev text to image as the stock template builds it (UNET / dual CLIP / VAE loaders, FluxGuidance 3.5,
    cfg 1, euler / simple), with ``model_node`` between the loader and the KSampler."""
    unet = node("UNETLoader", 0, unet_name=FLUX_DEV, weight_dtype="default")
    clip = node("DualCLIPLoader", 0, clip_name1=CLIP_L, clip_name2=T5XXL, type="flux", device="default")
    vae = node("VAELoader", 0, vae_name=FLUX_VAE)
    latent = node("EmptySD3LatentImage", 0, width=1024, height=1024, batch_size=1)
    patched = model_node(unet.out("MODEL"))
    prompt = node("CLIPTextEncode", 1, node_title="Positive prompt", node_width=420, clip=clip.out("CLIP"),
                  text="a red fox curled up asleep in fresh snow at dawn, soft golden light, shallow depth of field,"
                       " detailed fur, wildlife photograph")
    guidance = node("FluxGuidance", 2, conditioning=prompt.out("CONDITIONING"), guidance=3.5)
    negative = node("ConditioningZeroOut", 2, conditioning=prompt.out("CONDITIONING"))
    sampler = node("KSampler", 3, model=patched.out("MODEL"), positive=guidance.out("CONDITIONING"),
                   negative=negative.out("CONDITIONING"), latent_image=latent.out("LATENT"), seed=42,
                   control_after_generate=seed_control, steps=steps, cfg=1.0, sampler_name="euler",
                   scheduler="simple", denoise=1.0)
    decode = node("VAEDecode", 4, samples=sampler.out("LATENT"), vae=vae.out("VAE"))
    save = node("SaveImage", 4, node_width=520, node_height=560, images=decode.out("IMAGE"), filename_prefix=prefix)
    return [unet, clip, vae, latent, patched, prompt, guidance, negative, sampler, decode, save]


def flux_l2p_cache() -> Description:
    text = f"""## FLUX.1-dev + L2P Cache

**L2P Cache** skips most passes of the FLUX transformer and forecasts them with a linear predictor fitted to this\
 model (L2P). It sits between the model loader (and any LoRA loaders) and the sampler.

{learning_text(FLUX_STEPS, FLUX_SPEEDUP, "model and LoRAs, steps, scheduler, CFG")}

**Why {FLUX_STEPS} steps:** the L2P paper calibrates FLUX.1-dev at {FLUX_STEPS} steps and reports its speedups there\
 (4.55 / 5.56 / 7.14 = 11 / 9 / 7 computed steps); one learned file serves all three.

**Settings:** placement *optimized* chooses the computed steps from the learned statistics to minimise the expected\
 error of the final image; the first step (warm-up) is always computed; *direct* fits the forecast weights for the\
 steps in use. speedup 1 turns the cache off. The template {mention('flux1-dev-l2p-calibrate')} makes a file with full\
 control (its name, which runs go in); pin it here in predictor_file.

**Compare:** the seed is set to *randomize*, so the images L2P Cache learns from differ. Set it to *fixed*, queue,\
 then select L2P Cache, press Ctrl+B (bypass) and queue again for the full {FLUX_STEPS}-step image.

{files_tree([FLUX_DEV, CLIP_L, T5XXL, FLUX_VAE], None, learned_file("flux", FLUX_STEPS, "cfg1"))}"""
    nodes = flux_graph(lambda model: l2p_cache(1, model, AUTO_FILE, FLUX_SPEEDUP), FLUX_STEPS, "randomize", "L2P/flux1-dev")
    return Description("flux1-dev-l2p-cache", (note(text), *nodes))


def flux_l2p_calibrate() -> Description:
    text = f"""## FLUX.1-dev: calibrate L2P

**L2P Calibrate** runs every step for real (no speedup) and records what the L2P predictor needs. After every\
 finished sampling run it creates, or extends, `models/l2p/{FLUX_PREDICTOR}`; a cancelled run adds nothing.

1. Queue a handful of different prompts and seeds: the seed is set to *randomize*, so every run gets a new one.\
 The runs accumulate into the one file.
2. Then open the template {mention('flux1-dev-l2p-cache')} and pin this file in its predictor_file (press R to refresh the\
 list): L2P Cache skips most of the {FLUX_STEPS} steps with it. (Left on *auto*, L2P Cache learns by itself from\
 its first images instead; this template is for full control over which runs go into the file.)

{grid_text(FLUX_STEPS)} So keep these the same here and in the cache workflow. {FLUX_STEPS} steps is the L2P paper's\
 setting: its published speedups (4.55 / 5.56 / 7.14 = 11 / 9 / 7 computed steps) apply to this file.

**Settings:** *teacher-forced* records the true output of every step; *on-policy* (for a second round, once the\
 file exists) follows the file's own forecasts at on_policy_speedup while still recording the truth.

{files_tree([FLUX_DEV, CLIP_L, T5XXL, FLUX_VAE], FLUX_PREDICTOR)}"""

    def calibrate(model: Out) -> N:
        return node("L2PCalibrate", 1, highlight=True, model=model, file_name=FLUX_PREDICTOR, ridge_lambda=CALIBRATION_RIDGE,
                    mode="teacher-forced", on_policy_speedup=FLUX_SPEEDUP, lesa_sample=False)

    nodes = flux_graph(calibrate, FLUX_STEPS, "randomize", "L2P/calibration/flux1-dev")
    return Description("flux1-dev-l2p-calibrate", (note(text), *nodes))


def flux_forecast_cache() -> Description:
    k = computed_count(FLUX_STEPS, FORECAST_SPEEDUP)
    text = f"""## FLUX.1-dev + Forecast Cache (training-free)

**Forecast Cache** needs no calibration. It computes {k} of the {FLUX_STEPS} steps for real (speedup\
 {FORECAST_SPEEDUP}) and forecasts the others from them: *{FORECAST_METHOD.value}* (the node's default) fits a\
 parabola through the last three computed outputs, and *even* placement spreads the computed steps evenly after the\
 {FORECAST_WARMUP} warm-up steps. On the reference models it had the best mean of the training-free methods at 4.55x\
 and 5.56x. Other methods: FORA (reuse the last output), TaylorSeer order 1, Spectrum (the spectrum_ inputs are\
 its own; the other methods ignore them), FoCa. It sits between the model loader (and any LoRA loaders) and the\
 sampler.

For a model you can calibrate, L2P Cache fits the forecast to the model instead: see the templates\
 {mention('flux1-dev-l2p-calibrate')} and {mention('flux1-dev-l2p-cache')}.

**Compare:** the seed is fixed. Select Forecast Cache, press Ctrl+B (bypass) and queue again for the full\
 {FLUX_STEPS}-step image.

{files_tree([FLUX_DEV, CLIP_L, T5XXL, FLUX_VAE], None)}"""

    def forecast(model: Out) -> N:
        return node("L2PForecastCache", 1, highlight=True, model=model, method=FORECAST_METHOD.value, time_axis="step",
                    speedup=FORECAST_SPEEDUP, placement="even", warmup_steps=FORECAST_WARMUP, **SCHEDULE_DEFAULTS, spectrum_degree=4,
                    spectrum_lambda=0.1, spectrum_blend=0.5)

    nodes = flux_graph(forecast, FLUX_STEPS, "fixed", "L2P/flux1-dev-forecast")
    return Description("flux1-dev-forecast-cache", (note(text), *nodes))


def qwen_image_l2p_cache() -> Description:
    k = computed_count(QWEN_STEPS, QWEN_SPEEDUP)
    text = f"""## Qwen-Image (with CFG) + L2P Cache

**L2P Cache** skips most passes of the Qwen-Image transformer: at speedup {QWEN_SPEEDUP} it runs {k} of the\
 {QWEN_STEPS} steps for real and forecasts the others with a linear predictor fitted to this model (L2P). It sits\
 between the model (after ModelSamplingAuraFlow) and the sampler.

{learning_text(QWEN_STEPS, QWEN_SPEEDUP, "model and LoRAs, steps, scheduler, shift, CFG scale")}

**CFG:** with cfg 2.5 the positive and negative prompts are forecast as two streams, and the guidance scale\
 multiplies the difference of their forecasts, so forecast errors weigh more than on FLUX (cfg 1). Hence a milder\
 speedup; raise it while the image holds up. {QWEN_STEPS} steps at cfg 2.5 is the Qwen team's suggestion.

**Compare:** the seed is fixed. Select L2P Cache, press Ctrl+B (bypass) and queue again for the full image. While\
 L2P Cache learns, vary the prompt: a few different images teach it more than one image several times.

{files_tree([QWEN_IMAGE, QWEN_TE, QWEN_VAE], None, learned_file("qwen_image", QWEN_STEPS, "cfg2.5"))}"""
    unet = node("UNETLoader", 0, unet_name=QWEN_IMAGE, weight_dtype="default")
    clip = node("CLIPLoader", 0, clip_name=QWEN_TE, type="qwen_image", device="default")
    vae = node("VAELoader", 0, vae_name=QWEN_VAE)
    latent = node("EmptySD3LatentImage", 0, width=1328, height=1328, batch_size=1)
    shift = node("ModelSamplingAuraFlow", 1, model=unet.out("MODEL"), shift=3.1)
    cache = l2p_cache(1, shift.out("MODEL"), AUTO_FILE, QWEN_SPEEDUP)
    positive = node("CLIPTextEncode", 2, node_title="Positive prompt", node_width=420, clip=clip.out("CLIP"),
                    text='a hand-painted wooden shop sign reading "L2P BAKERY" above a window full of fresh bread,'
                         " morning light, rainy cobblestone street")
    negative = node("CLIPTextEncode", 2, node_title="Negative prompt", node_width=420, clip=clip.out("CLIP"), text="")
    sampler = node("KSampler", 3, model=cache.out("MODEL"), positive=positive.out("CONDITIONING"),
                   negative=negative.out("CONDITIONING"), latent_image=latent.out("LATENT"), seed=42,
                   control_after_generate="fixed", steps=QWEN_STEPS, cfg=2.5, sampler_name="euler",
                   scheduler="simple", denoise=1.0)
    decode = node("VAEDecode", 4, samples=sampler.out("LATENT"), vae=vae.out("VAE"))
    save = node("SaveImage", 4, node_width=520, node_height=560, images=decode.out("IMAGE"),
                filename_prefix="L2P/qwen-image")
    return Description("qwen-image-l2p-cache",
                       (note(text), unet, clip, vae, latent, shift, cache, positive, negative, sampler, decode, save))


def hunyuan_video_l2p_cache() -> Description:
    k = computed_count(HUNYUAN_STEPS, HUNYUAN_SPEEDUP)
    text = f"""## HunyuanVideo text to video + L2P Cache

**L2P Cache** skips most passes of the HunyuanVideo transformer: at speedup {HUNYUAN_SPEEDUP} it runs {k} of the\
 {HUNYUAN_STEPS} steps for real and forecasts the others with a linear predictor fitted to this model (L2P). It sits\
 between the model (after ModelSamplingSD3) and the guider and scheduler.

{learning_text(HUNYUAN_STEPS, HUNYUAN_SPEEDUP, "model and LoRAs, steps, scheduler, shift")} Here an image is a\
 video: the first videos are computed in full.

Guidance is distilled into HunyuanVideo (FluxGuidance 6, no CFG): one stream per video, as on FLUX.

**Compare:** the noise seed is fixed. Select L2P Cache, press Ctrl+B (bypass) and queue again for the full video.\
 Lower the VAE decode tile sizes if you run out of memory.

{files_tree([HUNYUAN_VIDEO, CLIP_L, LLAVA_LLAMA3, HUNYUAN_VAE], None,
            learned_file("hunyuan_video", HUNYUAN_STEPS, "guider"))}"""
    unet = node("UNETLoader", 0, unet_name=HUNYUAN_VIDEO, weight_dtype="default")
    clip = node("DualCLIPLoader", 0, clip_name1=CLIP_L, clip_name2=LLAVA_LLAMA3, type="hunyuan_video",
                device="default")
    vae = node("VAELoader", 0, vae_name=HUNYUAN_VAE)
    latent = node("EmptyHunyuanLatentVideo", 0, width=848, height=480, length=73, batch_size=1)
    shift = node("ModelSamplingSD3", 1, model=unet.out("MODEL"), shift=7.0)
    cache = l2p_cache(1, shift.out("MODEL"), AUTO_FILE, HUNYUAN_SPEEDUP)
    prompt = node("CLIPTextEncode", 1, node_title="Prompt", node_width=420, clip=clip.out("CLIP"),
                  text="a paper boat drifting down a rain-filled gutter, ripples and reflections of neon signs,"
                       " slow tracking shot, cinematic")
    guidance = node("FluxGuidance", 2, conditioning=prompt.out("CONDITIONING"), guidance=6.0)
    guider = node("BasicGuider", 2, model=cache.out("MODEL"), conditioning=guidance.out("CONDITIONING"))
    noise = node("RandomNoise", 2, noise_seed=42, control_after_generate="fixed")
    sampler_select = node("KSamplerSelect", 2, sampler_name="euler")
    scheduler = node("BasicScheduler", 2, model=cache.out("MODEL"), scheduler="simple", steps=HUNYUAN_STEPS,
                     denoise=1.0)
    sampler = node("SamplerCustomAdvanced", 3, noise=noise.out("NOISE"), guider=guider.out("GUIDER"),
                   sampler=sampler_select.out("SAMPLER"), sigmas=scheduler.out("SIGMAS"),
                   latent_image=latent.out("LATENT"))
    decode = node("VAEDecodeTiled", 4, samples=sampler.out("output"), vae=vae.out("VAE"), tile_size=256,
                  overlap=64, temporal_size=64, temporal_overlap=8)
    video = node("CreateVideo", 4, images=decode.out("IMAGE"), fps=24.0)
    save = node("SaveVideo", 4, node_width=520, node_height=480, video=video.out("VIDEO"),
                filename_prefix="L2P/hunyuan-video", format="auto", codec="auto")
    return Description("hunyuan-video-l2p-cache",
                       (note(text), unet, clip, vae, latent, shift, cache, prompt, guidance, guider, noise,
                        sampler_select, scheduler, sampler, decode, video, save))


DESCRIPTIONS: tuple[Callable[[], Description], ...] = (
    flux_l2p_cache, flux_forecast_cache, qwen_image_l2p_cache, hunyuan_video_l2p_cache, flux_l2p_calibrate,
)
