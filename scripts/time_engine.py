"""Cost of one forecast at FLUX 1024x1024 output size against one transformer pass, on this CPU.

Run: python3 scripts/time_engine.py [--threads N]

A forecast is one weighted sum of the stored outputs (16 x 128 x 128 per sample) accumulated in float32; the
transformer pass is the bundled reference model (tiny: 1.8 M parameters, 16 tokens) and, for scale, the same
architecture at FLUX's 1024x1024 token count is far more. Prints a table of medians in milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmark.pack import comfyui_l2p  # noqa: E402

comfyui_l2p()
from comfyui_l2p.predictors import ForecastEngine, L2PDirect, LesaEngine, LesaModel, StepGrid, TaylorSeer  # noqa: E402
from comfyui_l2p.predictors.schedules.placements import even_schedule  # noqa: E402
from comfyui_l2p.reference.model import load_reference  # noqa: E402


def median_ms(fn, repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    grid = StepGrid.uniform(50)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for k in (7, 11):
            steps = even_schedule(50, k, warmup=2)
            gram = torch.eye(50, dtype=torch.float64).numpy() + 0.5
            for name, predictor in (("TaylorSeer-2", TaylorSeer(order=2)), ("L2P direct", L2PDirect(gram))):
                engine = ForecastEngine(predictor, grid)
                for s in steps:
                    engine.observe("cond", s, torch.randn(1, 16, 128, 128).to(dtype))
                target = steps[-1] + 1
                engine.coefficients("cond", target)  # the fit is cached per (target, history): time the sum
                used = int((engine.coefficients("cond", target) != 0).sum())
                rows.append((f"forecast {name}, {used} outputs, {str(dtype).split('.')[-1]}",
                             median_ms(lambda: engine.forecast("cond", target))))
    lesa = LesaEngine(LesaModel.untrained(grid.array), grid)  # an untrained KAN costs what a trained one does
    for s in even_schedule(50, 9, warmup=2):
        lesa.observe("cond", s, torch.randn(1, 16, 128, 128))
    rows.append(("forecast LESA (KAN per element, 3 outputs), float32",
                 median_ms(lambda: lesa.forecast("cond", 45), repeats=5)))
    model = load_reference()
    x = torch.randn(1, 16, 8, 8)
    cond, _ = model.conditioning(torch.tensor([3]))
    with torch.no_grad():
        rows.append(("reference transformer pass (tiny, 16 tokens, batch 1)",
                     median_ms(lambda: model.model_fn(x, torch.tensor([0.5]), cond))))
        x_big = torch.randn(1, 16, 128, 128)
        rows.append(("same transformer at 1024x1024 (4096 tokens, batch 1)",
                     median_ms(lambda: model.model_fn(x_big, torch.tensor([0.5]), cond), repeats=3)))
    print(f"| what (torch threads: {args.threads}) | ms |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
