"""Sampling a reference model through the pack's own run state.

Two trained models (``MODELS``): "reference", the FLUX-architecture one (pure torch), and "qwen", ComfyUI's own
Qwen-Image transformer (reference/qwen_model.py, needs COMFYUI_PATH). Both expose model_fn / conditioning /
latent_noise / codec and ``diffusion_model`` (the module whose class names the family, as in ComfyUI).

The reference sampler calls ``model_fn(x, sigma, cond)`` once per stream and step (cond, then uncond with CFG).
``CachedModelFn`` turns each call into what ComfyUI's DIFFUSION_MODEL wrapper sees (x, transformer_options with
sigmas / uuids / cond_or_uncond) and hands it to ``nodes.run_calls.RunState``: the same plan, engine, guards,
calibration sink and report as inside ComfyUI, so the benchmark measures the code users run.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .pack import comfyui_l2p

comfyui_l2p()
from comfyui_l2p.nodes.report import RunReport  # noqa: E402
from comfyui_l2p.nodes.run_state import L2PHolder, RunContext, RunState  # noqa: E402
from comfyui_l2p.predictors import StepGrid  # noqa: E402
from comfyui_l2p.reference.comfy_import import ComfyUINotFound  # noqa: E402
from comfyui_l2p.reference.model import ReferenceModel, load_reference  # noqa: E402
from comfyui_l2p.reference.qwen_model import QwenReferenceModel, load_qwen_reference  # noqa: E402  (ComfyUI: on load)
from comfyui_l2p.reference.sampling import euler_sample, flux_sigmas  # noqa: E402

STEPS = 50
SHIFT = 3.0
ROLE_IDS = {"cond": 0, "uncond": 1}
MODELS = {  # --model name -> what it is (the benchmark's context line)
    "reference": "FLUX-architecture transformer trained on digits (reference/, pure torch)",
    "qwen": "ComfyUI's Qwen-Image transformer (QwenImageTransformer2DModel from COMFYUI_PATH) trained on digits "
            "(reference/qwen_model.py)",
}
Model = ReferenceModel | QwenReferenceModel


@dataclass(frozen=True)
class Scenario:
    """One sampling setup: the step grid and guidance."""

    name: str
    cfg_scale: float  # 1.0: cond stream only (guidance-distilled style); > 1: true CFG with two streams
    steps: int = STEPS
    shift: float = SHIFT

    @property
    def roles(self) -> tuple[str, ...]:
        return ("cond", "uncond") if self.cfg_scale != 1.0 else ("cond",)

    def sigmas(self) -> torch.Tensor:
        return flux_sigmas(self.steps, self.shift)

    def grid(self) -> StepGrid:
        return StepGrid.from_sigmas(self.sigmas())


@dataclass(frozen=True)
class Batch:
    """Samples: one class label and one noise seed per row."""

    labels: tuple[int, ...]
    seeds: tuple[int, ...]

    def noise(self, model: Model) -> torch.Tensor:
        return torch.cat([model.latent_noise(1, s) for s in self.seeds])


class CachedModelFn:
    """``model_fn`` for the reference sampler that routes every call through a RunState."""

    def __init__(self, model: Model, run: RunState) -> None:
        self.model, self.run = model, run
        self.peak_history_bytes = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond) -> torch.Tensor:
        options = {"sigmas": sigma[:1], "uuids": [cond.stream], "cond_or_uncond": [ROLE_IDS.get(cond.stream, 0)]}

        def transformer(x_in: torch.Tensor) -> torch.Tensor:
            return self.model.model_fn(x_in, sigma, cond)

        out = self.run(transformer, (x,), {}, options)
        self.peak_history_bytes = max(self.peak_history_bytes, self.run.history_bytes)
        return out


@dataclass
class RunResult:
    latents: torch.Tensor  # (B, 16, 8, 8)
    report: RunReport | None
    seconds: float  # sampling wall time
    peak_history_bytes: int = 0  # forecaster history, all streams
    setup_seconds: float = 0.0  # building the predictor and plan for the run (fits, schedule search)


@torch.no_grad()
def sample_full(model: Model, scenario: Scenario, batch: Batch) -> RunResult:
    """Every step computed, no wrapper at all: the reference result."""
    cond, uncond = model.conditioning(torch.tensor(batch.labels))
    start = time.perf_counter()
    latents = euler_sample(model.model_fn, batch.noise(model), scenario.sigmas(), cond, uncond, scenario.cfg_scale)
    return RunResult(latents, None, time.perf_counter() - start)


@torch.no_grad()
def sample_with(model: Model, scenario: Scenario, batch: Batch, holder: L2PHolder) -> RunResult:
    """Sampling through the run state a node's holder builds, exactly as the OUTER_SAMPLE wrapper does."""
    grid = scenario.grid()
    report = RunReport(feature=holder.feature, predictor=holder.predictor_name, num_steps=grid.num_steps)
    start = time.perf_counter()
    pieces = holder.start_run(RunContext(grid, model.diffusion_model, scenario.cfg_scale, family=model.family), report)
    setup_seconds = time.perf_counter() - start
    report.planned_computed = pieces.plan.planned
    run = RunState(pieces, grid, report)
    fn = CachedModelFn(model, run)
    cond, uncond = model.conditioning(torch.tensor(batch.labels))
    noise = batch.noise(model)
    start = time.perf_counter()
    success = False
    try:
        latents = euler_sample(fn, noise, scenario.sigmas(), cond, uncond, scenario.cfg_scale)
        success = True
    finally:
        run.finish(success)
    seconds = time.perf_counter() - start
    report.status = "finished"
    return RunResult(latents, report, seconds, fn.peak_history_bytes, setup_seconds)


def sample_each(model: Model, scenario: Scenario, batch: Batch, holder: L2PHolder) -> RunResult:
    """``sample_with`` one batch row at a time, as a user samples one image: per-run decisions (the safety net)
    then follow each image. Latents are concatenated in batch order; the report is the first run's, with
    ``transformer_calls`` the mean over the runs (a float) and the other runs' notes appended."""
    runs = [sample_with(model, scenario, Batch((label,), (seed,)), holder)
            for label, seed in zip(batch.labels, batch.seeds)]
    report = runs[0].report
    report.transformer_calls = sum(r.report.transformer_calls for r in runs) / len(runs)
    report.notes = [f"sample {i}: {n}" for i, r in enumerate(runs) for n in r.report.notes]
    return RunResult(torch.cat([r.latents for r in runs]), report, sum(r.seconds for r in runs),
                     max(r.peak_history_bytes for r in runs), runs[0].setup_seconds)


def decode_images(model: Model, latents: torch.Tensor):
    """(B, 64, 64) float64 numpy images in [0, 1] (the data's [-1, 1] range mapped and clipped)."""
    images = model.codec.decode(latents).clamp(-1, 1)
    return ((images[:, 0] + 1) / 2).double().numpy()


def command_parser(prog: str, doc: str | None, *, scenario: bool = False) -> argparse.ArgumentParser:
    """The parser a benchmark command starts from: its module docstring as the help text, ``--model`` and, with
    ``scenario``, ``--scenario`` (see ``__main__.chosen_scenarios``)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_option(parser)
    if scenario:
        parser.add_argument("--scenario", choices=["all", "no", "cfg"], default="all",
                            help="'no' = no CFG only, 'cfg' = CFG only")
    return parser


def add_model_option(parser) -> None:
    """The ``--model`` option every benchmark command shares (an argparse parser)."""
    parser.add_argument("--model", choices=sorted(MODELS), default="reference",
                        help="'reference' = the FLUX-architecture model; 'qwen' = ComfyUI's Qwen-Image (needs"
                             " COMFYUI_PATH)")


def default_out(folder: str, model: str) -> Path:
    """Where a command writes by default: out/<folder> for the reference model, out/<folder>-<model> otherwise."""
    return Path("out") / (folder if model == "reference" else f"{folder}-{model}")


def start_command(command: str, folder: str, args) -> tuple[Path, Model] | None:
    """What a benchmark command does first: one torch thread, its output folder (``--out`` or ``default_out``),
    and the ``--model``; None, with the reason on stderr, when the model cannot be loaded."""
    torch.set_num_threads(1)
    out = Path(args.out) if args.out else default_out(folder, args.model)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model_for_command(command, args.model)
    return None if model is None else (out, model)


def load_model_for_command(command: str, name: str) -> Model | None:
    """``load_model`` for a command line: None, with the reason on stderr, when ComfyUI is not available."""
    try:
        return load_model(name)
    except ComfyUINotFound as error:
        print(f"{command} --model {name}: {error}", file=sys.stderr)
        return None


def load_model(name: str = "reference") -> Model:
    """The model named `name` (a key of MODELS). "qwen" raises ComfyUINotFound when COMFYUI_PATH is unusable."""
    if name == "reference":
        return load_reference()
    if name == "qwen":
        return load_qwen_reference()
    raise ValueError(f"benchmark: unknown model '{name}'; expected one of {sorted(MODELS)}")
