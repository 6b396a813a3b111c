"""Generate the pack's example workflows, ``example_workflows/*.json``: the templates ComfyUI serves for this pack.

ComfyUI lists ``custom_nodes/<pack>/example_workflows/*.json`` under Workflow > Browse Templates
(``app/custom_node_manager.py``). It serves ``example``, ``examples``, ``workflow`` and ``workflows`` too, but logs
a hint to rename those to ``example_workflows``: that is the one folder name it serves without complaint.

Each workflow is described compactly below: node types, widget values by input NAME, and links written as
``model=unet.out("MODEL")`` (an input name receiving a node's output, by output name). Everything positional that
the UI format needs -- the order of ``widgets_values`` (with the frontend-only ``control_after_generate`` value after
a seed), the link slot indices, the socket lists -- is read from the node definitions of a real ComfyUI, the same
definitions its ``/object_info`` sends to the frontend. So a description that names an unknown node or input,
leaves out a widget that has no default or links mismatched types fails here instead of producing a workflow that
loads wrong (a widget left out takes its default, as in a node the user adds).

The committed files are generated on the oldest ComfyUI the pack supports (``reference_host()``, 0.3.64) and are
checked on every other host by what ComfyUI's frontend makes of them there (``workflow_defs.load_differences``):
newer hosts add widgets with defaults (CreateVideo's bit_depth), turn a combo into a DynamicCombo (SaveVideo's
format) and add output slots (SaveImage, SaveVideo); a file saved on 0.3.64 loads on them as the generator builds
it there.

Usage (needs a ComfyUI checkout; nothing of it is modified):
    COMFYUI_PATH=/path/to/ComfyUI-0.3.64 python3 scripts/make_workflows.py   # (re)write example_workflows/
    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/make_workflows.py --check  # exit 1 unless right on that host

Public API (used by tests/test_workflows.py):
    WORKFLOW_NAMES: tuple[str, ...]          file stems, one per workflow
    OUT_DIR: Path                            example_workflows/
    generate_all() -> dict[str, dict]        name -> UI-format workflow (bootstraps ComfyUI on first use)
    reference_host() -> str                  the ComfyUI version the committed files are generated on
    committed_problems(generated, definitions, host_version) -> name -> list of problems ([] = right here)
    load_comfyui() -> (nodes module, set of this pack's node ids)
    render(workflow: dict) -> str            the exact text written to disk
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "example_workflows"
sys.path.insert(0, str(ROOT / "tests"))  # comfy_host: the one place that knows how to bootstrap ComfyUI in-process
sys.path.insert(0, str(ROOT / "scripts"))  # workflow_defs, when this file is loaded by path (tests/test_workflows.py)
import conftest  # noqa: E402,F401  (makes the pack importable as comfyui_l2p, without ComfyUI)

from comfyui_l2p.nodes.learn_setup import AUTO_FILE  # noqa: E402
from comfyui_l2p.nodes.tooltips import DEFAULT_FORECAST_METHOD  # noqa: E402
from comfyui_l2p.predictors.schedules.placements import computed_count  # noqa: E402
from workflow_defs import (CONTROL_VALUES, CONTROL_WIDGET, CORE_CNR_ID, NO_DEFAULT, PACK_CNR_ID, NodeDef,  # noqa: E402
                           load_differences, read_node_def)
from workflow_parts import (CALIBRATION_RIDGE, FORECAST_WARMUP, SCHEDULE_DEFAULTS, Description, ModelFile,  # noqa: E402
                            N, Out, files_tree, grid_text, l2p_cache, learned_file, learning_text, node, note)
import workflows_wan_sdxl  # noqa: E402

# ------------------------------------------------------------------------------------------ node definitions
# The frontend's reading of a node definition (widget order, DynamicCombos, what a saved node loads as) is in
# workflow_defs.py; the committed files are generated on the oldest ComfyUI the pack supports (REFERENCE_HOST).


# The description's parts (nodes, links, model files, notes) are in workflow_parts.py, shared with the
# descriptions in workflows_wan_sdxl.py.


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

# 50 steps for FLUX: the L2P paper calibrates and reports its speedups (4.55 / 5.56 / 7.14 = 11 / 9 / 7 computed
# steps) at 50 steps, so the same predictor file serves every published setting. 5.56 is the paper's 9-of-50.
FLUX_STEPS, FLUX_SPEEDUP = 50, 5.56
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
 steps in use. speedup 1 turns the cache off. The template *flux1-dev-l2p-calibrate* makes a file with full control\
 (its name, which runs go in); pin it here in predictor_file.

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
2. Then open the template *flux1-dev-l2p-cache* and pin this file in its predictor_file (press R to refresh the\
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
 *flux1-dev-l2p-calibrate* and *flux1-dev-l2p-cache*.

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
    flux_l2p_calibrate, flux_l2p_cache, qwen_image_l2p_cache, hunyuan_video_l2p_cache, flux_forecast_cache,
    *workflows_wan_sdxl.DESCRIPTIONS,
)
WORKFLOW_NAMES: tuple[str, ...] = tuple(describe().name for describe in DESCRIPTIONS)  # no ComfyUI needed


# -------------------------------------------------------------------------------------------- UI format

SLOT_HEIGHT, WIDGET_HEIGHT, MULTILINE_HEIGHT = 20, 24, 110  # LiteGraph's row heights, roughly
DEFAULT_WIDTH, COLUMN_GAP, ROW_GAP = 320, 70, 60
HIGHLIGHT = {"color": "#223322", "bgcolor": "#335533"}  # our node in green, so the eye finds it


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _versions() -> dict[str | None, str]:
    """properties.ver per cnr_id: the pack's version; for core nodes the oldest ComfyUI the pack supports."""
    project = _pyproject()
    core = project["tool"]["comfy"]["requires-comfyui"].lstrip(">=~^ ")
    return {PACK_CNR_ID: project["project"]["version"], CORE_CNR_ID: core}


def _height(definition: NodeDef, values: Mapping[str, Any]) -> int:
    rows = max(len(definition.sockets), len(definition.outputs))
    widgets = 0
    for slot in definition.widget_slots(values):
        multiline = slot.input is not None and slot.input.options.get("multiline")
        widgets += MULTILINE_HEIGHT if multiline else WIDGET_HEIGHT
    return 10 + SLOT_HEIGHT * rows + widgets


def _execution_order(ids: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """LiteGraph's node.order: a topological order, ties by id (Kahn)."""
    indegree = {i: 0 for i in ids}
    children: dict[int, list[int]] = {i: [] for i in ids}
    for a, b in edges:
        indegree[b] += 1
        children[a].append(b)
    ready = [i for i in ids if indegree[i] == 0]
    heapq.heapify(ready)
    order: dict[int, int] = {}
    while ready:
        i = heapq.heappop(ready)
        order[i] = len(order)
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != len(ids):
        raise ValueError("the workflow description has a cycle")
    return order


def build(description: Description, definitions: Callable[[str], NodeDef]) -> dict:
    """The UI-format workflow (version 0.4) of ``description``; raises on anything the frontend would load wrong."""
    versions = _versions()
    ids = {id(n): index + 1 for index, n in enumerate(description.nodes)}
    defs = {id(n): definitions(n.type) for n in description.nodes}
    links: list[list] = []
    inputs: dict[int, list[dict]] = {}
    outputs: dict[int, list[dict]] = {}
    widgets: dict[int, list] = {}
    for n in description.nodes:
        d = defs[id(n)]
        where = f"{description.name}: {n.type}"
        outputs[id(n)] = [{"name": name, "type": t, "slot_index": slot, "links": []}
                          for slot, (name, t) in enumerate(d.outputs)]
        slot_names = {slot.name for slot in d.widget_slots(n.values)}
        unknown = set(n.values) - {i.name for i in d.inputs} - slot_names
        if unknown:
            raise KeyError(f"{where}: no input(s) {sorted(unknown)}; its inputs are {[i.name for i in d.inputs]}")
    for n in description.nodes:  # links after every node has its output list
        d = defs[id(n)]
        where = f"{description.name}: {n.type}"
        node_inputs = []
        for slot, socket in enumerate(d.sockets):
            entry: dict[str, Any] = {"name": socket.name, "type": socket.type, "link": None}
            if socket.optional:
                entry["shape"] = 7  # LiteGraph's hollow circle: the frontend marks optional sockets this way
            source = n.values.get(socket.name)
            if source is not None:
                if not isinstance(source, Out):
                    raise TypeError(f"{where}: socket '{socket.name}' needs a link (node.out(name)), got {source!r}")
                src_def = defs[id(source.node)]
                names = [name for name, _ in src_def.outputs]
                if source.output not in names:
                    raise KeyError(f"{where}: {source.node.type} has no output '{source.output}'; it has {names}")
                src_slot = names.index(source.output)
                link_type = src_def.outputs[src_slot][1]
                if link_type != socket.type and "*" not in (link_type, socket.type):
                    raise TypeError(f"{where}: '{socket.name}' takes {socket.type}, {source.node.type}."
                                    f"{source.output} gives {link_type}")
                link_id = len(links) + 1
                links.append([link_id, ids[id(source.node)], src_slot, ids[id(n)], slot, link_type])
                outputs[id(source.node)][src_slot]["links"].append(link_id)
                entry["link"] = link_id
            elif not socket.optional:
                raise KeyError(f"{where}: required input '{socket.name}' is not linked")
            node_inputs.append(entry)
        inputs[id(n)] = node_inputs
        slots = d.widget_slots(n.values)
        # a widget the description leaves out holds its default, as in a node the user adds: so a widget a newer
        # ComfyUI adds with a default needs no change here (CreateVideo's bit_depth, SaveVideo's format.codec)
        missing = [slot.name for slot in slots if slot.name not in n.values and slot.default is NO_DEFAULT]
        if missing:
            raise KeyError(f"{where}: widget value(s) {missing} not given and without a default (widgets in order:"
                           f" {[slot.name for slot in slots]})")
        values = []
        for slot in slots:
            value = n.values.get(slot.name, slot.default)
            if isinstance(value, Out):
                raise TypeError(f"{where}: '{slot.name}' is a widget in this ComfyUI, not a socket: give it a value")
            if slot.name == CONTROL_WIDGET and value not in CONTROL_VALUES:
                raise ValueError(f"{where}: {CONTROL_WIDGET} must be one of {CONTROL_VALUES}, got {value!r}")
            values.append(value.name if isinstance(value, ModelFile) else value)
        widgets[id(n)] = values

    order = _execution_order(list(ids.values()), [(link[1], link[3]) for link in links])
    columns = sorted({n.column for n in description.nodes})
    sizes = {id(n): [n.width or DEFAULT_WIDTH, n.height or _height(defs[id(n)], n.values)] for n in description.nodes}
    column_x, x = {}, 0
    for c in columns:
        column_x[c] = x
        x += max(sizes[id(n)][0] for n in description.nodes if n.column == c) + COLUMN_GAP
    column_y = {c: 0 for c in columns}
    nodes_json = []
    for n in description.nodes:
        d = defs[id(n)]
        nid = ids[id(n)]
        pos = [column_x[n.column], column_y[n.column]]
        column_y[n.column] += sizes[id(n)][1] + ROW_GAP
        entry: dict[str, Any] = {"id": nid, "type": n.type}
        if n.title:
            entry["title"] = n.title
        entry.update({"pos": pos, "size": sizes[id(n)], "flags": {}, "order": order[nid], "mode": 0,
                      "inputs": inputs[id(n)], "outputs": outputs[id(n)]})
        properties: dict[str, Any] = {}
        if d.cnr_id is not None:
            properties = {"Node name for S&R": n.type, "cnr_id": d.cnr_id, "ver": versions[d.cnr_id]}
            models = [{"name": v.name, "url": v.url, "directory": v.directory}
                      for v in n.values.values() if isinstance(v, ModelFile)]
            if models:
                properties["models"] = models
        entry["properties"] = properties
        entry["widgets_values"] = widgets[id(n)]
        if n.highlight:
            entry.update(HIGHLIGHT)
        nodes_json.append(entry)
    return {
        # a fixed id per template, so regenerating changes nothing
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://github.com/comfyui-l2p/ComfyUI-L2P/{description.name}")),
        "revision": 0,
        "last_node_id": max(ids.values()),
        "last_link_id": len(links),
        "nodes": nodes_json,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [600, 80]}},
        "version": 0.4,
    }


def render(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------------ ComfyUI


def load_comfyui() -> tuple[Any, set[str]]:
    """ComfyUI's ``nodes`` module (COMFYUI_PATH) with its built-in extra nodes and this pack loaded, as at startup;
    and the node ids this pack registered."""
    import comfy_host

    comfy = comfy_host.bootstrap()
    extras = str(comfy.path / "comfy_extras")  # load_custom_node registers each extra under its path (nodes.py)
    if not any(name.startswith(extras) for name in sys.modules):
        asyncio.run(comfy.nodes.init_builtin_extra_nodes())
    return comfy.nodes, set(comfy_host.load_pack_in_comfyui().nodes)


def comfyui_definitions() -> Callable[[str], NodeDef]:
    """Node definitions as the ComfyUI at COMFYUI_PATH serves them, with this pack loaded."""
    nodes, pack_ids = load_comfyui()
    cache: dict[str, NodeDef] = {}

    def definition(node_type: str) -> NodeDef:
        if node_type not in cache:
            cache[node_type] = read_node_def(node_type, nodes.NODE_CLASS_MAPPINGS, pack_ids)
        return cache[node_type]

    return definition


def generate_all(definitions: Callable[[str], NodeDef] | None = None) -> dict[str, dict]:
    definitions = definitions or comfyui_definitions()
    workflows = {}
    for describe in DESCRIPTIONS:
        description = describe()
        workflows[description.name] = build(description, definitions)
    return workflows


def reference_host() -> str:
    """The ComfyUI version the committed files are generated on: the oldest the pack supports (pyproject.toml
    requires-comfyui). A workflow saved there loads right on every newer host that only adds defaulted widgets
    and unlinked slots, which is what ComfyUI's own compatibility promises; one generated on the newest host would
    carry values and output slots an older host does not have."""
    return _versions()[CORE_CNR_ID]


def committed_problems(generated: Mapping[str, dict], definitions: Callable[[str], NodeDef],
                       host_version: str) -> dict[str, list[str]]:
    """Workflow name -> what is wrong with the committed file on this host ([]: nothing). On the reference host
    the file must be the generator's output byte for byte; on any other, it must load as the generator builds it
    there (workflow_defs.load_differences: what ComfyUI's frontend makes of a workflow saved on another version)."""
    problems = {}
    for name, workflow in generated.items():
        path = OUT_DIR / f"{name}.json"
        if not path.exists():
            problems[name] = [f"{path.relative_to(ROOT)} is missing"]
        elif host_version == reference_host():
            text_equal = path.read_text(encoding="utf-8") == render(workflow)
            problems[name] = [] if text_equal else [f"differs from the generator on ComfyUI {host_version}"]
        else:
            problems[name] = load_differences(json.loads(path.read_text(encoding="utf-8")), workflow, definitions)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    import comfy_host

    path = comfy_host.comfyui_path()
    if path is None:
        parser.error(comfy_host.SKIP_REASON)
    host = comfy_host.comfyui_version(path)
    if host != reference_host() and not args.check:
        parser.error(f"the committed workflows are generated on ComfyUI {reference_host()}, the oldest this pack "
                     f"supports (pyproject.toml requires-comfyui); {path} is ComfyUI {host}. Point COMFYUI_PATH at "
                     f"a {reference_host()} checkout to write them, or run with --check to test them on this one.")
    definitions = comfyui_definitions()
    workflows = generate_all(definitions)
    extra = sorted(p for p in OUT_DIR.glob("*.json") if p.stem not in workflows) if OUT_DIR.exists() else []
    for path_ in extra:
        print(f"not generated by this script (remove it or describe it here): {path_.relative_to(ROOT)}")
    if args.check:
        problems = {name: found for name, found in committed_problems(workflows, definitions, host).items() if found}
        for name, found in problems.items():
            print(f"{name}.json on ComfyUI {host}:\n  " + "\n  ".join(found))
        if not problems and not extra:
            print(f"{len(workflows)} workflows right on ComfyUI {host} in {OUT_DIR.relative_to(ROOT)}/")
        return 1 if problems or extra else 0
    written = 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, workflow in workflows.items():
        target, text = OUT_DIR / f"{name}.json", render(workflow)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            print(f"wrote: {target.relative_to(ROOT)}")
            written += 1
    if not written and not extra:
        print(f"{len(workflows)} workflows up to date in {OUT_DIR.relative_to(ROOT)}/")
    return 1 if extra else 0


if __name__ == "__main__":
    sys.exit(main())
