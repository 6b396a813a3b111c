"""Real passes and quality of the nodes inside real ComfyUI on the tiny FLUX, Qwen-Image and HunyuanVideo models.

    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/tiny_models_report.py [--steps 20] [--speedup 4]

For each family: L2P Calibrate on 4 seeds, then L2P Cache (defaults) and Forecast Cache (TaylorSeer order 1,
even) on a held-out seed; real transformer passes counted with hooks, PSNR of the output latent against the
full run. The tiny models have random weights: this checks plumbing and counts, not forecasting quality
(the reference benchmark, python3 -m benchmark, measures that on a trained model).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (the pack as comfyui_l2p)
import comfy_host  # noqa: E402


def psnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    mse = float(torch.mean((a.float() - ref.float()) ** 2))
    peak = float(ref.float().abs().max())
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--speedup", type=float, default=4.0)
    args = p.parse_args()
    if comfy_host.comfyui_path() is None:
        print(comfy_host.SKIP_REASON)
        return 2
    comfy_host.bootstrap()
    import folder_paths

    pack = comfy_host.load_pack_in_comfyui()
    tmp = tempfile.mkdtemp(prefix="l2p-tiny-")
    folder_paths.folder_names_and_paths["l2p"] = ([tmp], {".safetensors"})
    print("| model | cfg | passes full | passes L2P Cache | PSNR L2P Cache | passes Forecast Cache | PSNR Forecast Cache |")
    print("|---|---|---|---|---|---|---|")
    for family, cfg in ((comfy_host.Family.FLUX, 1.0), (comfy_host.Family.QWEN_IMAGE, 3.0),
                        (comfy_host.Family.HUNYUAN_VIDEO, 1.0)):
        tiny = comfy_host.tiny_model(family, seed=0)
        shape = tiny.latent_shape(1, frames=3) if family is comfy_host.Family.HUNYUAN_VIDEO else None
        name = f"{family.name.lower()}-cfg{cfg:g}.safetensors"
        (cal,) = comfy_host.run_node(pack.nodes["L2PCalibrate"], model=tiny.patcher, file_name=name,
                                     ridge_lambda=1e-6, mode="teacher-forced", on_policy_speedup=5.0)
        for seed in range(4):
            comfy_host.sample(cal, steps=args.steps, cfg=cfg, seed=seed, latent_shape=shape)
        with comfy_host.count_passes(tiny) as full_count:
            full = comfy_host.sample(tiny, steps=args.steps, cfg=cfg, seed=100, latent_shape=shape)
        (l2p,) = comfy_host.run_node(pack.nodes["L2PCache"], model=tiny.patcher, predictor_file=name,
                                     speedup=args.speedup, placement="optimized", warmup_steps=1,
                                     compute_last_step=False, residual_budget=0.05, history_device="model device",
                                     predictor="direct", step_grid_mismatch="refuse")
        with comfy_host.count_passes(tiny) as l2p_count:
            out_l2p = comfy_host.sample(l2p, steps=args.steps, cfg=cfg, seed=100, latent_shape=shape)
        (fc,) = comfy_host.run_node(pack.nodes["L2PForecastCache"], model=tiny.patcher, method="TaylorSeer order 1",
                                    time_axis="step", speedup=args.speedup, placement="even", warmup_steps=2,
                                    compute_last_step=False, residual_budget=0.05, history_device="model device",
                                    spectrum_degree=4, spectrum_lambda=0.1, spectrum_blend=0.5)
        with comfy_host.count_passes(tiny) as fc_count:
            out_fc = comfy_host.sample(fc, steps=args.steps, cfg=cfg, seed=100, latent_shape=shape)
        print(f"| {family.name} | {cfg:g} | {full_count.forwards} | {l2p_count.forwards} | {psnr(out_l2p, full):.1f} |"
              f" {fc_count.forwards} | {psnr(out_fc, full):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
