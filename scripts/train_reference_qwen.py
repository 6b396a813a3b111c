#!/usr/bin/env python3
"""Train the Qwen-Image reference model: ComfyUI's own QwenImageTransformer2DModel, small, on the digits (CPU).

    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/train_reference_qwen.py            # the shipped weights
    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/train_reference_qwen.py --samples-only

The second trained model of another architecture for the benchmark (`python3 -m benchmark --model qwen`). Same
data, latent codec (the FLUX reference's fitted PatchPCACodec, loaded, not refitted: one latent space for both)
and recipe (scripts/train_reference.py's TrainSettings and loop: rectified flow, logit-normal t, 10% condition
dropout to the null class, AdamW + warm-up + cosine, EMA, fixed seeds, 1 thread). Conditioning: a learned class
embedding -> context tokens only (Qwen-Image reads no pooled vector). Writes reference/weights/qwen_digits.safetensors,
qwen_conditioner.safetensors, qwen_reference.json and reference/samples_qwen.png.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_reference import (  # noqa: E402
    DATA_DESCRIPTION, TrainSettings, add_training_options, fit, settings_from, start_training,
)

from reference.comfy_import import ComfyUINotFound, comfyui_path  # noqa: E402
from reference.conditioning import ClassConditioner, Conditioning  # noqa: E402
from reference.model import CONDITIONER_FILE, WEIGHTS_DIR  # noqa: E402
from reference.qwen_config import QwenReferenceConfig  # noqa: E402
from reference.qwen_model import (QwenReferenceModel, build_qwen_image, load_qwen_reference,  # noqa: E402
                                  load_shared_codec, save_qwen_reference)
from reference.samples import render_sample_grid  # noqa: E402

SAMPLES_PATH = ROOT / "reference" / "samples_qwen.png"


def qwen_velocity(module: nn.Module, cond: Conditioning, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ComfyUI's call: 5-D latents (B, 16, 1, h, w), timestep = sigma (flow, multiplier 1.0), context only."""
    return module(x_t.unsqueeze(2), t, cond.context).squeeze(2)


def train(s: TrainSettings, codec_dir: Path) -> QwenReferenceModel:
    config = QwenReferenceConfig()
    train_set, held_out, data_gen = start_training(s)
    codec = load_shared_codec(codec_dir)
    module, conditioner = build_qwen_image(config.qwen_image), ClassConditioner(config.conditioner)
    ema_module, ema_conditioner, measured = fit(s, module, conditioner, qwen_velocity, codec, train_set, held_out,
                                                data_gen)
    info = {
        "architecture": "ComfyUI comfy.ldm.qwen_image.model.QwenImageTransformer2DModel (imported from COMFYUI_PATH)",
        "data": DATA_DESCRIPTION,
        "codec": {"kind": "PatchPCACodec", "shared_with": f"FLUX reference ({CONDITIONER_FILE})",
                  "scale": codec.scale},
        "call": "module(x.unsqueeze(2), sigma, context): 5-D latents, timestep = sigma in [0, 1]",
        "training": asdict(s),
        "measured": measured,
    }
    return QwenReferenceModel(config=config, diffusion_model=ema_module, conditioner=ema_conditioner, codec=codec,
                              info=info)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_options(parser)
    parser.add_argument("--codec-dir", type=Path, default=WEIGHTS_DIR,
                        help=f"folder holding the FLUX reference's {CONDITIONER_FILE} (the shared codec)")
    parser.add_argument("--samples", type=Path, default=SAMPLES_PATH, help="sample grid PNG")
    parser.add_argument("--samples-only", action="store_true", help="only redraw the grid from --out's weights")
    args = parser.parse_args()
    try:
        comfyui_path()
    except ComfyUINotFound as error:
        print(f"train_reference_qwen.py: {error}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if not args.samples_only:
        save_qwen_reference(train(settings_from(args), args.codec_dir), args.out)
        if args.out != args.codec_dir:  # the loader finds the shared codec next to the weights
            (args.out / CONDITIONER_FILE).write_bytes((args.codec_dir / CONDITIONER_FILE).read_bytes())
    print(render_sample_grid(load_qwen_reference(args.out), args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
