"""The parts a workflow description is made of (scripts/make_workflows.py builds the UI format from them): nodes
with their inputs by name, links by output name, model files the frontend offers to download, and the notes' common
texts. Shared by the descriptions in make_workflows.py and workflows_wan_sdxl.py; nothing here needs ComfyUI."""
from __future__ import annotations

import dataclasses
from typing import Any

from comfyui_l2p.nodes.learn_setup import KEEP_LEARNING_EVERY, LEARNING_TRAJECTORIES, TOP_UP_TRAJECTORIES
from comfyui_l2p.predictors.schedules.placements import computed_count


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A model file a loader widget names: the frontend offers to download it when missing (properties.models)."""

    name: str
    directory: str  # the models/ subfolder
    url: str


@dataclasses.dataclass(eq=False)
class N:
    """One node of a description. ``values``: input name -> widget value, ``ModelFile``, or ``Out`` (a link);
    ``control_after_generate`` -> the seed's control value. ``column`` places it left to right."""

    type: str
    column: int
    values: dict[str, Any]
    title: str | None = None
    width: int | None = None
    height: int | None = None
    highlight: bool = False

    def out(self, name: str) -> "Out":
        return Out(self, name)


@dataclasses.dataclass(frozen=True)
class Out:
    node: N
    output: str


@dataclasses.dataclass(frozen=True)
class Description:
    name: str  # the template's key; its file stem (the card's title) is workflow_catalog.file_stem(name)
    nodes: tuple[N, ...]


def node(type_: str, column: int, *, node_title: str | None = None, node_width: int | None = None,
         node_height: int | None = None, highlight: bool = False, **values: Any) -> N:
    """A node of ``type_`` in ``column``; ``values`` are its inputs by name (the node_* names only lay it out)."""
    return N(type_, column, values, node_title, node_width, node_height, highlight)


# ----------------------------------------------------------------------------------------- our nodes
SCHEDULE_DEFAULTS = dict(compute_last_step=False, residual_budget=0.05, history_device="model device")
# The nodes' own defaults (nodes/setups.py, measured by python3 -m benchmark.sweep): L2P's optimized placement
# starts from one warm-up step, training-free forecasters from two; the calibration ridge is 1e-6.
L2P_WARMUP, FORECAST_WARMUP, CALIBRATION_RIDGE = 1, 2, 1e-6
# 50 steps for FLUX: the L2P paper calibrates and reports its speedups (4.55 / 5.56 / 7.14 = 11 / 9 / 7 computed
# steps) at 50 steps, so the same predictor file serves every published setting. 5.56 is the paper's 9-of-50.
# (Here, not with the FLUX descriptions, because the template catalog's titles quote them too.)
FLUX_STEPS, FLUX_SPEEDUP = 50, 5.56


def l2p_cache(column: int, model: Out, predictor_file: str, speedup: float, title: str | None = None) -> N:
    return node("L2PCache", column, highlight=True, node_title=title, model=model, predictor_file=predictor_file,
                speedup=speedup, placement="optimized", warmup_steps=L2P_WARMUP, **SCHEDULE_DEFAULTS,
                predictor="direct", step_grid_mismatch="refuse", other_model="refuse")


# ------------------------------------------------------------------------------------------------- notes


def files_tree(files: list[ModelFile], predictor_file: str | tuple[str, ...] | None,
               learned: str | None = None) -> str:
    """Download links and the models/ tree, as ComfyUI's own templates show them (one predictor file or several
    that L2P Calibrate writes, and ``learned``: the file L2P Cache learns by itself)."""
    by_dir: dict[str, list[str]] = {}
    for f in files:
        by_dir.setdefault(f.directory, []).append(f.name)
    predictors = (predictor_file,) if isinstance(predictor_file, str) else predictor_file or ()
    for name in predictors:
        by_dir.setdefault("l2p", []).append(f"{name}   <- written by L2P Calibrate")
    if learned:
        by_dir.setdefault("l2p", []).append(f"{learned}   <- learned by L2P Cache")
    lines = ["ComfyUI/", "└── models/"]
    for d_index, (directory, names) in enumerate(by_dir.items()):
        last_dir = d_index == len(by_dir) - 1
        lines.append(f"    {'└──' if last_dir else '├──'} {directory}/")
        indent = "    " if last_dir else "│   "
        for i, name in enumerate(names):
            lines.append(f"    {indent}{'└──' if i == len(names) - 1 else '├──'} {name}")
    downloads = "\n".join(f"- [{f.name}]({f.url})" for f in files)
    return "### Files\n\n" + downloads + "\n\n```\n" + "\n".join(lines) + "\n```\n"


def note(text: str) -> N:
    return node("MarkdownNote", -1, node_width=520, node_height=760, text=text)


def grid_text(steps: int, extra: str = "", scheduler: str = "simple") -> str:
    return (f"The predictor file is tied to its step grid: {steps} steps, euler, {scheduler}, denoise 1{extra}. With"
            f" another grid L2P Cache refuses the file (step_grid_mismatch: refuse) and says so: calibrate again at the"
            f" new setting, or set step_grid_mismatch to resample.")


def learned_file(family: str, steps: int, guidance: str, scheduler: str = "simple") -> str:
    """The name L2P Cache gives the file it learns for a setup (predictors/files/learned.py), hash left out."""
    return f"auto-{family}-{steps}steps-{scheduler}-{guidance}-<hash>.safetensors"


def learning_text(steps: int, speedup: float, setup: str) -> str:
    """How L2P Cache learns, for the notes of the cache templates."""
    k = computed_count(steps, speedup)
    return (f"**Just queue.** L2P Cache learns this model from your own runs: the first {LEARNING_TRAJECTORIES} images"
            f" (every batch row counts) compute all {steps} steps and are recorded in `models/l2p/`; every image"
            f" after them runs {k} of the {steps} steps for real (speedup {speedup}) and forecasts the others. The"
            f" node shows what each run did (\"learning 2 of {LEARNING_TRAJECTORIES} images\", then the speedup and"
            f" the worst forecast residual). A learned file belongs to one setup ({setup}): change any of them and"
            f" L2P Cache learns that setup into another file; the first one is kept and found again.\n\n"
            f"**Control:** *learning* by default still makes one run in {KEEP_LEARNING_EVERY} a full, recorded run"
            f" until the file holds {TOP_UP_TRAJECTORIES} images (16 came within 1.1 dB of a 42-image calibration in"
            f" every case measured, 4 in 11 of 12); it can keep"
            f" learning (one run in {KEEP_LEARNING_EVERY} without end), stop learning, or start over (the learned"
            f" file moves to `models/l2p/archive/`); *predictor_file* pins a file (a learned one, or one made by L2P"
            f" Calibrate), used as it is and never modified.")
