"""How large are the weights each predictor puts on the computed outputs under CFG? (the drift hypothesis)

    python3 -m benchmark.weights [--speedups 4.55 5.56 7.14]

A forecast is a weighted sum of computed outputs, so any error already in those outputs (the drift of a run
whose earlier forecasts were imperfect, which teacher-forced calibration statistics never contain) reaches the
forecast scaled by the weights. This prints, per variant and speedup, the weights of the GUIDED output
u + g (c - u) on the computed cond and uncond outputs: the largest L1 norm over the skipped steps (worst-case
amplification of a perturbation of the history) and the median. For reference, re-using the last computed step
(FORA) gives |g| + |1 - g| = 5 at g = 3. A second table sums the weights over the cond and the uncond outputs: a forecast
that keeps the guidance of a slowly varying signal has sums g and 1 - g; smaller sums mean damped guidance.

The weights are read off the real engines each variant builds (the nodes' setups): every computed output is fed
as a unit vector, so a forecast returns its own weights. Needs no model calls after calibration.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from . import harness
from .__main__ import CAL_CLASSES, SCENARIOS, SPEEDUPS, batch, calibrate
from .outputs import speedup_columns, table_head, table_row
from .variants import VARIANTS

from comfyui_l2p.nodes.report import RunReport  # noqa: E402
from comfyui_l2p.nodes.run_state import RunContext, RunState  # noqa: E402
from comfyui_l2p.predictors.engine.linear_predictor import ForecastError  # noqa: E402
from comfyui_l2p.predictors.forecasters.lesa.engine import LesaEngine  # noqa: E402

KEYS = (("cond", "c"), ("uncond", "u"))


def guided_weights(holder, model, scenario, speedup: float) -> np.ndarray | None:
    """float64 [skipped, 2K]: the guided forecast's weights on (cond, uncond) computed outputs, per skipped step;
    None when the variant decides its steps during the run (no fixed plan)."""
    grid, g = scenario.grid(), scenario.cfg_scale
    report = RunReport(feature=holder.feature, predictor=holder.predictor_name, num_steps=grid.num_steps)
    context = RunContext(grid, model.diffusion_model, g, family=model.family)
    run = RunState(holder.start_run(context, report), grid, report)
    engine, plan = run.engine, run.pieces.plan.planned
    if plan is None or isinstance(engine, LesaEngine):  # no fixed plan, or not a weighted sum (KAN experts)
        return None
    computed = list(plan)
    size = 2 * len(computed)
    rows = []
    for step in range(grid.num_steps):
        if step in plan:
            i = computed.index(step)
            for r, key in enumerate(KEYS):
                engine.observe(key, step, torch.nn.functional.one_hot(torch.tensor(r * len(computed) + i),
                                                                       size).double())
            continue
        try:
            cond, uncond = (engine.forecast(key, step).double().numpy() for key in KEYS)
        except ForecastError:
            continue
        rows.append(g * cond + (1.0 - g) * uncond)
    return np.array(rows)


def main(argv=None) -> int:
    p = harness.command_parser("python3 -m benchmark.weights", __doc__)
    p.add_argument("--speedups", type=float, nargs="+", default=list(SPEEDUPS))
    p.add_argument("--out", default=None, help="default out/weights (reference) or out/weights-qwen")
    p.add_argument("--cal-seeds", type=int, default=6)
    args = p.parse_args(argv)
    started = harness.start_command("python3 -m benchmark.weights", "weights", args)
    if started is None:
        return 2
    out, model = started
    scenario = SCENARIOS[1]
    file = out / "weights-cfg.safetensors"
    if file.exists():
        file.unlink()
    calibrate(model, scenario, batch(CAL_CLASSES, range(args.cal_seeds)), file)
    norms, sums = [], []
    for variant in VARIANTS:
        if variant.on_policy:
            continue
        norm_cells, sum_cells = [], []
        for speedup in args.speedups:
            weights = guided_weights(variant.build(speedup, str(file) if variant.learned else None), model,
                                     scenario, speedup)
            if weights is None or not len(weights):
                norm_cells.append("n/a (non-linear or adaptive)")
                sum_cells.append("n/a")
                continue
            l1 = np.abs(weights).sum(axis=1)
            k = weights.shape[1] // 2
            norm_cells.append(f"{l1.max():.1f} ({np.median(l1):.1f})")
            sum_cells.append(f"{np.median(weights[:, :k].sum(axis=1)):.2f} / {np.median(weights[:, k:].sum(axis=1)):.2f}")
        norms.append(table_row(variant.name, *norm_cells))
        sums.append(table_row(variant.name, *sum_cells))
    header = "\n".join(table_head("predictor", *speedup_columns(args.speedups)))
    g = scenario.cfg_scale
    print(f"Guided-output weights on the computed outputs, {scenario.name}: max (median) L1 norm over skipped steps\n")
    print(header + "\n" + "\n".join(norms))
    print(f"\nThe same weights summed over the cond / uncond outputs, median over skipped steps: a forecast that keeps"
          f" the guidance of a slowly varying signal has {g:g} / {1 - g:g}\n")
    print(header + "\n" + "\n".join(sums))
    return 0


if __name__ == "__main__":
    sys.exit(main())
