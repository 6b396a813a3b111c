"""Wall-clock of L2P on full-size transformers: a FLUX.1-dev-shaped model at 1024x1024 and a HunyuanVideo-shaped one
at a video size, on a CUDA device, through ComfyUI's own classes, KSampler and the pack's nodes.

    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/gpu_timing.py                 # CUDA, bf16, full size
    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/gpu_timing.py --preset tiny --device cpu   # what the tests run

The models are ComfyUI's ``Flux`` (19 double + 38 single blocks, hidden 3072, 24 heads, T5 context 4096) and
``HunyuanVideo`` (20 + 40 blocks, hidden 3072) built from ComfyUI's model configs with random bf16 weights
(tests/comfy_host.py): this measures time, not quality. Per model, 50 euler steps at cfg 1 (both are
guidance-distilled):
- a full run (every step computed), then one L2P Calibrate run (its file feeds L2P Cache; its own cost is shown);
- L2P Cache (the node's defaults: optimized placement, direct fit) at 4.55 / 5.56 / 7.14x: 11 / 9 / 7 real passes;
- per run: real transformer passes (counted with hooks), seconds, wall speedup over the full run, the pass ratio
  (50 / passes), wall / pass (the share of the pass ratio that shows up in wall-clock), peak device memory and the
  extra over the full run (the forecast history lives on the model's device);
- one forecast's cost: L2P's weighted sum over the 7 outputs a 7.14x run keeps, at the model's output size,
  dtype and device, and the size of that history per stream.
Each timing is one run after a warm-up run (first-call kernel set-up excluded). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (the pack as comfyui_l2p)
import comfy_host  # noqa: E402
import comfy_sampling  # noqa: E402
import pass_counter  # noqa: E402
import tiny_models  # noqa: E402
from tiny_specs import Family  # noqa: E402

from comfyui_l2p.predictors import ForecastEngine, L2PDirect, load_predictor_file  # noqa: E402
from comfyui_l2p.predictors.schedules.placements import computed_count  # noqa: E402

STEPS = 50  # the L2P paper's setting: 4.55 / 5.56 / 7.14x compute 11 / 9 / 7 of 50 steps
SPEEDUPS = (4.55, 5.56, 7.14)
L2P_CACHE = dict(placement="optimized", warmup_steps=1, compute_last_step=False, residual_budget=0.05,
                 history_device="model device", predictor="direct", step_grid_mismatch="refuse")

# ComfyUI's model detection values for the released checkpoints (comfy/model_detection.py)
FLUX_1_DEV = dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=3072,
                  mlp_ratio=4.0, num_heads=24, depth=19, depth_single_blocks=38, axes_dim=[16, 56, 56], theta=10000,
                  patch_size=2, qkv_bias=True, guidance_embed=True)
HUNYUAN_VIDEO = {**FLUX_1_DEV, "depth": 20, "depth_single_blocks": 40, "theta": 256, "patch_size": [1, 2, 2]}


@dataclasses.dataclass(frozen=True)
class Subject:
    """One model at one size."""

    name: str
    family: Family
    unet: dict  # unet_config entries over tests/comfy_host.py's tiny config
    latent: tuple[int, ...]  # the latent ComfyUI samples, batch 1
    text_tokens: int


PRESETS: dict[str, tuple[Subject, ...]] = {
    "full": (
        Subject("FLUX.1-dev shape, 1024x1024", Family.FLUX, FLUX_1_DEV, (1, 16, 128, 128), 512),
        # 848x480, 25 frames: latent (25 - 1) / 4 + 1 = 7 frames of 60 x 106, 22260 image tokens
        Subject("HunyuanVideo shape, 848x480x25", Family.HUNYUAN_VIDEO, HUNYUAN_VIDEO, (1, 16, 7, 60, 106), 256),
    ),
    "tiny": (  # the same code on CPU in seconds: what tests/test_gpu_timing.py runs so the script cannot rot
        Subject("tiny FLUX, 64x64", Family.FLUX, {}, (1, 16, 8, 8), 4),
        Subject("tiny HunyuanVideo, 64x64x9", Family.HUNYUAN_VIDEO, {}, (1, 16, 3, 8, 8), 4),
    ),
}


@dataclasses.dataclass(frozen=True)
class RunTiming:
    subject: str
    run: str  # "full", "L2P Calibrate", "L2P Cache 4.55x", ...
    passes: int  # real transformer passes
    seconds: float
    peak_bytes: int | None  # peak device memory during the run (None on CPU)


@dataclasses.dataclass(frozen=True)
class ForecastTiming:
    subject: str
    outputs: int  # stored outputs the weighted sum reads
    milliseconds: float  # median of one forecast
    history_bytes: int  # what those outputs occupy, per stream


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_run(patcher, subject: Subject, model, device: torch.device, label: str) -> RunTiming:
    cond = comfy_sampling.make_conditioning(model, seed=1, text_len=subject.text_tokens)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with pass_counter.count_passes(model) as counter:
        _synchronize(device)
        start = time.perf_counter()
        comfy_sampling.sample(patcher, steps=STEPS, cfg=1.0, seed=7, latent_shape=subject.latent, positive=cond,
                              negative=cond)
        _synchronize(device)
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return RunTiming(subject.name, label, counter.forwards, seconds, peak)


def _forecast_cost(subject: Subject, calibration: Path, device: torch.device, dtype: torch.dtype,
                   repeats: int) -> ForecastTiming:
    """One L2P forecast over the outputs a 7.14x run keeps, as the run state computes it (ForecastEngine)."""
    pf = load_predictor_file(str(calibration))
    engine = ForecastEngine(L2PDirect(pf.role_gram("cond")), pf.grid())
    kept = computed_count(STEPS, max(SPEEDUPS))
    steps = [round(i * (STEPS - 1) / kept) for i in range(kept)]
    for step in steps:
        engine.observe("cond", step, torch.randn(subject.latent, device=device).to(dtype))
    target = steps[-1] + 1
    engine.forecast("cond", target)  # the fit is cached per schedule: time the weighted sum a run repeats
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        engine.forecast("cond", target)
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return ForecastTiming(subject.name, kept, statistics.median(times), engine.history_bytes())


def measure(preset: str, device_name: str, on_subject: Callable[[str], None] = lambda line: None,
            repeats: int = 20) -> tuple[list[RunTiming], list[ForecastTiming]]:
    """Every run of every subject of ``preset`` on ``device_name`` ("cuda": bf16; "cpu": float32)."""
    comfy = comfy_host.bootstrap(device_name)
    device = comfy.model_management.get_torch_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pack = comfy_host.load_pack_in_comfyui()
    import folder_paths

    runs, forecasts = [], []
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        saved = folder_paths.folder_names_and_paths.get("l2p")
        folder_paths.folder_names_and_paths["l2p"] = ([folder], {".safetensors"})  # nothing written into ComfyUI
        try:
            for subject in PRESETS[preset]:
                on_subject(f"building {subject.name} ({dtype}, {device})")
                model = tiny_models.tiny_model(subject.family, seed=0, dtype=dtype, device=device, **subject.unet)
                calibration = f"gpu-timing-{subject.family.name.lower()}.safetensors"  # a file per model family
                _timed_run(model.patcher, subject, model, device, "warm-up")
                runs.append(_timed_run(model.patcher, subject, model, device, "full"))
                (calibrate,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=model.patcher,
                                                   file_name=calibration, ridge_lambda=1e-6,
                                                   mode="teacher-forced", on_policy_speedup=5.0)
                runs.append(_timed_run(calibrate, subject, model, device, "L2P Calibrate (every step)"))
                for speedup in SPEEDUPS:
                    (cache,) = comfy_host.run_node(pack.nodes["L2PCache"], model=model.patcher,
                                                   predictor_file=calibration, speedup=speedup, **L2P_CACHE)
                    runs.append(_timed_run(cache, subject, model, device, f"L2P Cache {speedup}x"))
                forecasts.append(_forecast_cost(subject, Path(folder) / calibration, device, dtype,
                                                repeats))
                del model, calibrate, cache  # the next model gets the device to itself
                if device.type == "cuda":
                    comfy.model_management.unload_all_models()
                    torch.cuda.empty_cache()
        finally:
            if saved is None:
                folder_paths.folder_names_and_paths.pop("l2p", None)
            else:
                folder_paths.folder_names_and_paths["l2p"] = saved
    return runs, forecasts


def table(runs: list[RunTiming], forecasts: list[ForecastTiming], device: str) -> str:
    gib, mib = 1024 ** 3, 1024 ** 2
    lines = [f"| model ({device}, {STEPS} euler steps, cfg 1) | run | real passes | seconds | wall speedup | "
             f"pass ratio | wall / pass | peak memory (GiB) | extra over full (MiB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        full = next(r for r in runs if r.subject == run.subject and r.run == "full")
        wall, ratio = full.seconds / run.seconds, STEPS / run.passes
        peak = f"{run.peak_bytes / gib:.2f}" if run.peak_bytes is not None else "n/a"
        extra = f"{(run.peak_bytes - full.peak_bytes) / mib:+.1f}" if run.peak_bytes is not None else "n/a"
        lines.append(f"| {run.subject} | {run.run} | {run.passes} | {run.seconds:.2f} | {wall:.2f}x | {ratio:.2f}x | "
                     f"{wall / ratio:.2f} | {peak} | {extra} |")
    lines += ["", "| model | one forecast (median) | outputs summed | history per stream (MiB) |", "|---|---|---|---|"]
    for f in forecasts:
        lines.append(f"| {f.subject} | {f.milliseconds:.3f} ms | {f.outputs} | {f.history_bytes / mib:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args(argv)
    if comfy_host.comfyui_path() is None:
        parser.error(comfy_host.SKIP_REASON)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here (torch.cuda.is_available() is False); the CPU-sized version is "
                     "--preset tiny --device cpu")
    runs, forecasts = measure(args.preset, args.device, on_subject=lambda line: print(line, file=sys.stderr))
    print(f"{comfy_host.host_line()}; torch {torch.__version__}"
          + (f"; {torch.cuda.get_device_name()}" if args.device == "cuda" else ""))
    print(table(runs, forecasts, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
