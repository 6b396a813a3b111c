"""How much a perturbation of the latent grows through the rest of sampling, per step: the measurement behind the
schedule search's error-growth model (predictors/schedules/error_growth.py).

    python3 -m benchmark.gains [--model qwen] [--scenario no|cfg]

For held-out samples, the full 50-step trajectory is computed; then, at every ``--stride``-th step s, the latent is
perturbed by eps in a random unit direction (per sample) and sampled to the end with every step computed. The gain
is |x_final(perturbed) - x_final| / eps. A forecast error at step s - 1 reaches the latent as such a perturbation
scaled by |dsigma_{s-1}|, so the error model weighs step s - 1 by |dsigma| * gain. The table prints the gain's
median, 90th percentile and maximum over the samples per step, and the exponent a of the fit gain ~ |dsigma|^-a
for each (least squares in log-log): the growth model's power is 1 - a.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from . import harness
from .__main__ import EVAL_CLASSES, batch, chosen_scenarios
from .outputs import table_head, table_row
from comfyui_l2p.reference.sampling import guided_velocity  # noqa: E402  (harness registered the package)

QUANTILES = (("median", 0.5), ("90th percentile", 0.9), ("max", 1.0))


@torch.no_grad()
def gain_profile(model, scenario: harness.Scenario, samples: harness.Batch, stride: int, eps: float,
                 seed: int = 1) -> tuple[list[int], np.ndarray]:
    """(perturbed steps, float64 [steps, samples] gains)."""
    cond, uncond = model.conditioning(torch.tensor(samples.labels))
    sigmas = scenario.sigmas()

    def velocity(x: torch.Tensor, step: int) -> torch.Tensor:
        sigma = sigmas[step].expand(x.shape[0])
        v = model.model_fn(x, sigma, cond)
        if scenario.cfg_scale != 1.0:
            v = guided_velocity(v, model.model_fn(x, sigma, uncond), scenario.cfg_scale)
        return v

    def run_from(step: int, x: torch.Tensor) -> torch.Tensor:
        for s in range(step, scenario.steps):
            x = x + (sigmas[s + 1] - sigmas[s]) * velocity(x, s)
        return x

    states = [samples.noise(model) * sigmas[0]]
    for s in range(scenario.steps):
        states.append(states[-1] + (sigmas[s + 1] - sigmas[s]) * velocity(states[-1], s))
    final = states[-1]
    generator = torch.Generator().manual_seed(seed)
    steps = list(range(1, scenario.steps, stride))
    gains = []
    for s in steps:
        direction = torch.randn(states[s].shape, generator=generator)
        direction = direction / direction.flatten(1).norm(dim=1).reshape(-1, *([1] * (direction.ndim - 1)))
        out = run_from(s, states[s] + eps * direction)
        gains.append(((out - final).flatten(1).norm(dim=1) / eps).double().numpy())
    return steps, np.stack(gains)


def growth_exponents(steps: list[int], gains: np.ndarray, dsigma: np.ndarray) -> dict[str, float]:
    """a of gain ~ |dsigma_{s-1}|^-a for each summary of ``gains`` (QUANTILES) over the samples."""
    log_d = np.log(np.abs(dsigma[np.asarray(steps) - 1]))
    return {name: -float(np.polyfit(log_d, np.log(np.quantile(gains, q, axis=1)), 1)[0]) for name, q in QUANTILES}


def main(argv=None) -> int:
    p = harness.command_parser("python3 -m benchmark.gains", __doc__, scenario=True)
    p.add_argument("--eval-seeds", type=int, default=8)
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--out", default=None, help="default out/gains (reference) or out/gains-<model>")
    args = p.parse_args(argv)
    started = harness.start_command("python3 -m benchmark.gains", "gains", args)
    if started is None:
        return 2
    out, model = started
    samples = batch(EVAL_CLASSES, range(1000, 1000 + args.eval_seeds))
    lines = [f"# Error growth through sampling: model `{args.model}`", "",
             f"{len(samples.labels)} held-out samples, a random unit perturbation of size {args.eps:g} per sample.", ""]
    for scenario in chosen_scenarios(args.scenario):
        steps, gains = gain_profile(model, scenario, samples, args.stride, args.eps)
        exps = growth_exponents(steps, gains, scenario.grid().dsigma())
        lines += [f"## {scenario.name}", "",
                  "fit gain ~ |dsigma|^-a: " + ", ".join(f"{n} a = {a:.2f} (power {1 - a:.2f})" for n, a in exps.items()),
                  "", *table_head("step", *(n for n, _ in QUANTILES))]
        lines += [table_row(s, *(f"{np.quantile(row, q):.2f}" for _, q in QUANTILES)) for s, row in zip(steps, gains)]
        lines.append("")
    text = "\n".join(lines)
    (out / "gains.md").write_text(text)
    print(text)
    print(f"[gains] wrote {out / 'gains.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
