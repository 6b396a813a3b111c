"""Real passes and quality of the nodes inside real ComfyUI, per model family, on the tiny models of
tests/comfy_families.py (ComfyUI's own config and model classes, seeded random weights), then the hook-point models
of tests/hook_models.py (SD3, PixArt and a Nunchaku-like FLUX reached through APPLY_MODEL; LTXV, LTX-2's lists).

    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/tiny_models_report.py [--steps 20] [--speedup 4] [--cfg 1 4]
        [--calibration-seeds 4] [--eval-seeds 3] [--families flux wan2.1-t2v ...] [--hook-models sd3 ...]

Per family and CFG scale: the full run's real passes; Forecast Cache with its defaults and L2P Cache with its
defaults (after L2P Calibrate on ``--calibration-seeds`` seeds at the same setting) at ``--speedup``: their real
passes (counted with hooks in the transformer's blocks) and the PSNR of the output latent against the full run of
the same seed, mean over ``--eval-seeds`` held-out seeds and (worst). PSNR peak: the full run's largest |value|.
A family the host does not have is listed as such. The tiny models have random weights: this checks that every
family is driven and counted right, not how well a trained model forecasts (python3 -m benchmark measures that).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (the pack as comfyui_l2p)
import comfy_families  # noqa: E402
import comfy_host  # noqa: E402
import comfy_sampling  # noqa: E402
import hook_models  # noqa: E402
import pass_counter  # noqa: E402
from tiny_specs import HookModel  # noqa: E402


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    mse = float(torch.mean((out.double() - ref.double()) ** 2))
    peak = float(ref.double().abs().max())
    return float("inf") if mse == 0 else 10 * math.log10(peak**2 / mse)


def summary(values: list[float]) -> str:
    return f"{sum(values) / len(values):.1f} ({min(values):.1f})"


def measure(pack, key: str, tiny, patcher, run, cfg: float, args) -> dict[str, str]:
    """One model at one CFG scale: passes and PSNR of the full run, Forecast Cache and L2P Cache.

    ``key``: the table's row name (names the calibration file: every model calibrates its own); ``tiny``: what
    pass_counter.count_passes counts; ``patcher``: its ModelPatcher (the nodes' input);
    ``run(patched, seed)``: the model's output latent as one tensor (``patched`` None: the model itself)."""
    name = f"{key}-cfg{cfg:g}.safetensors".replace(" ", "-")
    calibrating = comfy_families.apply_node(pack.nodes["L2PCalibrate"], patcher, file_name=name)
    for seed in range(args.calibration_seeds):
        run(calibrating, seed)
    variants = {
        "forecast": comfy_families.apply_node(pack.nodes["L2PForecastCache"], patcher, speedup=args.speedup),
        "l2p": comfy_families.apply_node(pack.nodes["L2PCache"], patcher, predictor_file=name, speedup=args.speedup),
    }
    passes: dict[str, set[int]] = {"full": set(), "forecast": set(), "l2p": set()}
    quality: dict[str, list[float]] = {"forecast": [], "l2p": []}
    for seed in range(100, 100 + args.eval_seeds):
        with pass_counter.count_passes(tiny) as counter:
            full = run(None, seed)
        passes["full"].add(counter.forwards)
        for variant, patched in variants.items():
            with pass_counter.count_passes(tiny) as counter:
                out = run(patched, seed)
            passes[variant].add(counter.forwards)
            quality[variant].append(psnr(out, full))
    row = {k: "/".join(str(p) for p in sorted(v)) for k, v in passes.items()}
    row.update({f"{k} psnr": summary(v) for k, v in quality.items()})
    return row


def family_runner(tiny, args, cfg: float):
    return lambda patched, seed: comfy_families.sample(tiny, patched=patched, steps=args.steps, cfg=cfg, seed=seed)


def hook_model_runner(tiny, args, cfg: float):
    """Hook-point models (SD3, PixArt, LTXV, LTX-2, a Nunchaku-like FLUX) through comfy_sampling.sample; LTX-2's
    [video, audio] output flattened into one tensor for the PSNR."""
    def run(patched, seed):
        latent = hook_models.hook_model_latent(tiny) if tiny.family in HookModel else None
        out = comfy_sampling.sample(patched if patched is not None else tiny, latent=latent, steps=args.steps, cfg=cfg,
                                seed=seed)
        return torch.cat([part.reshape(-1) for part in hook_models.latent_parts(out)])
    return run


HOOK_MODELS = {  # row name -> (config shown, builder); the models L2P reaches through APPLY_MODEL, and the LTXs
    "sd3": ("SD3", lambda: hook_models.tiny_hook_model(HookModel.SD3)),
    "pixart-alpha": ("PixArtAlpha", lambda: hook_models.tiny_hook_model(HookModel.PIXART)),
    "ltxv": ("LTXV", lambda: hook_models.tiny_hook_model(HookModel.LTXV)),
    "ltx-2": ("LTXAV", lambda: hook_models.tiny_hook_model(HookModel.LTXAV)),
    "nunchaku-like flux": ("Flux, diffusion_model replaced", lambda: hook_models.nunchaku_like_flux()),
}


def print_row(key: str, config: str, cfg: float, r: dict[str, str]) -> None:
    print(f"| {key} | {config} | {cfg:g} | {r['full']} | {r['forecast']} | {r['forecast psnr']} |"
          f" {r['l2p']} | {r['l2p psnr']} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--speedup", type=float, default=4.0)
    p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 4.0])
    p.add_argument("--calibration-seeds", type=int, default=4)
    p.add_argument("--eval-seeds", type=int, default=3)
    p.add_argument("--families", nargs="*", default=None, help="spec keys (tests/comfy_families.py); default all")
    p.add_argument("--hook-models", nargs="*", default=None,
                   help=f"of {sorted(HOOK_MODELS)} (reached through APPLY_MODEL, or LTX); default all, none: --hook-models")
    args = p.parse_args(argv)
    pack = comfy_host.pack_for_script()
    if pack is None:
        return 2
    import folder_paths  # ComfyUI's, importable once the pack is loaded in it

    folder = tempfile.mkdtemp(prefix="l2p-tiny-")
    folder_paths.folder_names_and_paths["l2p"] = ([folder], {".safetensors"})
    specs = [comfy_families.spec(k) for k in args.families] if args.families else comfy_families.SPECS
    print(f"{comfy_host.host_line()}; {args.steps} euler steps, simple scheduler, speedup {args.speedup:g},"
          f" calibration seeds {args.calibration_seeds}, evaluation seeds {args.eval_seeds}")
    print("| family (tiny model) | config | cfg | passes full | Forecast Cache passes | PSNR (worst) |"
          " L2P Cache passes | PSNR (worst) |")
    print("|---|---|---|---|---|---|---|---|")
    torch.set_num_threads(1)
    for spec in specs:
        reason = comfy_families.host_has(spec)
        if reason is not None:
            print(f"| {spec.key} | {spec.config} | - | not in this ComfyUI | | | | |")
            continue
        start = time.perf_counter()
        tiny = comfy_families.build(spec, seed=0)
        for cfg in args.cfg:
            print_row(spec.key, spec.config, cfg, measure(pack, spec.key, tiny, tiny.patcher, family_runner(tiny, args, cfg),
                                                          cfg, args))
        print(f"<!-- {spec.key}: {time.perf_counter() - start:.0f} s -->", file=sys.stderr, flush=True)
    for key, (config, make) in HOOK_MODELS.items():
        if args.hook_models is not None and key not in args.hook_models:
            continue
        try:
            tiny = make()
        except comfy_host.ComfyHostError:
            print(f"| {key} | {config} | - | not in this ComfyUI | | | | |")
            continue
        for cfg in args.cfg:
            print_row(key, config, cfg, measure(pack, key, tiny, tiny.patcher, hook_model_runner(tiny, args, cfg),
                                                cfg, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
