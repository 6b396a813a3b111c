#!/usr/bin/env python3
"""Train the reference model (a tiny FLUX-architecture transformer on scikit-learn's digits) on the CPU.

    python3 scripts/train_reference.py            # the shipped weights: defaults, 2 threads, fixed seeds
    python3 scripts/train_reference.py --samples-only   # redraw reference/samples.png from the shipped weights

Rectified flow as FLUX: x_t = (1 - t) x0 + t * noise, target v = noise - x0, t ~ logit-normal(0, 1); 10% of
labels dropped to the null class (for CFG); AdamW with warm-up and cosine decay; EMA weights are what is saved.
Writes reference/weights/{flux_digits,conditioner_codec}.safetensors, reference/weights/reference.json and
reference/samples.png. Same command, same thread count -> same weights (seeded generators, deterministic ops).
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference.conditioning import ClassConditioner, Conditioning  # noqa: E402
from reference.config import ReferenceConfig  # noqa: E402
from reference.data import Digits, load_digits, random_affine, split, upsample  # noqa: E402
from reference.flux import Flux  # noqa: E402
from reference.latent_codec import PatchPCACodec  # noqa: E402
from reference.model import WEIGHTS_DIR, ReferenceModel, load_reference, save_reference  # noqa: E402
from reference.samples import SAMPLES_PATH, render_sample_grid  # noqa: E402

EVAL_SIGMAS = (0.25, 0.5, 0.75)
DATA_DESCRIPTION = "scikit-learn load_digits (bundled), 8x8 -> 64x64 bicubic, first 1500 train / 297 held out"


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 6e-4
    warmup_steps: int = 200
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1  # 2 threads ran 10x slower while other jobs shared the 2 cores (measured 1.5 vs 0.22 s/step)
    codec_fit_copies: int = 4  # augmented copies of the training set the PCA codec is fitted on
    log_every: int = 250

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"TrainSettings: steps, batch_size and threads must be >= 1, found {self}")
        if not 0 <= self.cond_dropout < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainSettings: cond_dropout and ema_decay must be in [0, 1), found {self}")


def learning_rate(step: int, s: TrainSettings) -> float:
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.final_lr_fraction + (1 - s.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


# (transformer, conditioning, x_t (B, 16, h, w), t (B,)) -> predicted velocity (B, 16, h, w)
VelocityFn = Callable[[nn.Module, Conditioning, torch.Tensor, torch.Tensor], torch.Tensor]


def flux_velocity(flux: nn.Module, cond: Conditioning, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return flux(x_t, t, cond.context, cond.y)


@torch.no_grad()
def held_out_loss(transformer: nn.Module, conditioner: ClassConditioner, velocity: VelocityFn,
                  latents: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean velocity MSE on held-out latents at EVAL_SIGMAS, fixed noise."""
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1234))
    cond = conditioner(labels)
    losses = []
    for sigma in EVAL_SIGMAS:
        x_t = (1 - sigma) * latents + sigma * noise
        v = velocity(transformer, cond, x_t, torch.full((latents.shape[0],), sigma))
        losses.append(F.mse_loss(v, noise - latents).item())
    return sum(losses) / len(losses)


def fit(s: TrainSettings, transformer: nn.Module, conditioner: ClassConditioner, velocity: VelocityFn,
        codec: PatchPCACodec, train_set: Digits, held_out: Digits, data_gen: torch.Generator,
        ) -> tuple[nn.Module, ClassConditioner, dict]:
    """The training loop shared by both reference models; returns (EMA transformer, EMA conditioner, measured).

    Rectified flow on codec latents of augmented training digits, labels dropped to the null class with
    probability cond_dropout, AdamW with warm-up and cosine decay, gradient clipping, EMA of all weights.
    """
    held_latents = codec.encode(upsample(held_out.images))
    null_class = conditioner.config.null_class
    params = list(transformer.parameters()) + list(conditioner.parameters())
    print(f"parameters: transformer {sum(p.numel() for p in transformer.parameters()):,}, "
          f"conditioner {sum(p.numel() for p in conditioner.parameters()):,}", flush=True)
    optimizer = torch.optim.AdamW(params, lr=s.lr, betas=(0.9, 0.99), weight_decay=s.weight_decay)
    ema_transformer, ema_conditioner = copy.deepcopy(transformer).eval(), copy.deepcopy(conditioner).eval()
    ema_params = list(ema_transformer.parameters()) + list(ema_conditioner.parameters())

    def evaluate() -> float:
        return held_out_loss(ema_transformer, ema_conditioner, velocity, held_latents, held_out.labels)

    start, recent = time.time(), []
    for step in range(s.steps):
        index = torch.randint(0, train_set.labels.shape[0], (s.batch_size,), generator=data_gen)
        x0 = codec.encode(upsample(train_set.images[index], random_affine(s.batch_size, data_gen)))
        labels = train_set.labels[index].clone()
        labels[torch.rand(s.batch_size, generator=data_gen) < s.cond_dropout] = null_class
        t = torch.sigmoid(torch.randn(s.batch_size, generator=data_gen))  # logit-normal(0, 1)
        noise = torch.randn(x0.shape, generator=data_gen)
        x_t = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * noise
        loss = F.mse_loss(velocity(transformer, conditioner(labels), x_t, t), noise - x0)

        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, s)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
        optimizer.step()
        decay = min(s.ema_decay, (1 + step) / (10 + step))  # short warm-up so early EMA is not the random init
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - decay)

        recent = (recent + [loss.item()])[-s.log_every:]
        if (step + 1) % s.log_every == 0 or step + 1 == s.steps:
            print(f"step {step + 1:5d}  train loss {sum(recent) / len(recent):.4f}  held-out (EMA) "
                  f"{evaluate():.4f}  {time.time() - start:6.0f} s", flush=True)

    wall = time.time() - start
    measured = {
        "train_wall_seconds": round(wall, 1),
        "final_train_loss": round(sum(recent) / len(recent), 5),
        "held_out_loss_ema": round(evaluate(), 5),
        "held_out_eval_sigmas": list(EVAL_SIGMAS),
        "torch": torch.__version__,
    }
    print(f"trained {s.steps} steps in {wall:.0f} s; {measured}", flush=True)
    return ema_transformer, ema_conditioner, measured


def start_training(s: TrainSettings):
    """Threads, seeds and deterministic ops, then the data split: (train set, held-out set, data generator).
    Both training scripts start here, so the same settings give the same data order."""
    torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    torch.use_deterministic_algorithms(True)
    train_set, held_out = split(load_digits())
    return train_set, held_out, torch.Generator().manual_seed(s.seed)


def train(s: TrainSettings) -> ReferenceModel:
    config = ReferenceConfig()
    train_set, held_out, data_gen = start_training(s)

    fit_images = train_set.images.repeat(s.codec_fit_copies, 1, 1, 1)
    codec = PatchPCACodec.fit(upsample(fit_images, random_affine(fit_images.shape[0], data_gen)))

    flux, conditioner = Flux(config.flux), ClassConditioner(config.conditioner)
    ema_flux, ema_conditioner, measured = fit(s, flux, conditioner, flux_velocity, codec, train_set, held_out,
                                              data_gen)
    info = {
        "data": DATA_DESCRIPTION,
        "codec": {"kind": "PatchPCACodec", "patch": 8, "channels": 16, "image": "1x64x64 in [-1, 1]",
                  "scale": codec.scale},
        "training": asdict(s),
        "measured": measured,
    }
    return ReferenceModel(config=config, flux=ema_flux, conditioner=ema_conditioner, codec=codec, info=info)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options both training scripts share: TrainSettings' sizes, seed, threads and lr, and --out."""
    defaults = TrainSettings()
    for name in ("steps", "batch_size", "seed", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights directory")


def settings_from(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(steps=args.steps, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
                         lr=args.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_options(parser)
    parser.add_argument("--samples", type=Path, default=SAMPLES_PATH, help="sample grid PNG")
    parser.add_argument("--samples-only", action="store_true", help="only redraw the grid from --out's weights")
    args = parser.parse_args()
    if args.samples_only:
        torch.set_num_threads(args.threads)
        print(render_sample_grid(load_reference(args.out), args.samples))
        return
    model = train(settings_from(args))
    save_reference(model, args.out)
    print(render_sample_grid(load_reference(args.out), args.samples))


if __name__ == "__main__":
    main()
