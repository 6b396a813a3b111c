"""The templates a new user meets in ComfyUI's picker (Workflow > Browse Templates > ComfyUI-L2P): their order and
file names. Nothing here needs ComfyUI.

For a custom node pack's ``example_workflows/`` ComfyUI serves only files: ``/workflow_templates`` lists the JSON
file stems per pack (app/custom_node_manager.py, 0.3.64 and 0.33 alike) and the frontend (1.27 and 1.49, read from
their bundles) builds each card as ``{name, title: name, description: name with - and _ as spaces, mediaSubtype:
'jpg'}`` and loads the thumbnail from ``/api/workflow_templates/<pack>/<name>.jpg``. No index file or workflow field
is read. So the file name is the card's title and description: it says what the template does, without - or _
(they would turn into spaces), with a number for the order a new user needs (the server lists files in the
filesystem's order), and only characters every OS allows in a file name.
"""
from __future__ import annotations

from comfyui_l2p.nodes.learn_setup import LEARNING_TRAJECTORIES
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_parts import FLUX_SPEEDUP, FLUX_STEPS

FORBIDDEN = set('-_<>:"/\\|?*')  # - and _ read as spaces in the description; the rest are not allowed on Windows


def _catalog(flux_steps: int, flux_speedup: float) -> tuple[tuple[str, str], ...]:
    k = computed_count(flux_steps, flux_speedup)
    return (  # description key (workflow_parts.Description.name) -> file stem, in the order a new user needs them
        ("flux1-dev-l2p-cache", f"1 FLUX.1 dev + L2P Cache (learns from your first {LEARNING_TRAJECTORIES} images,"
                                f" then computes {k} of {flux_steps} steps)"),
        ("flux1-dev-forecast-cache", "2 FLUX.1 dev + Forecast Cache (training free, nothing to learn)"),
        ("qwen-image-l2p-cache", "3 Qwen Image + L2P Cache (with CFG)"),
        ("sdxl-l2p-cache", "4 SDXL + L2P Cache (UNet, with CFG)"),
        ("hunyuan-video-l2p-cache", "5 HunyuanVideo + L2P Cache (text to video)"),
        ("flux1-dev-l2p-calibrate", "6 FLUX.1 dev + L2P Calibrate (a predictor file from the runs you choose)"),
        ("wan2.2-14b-t2v-l2p-calibrate", "7 Wan 2.2 14B + L2P Calibrate (one file per expert, run it first)"),
        ("wan2.2-14b-t2v-l2p-cache", "8 Wan 2.2 14B + L2P Cache (both experts, after 7)"),
    )


TEMPLATES: tuple[tuple[str, str], ...] = _catalog(FLUX_STEPS, FLUX_SPEEDUP)
FILE_STEMS: dict[str, str] = dict(TEMPLATES)


def file_stem(key: str) -> str:
    """The file stem (the card's title) of the template described under ``key``."""
    if key not in FILE_STEMS:
        raise KeyError(f"no template '{key}' in scripts/workflow_catalog.py; known: {sorted(FILE_STEMS)}")
    return FILE_STEMS[key]


def mention(key: str) -> str:
    """How a note names another template: its title as the picker shows it, in italics."""
    return f"*{file_stem(key)}*"


def problems() -> list[str]:
    """What would make a card read wrong or a file fail to check out ([] = none)."""
    found = []
    for key, stem in TEMPLATES:
        bad = sorted(set(stem) & FORBIDDEN)
        if bad:
            found.append(f"'{stem}' ({key}) holds {bad}")
        if stem != stem.strip() or stem.endswith("."):
            found.append(f"'{stem}' ({key}) starts or ends with a space or dot")
    numbers = [stem.split(" ", 1)[0] for _, stem in TEMPLATES]
    if numbers != [str(i + 1) for i in range(len(TEMPLATES))]:
        found.append(f"the stems are not numbered 1..{len(TEMPLATES)} in order: {numbers}")
    return found
