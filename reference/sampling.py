"""Sampling the reference model: a FLUX-like shifted sigma schedule and an Euler sampler with CFG whose model
call is pluggable, so a benchmark can wrap it (record outputs, skip steps, forecast).

model_fn(x, sigma, cond) -> velocity: x (B, 16, h, w), sigma (B,) float32, cond a `Conditioning`; returns
(B, 16, h, w). The sampler calls it once per stream and step: cond first, then uncond when CFG is on, so a wrapper
sees each stream under its `cond.stream` name. Euler step: x <- x + (sigma_next - sigma) * v.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import Tensor

from .conditioning import Conditioning


class ModelFn(Protocol):
    def __call__(self, x: Tensor, sigma: Tensor, cond: Conditioning) -> Tensor: ...


StepCallback = Callable[[int, Tensor, Tensor], None]  # (step, x before the step, guided velocity) -> None


def flux_sigmas(steps: int, shift: float = 3.0) -> Tensor:
    """(steps + 1,) float32 sigmas from 1 to 0: sigma = shift * t / (1 + (shift - 1) * t) on t = linspace(1, 0).

    shift > 1 spends more steps at high noise, as FLUX's time shift does (shift = exp(mu)); shift = 1 is linear.
    """
    if steps < 1 or not shift > 0:
        raise ValueError(f"flux_sigmas: need steps >= 1 and shift > 0, found steps={steps}, shift={shift}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * t / (1 + (shift - 1) * t)).float()


def guided_velocity(v_cond: Tensor, v_uncond: Tensor, cfg_scale: float) -> Tensor:
    """Classifier-free guidance: v_u + g * (v_c - v_u)."""
    return v_uncond + cfg_scale * (v_cond - v_uncond)


@torch.no_grad()
def euler_sample(
    model_fn: ModelFn,
    noise: Tensor,
    sigmas: Tensor,
    cond: Conditioning,
    uncond: Conditioning | None = None,
    cfg_scale: float = 1.0,
    on_step: StepCallback | None = None,
) -> Tensor:
    """Integrate from x = sigmas[0] * noise down the grid; returns the final latent (B, 16, h, w).

    CFG runs when uncond is given and cfg_scale != 1 (with cfg_scale == 1 the uncond stream would not change v).
    """
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"euler_sample: sigmas must be (S + 1,) with S >= 1, found shape {tuple(sigmas.shape)}")
    use_cfg = uncond is not None and cfg_scale != 1.0
    x = noise * sigmas[0]
    batch = x.shape[0]
    for step in range(sigmas.numel() - 1):
        sigma = sigmas[step].expand(batch).to(x.dtype)
        v = model_fn(x, sigma, cond)
        if use_cfg:
            v = guided_velocity(v, model_fn(x, sigma, uncond), cfg_scale)
        if on_step is not None:
            on_step(step, x, v)
        x = x + (sigmas[step + 1] - sigmas[step]).to(x.dtype) * v
    return x
