"""Time the fits on this CPU: the paper matrix (closed form), a full direct fit of a 50-step schedule, the paper's
Adam on G, the rollout unroll, and a grid resample. Prints a table (median of repeats, milliseconds).

Run: python3 scripts/time_fits.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import conftest  # noqa: E402,F401  (makes the pack importable as comfyui_l2p)

from comfyui_l2p.predictors.calibration.gram import GramStats  # noqa: E402
from comfyui_l2p.predictors.calibration.fit import fit_paper_adam, fit_paper_matrix  # noqa: E402
from comfyui_l2p.predictors.engine.grid import StepGrid  # noqa: E402
from comfyui_l2p.predictors.forecasters.l2p import L2PDirect, L2PRollout  # noqa: E402
from comfyui_l2p.predictors.schedules.placements import PUBLISHED_L2P_50, computed_count, even_schedule  # noqa: E402
from comfyui_l2p.predictors.calibration.transfer import resample_gram  # noqa: E402

S = 50
REPEATS = 7


def shifted_grid(num_steps: int, shift: float = 3.0) -> StepGrid:
    t = np.linspace(1.0, 0.0, num_steps + 1)
    return StepGrid(tuple(shift * t / (1.0 + (shift - 1.0) * t)))


def median_ms(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def all_forecasts(predictor, schedule, grid) -> None:
    """Every forecast step of the run, each from the computed steps before it (what the engine asks)."""
    for target in range(grid.num_steps):
        if target in schedule:
            continue
        predictor.coefficients(target, [c for c in schedule if c < target], grid)


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((4, S, 512)), axis=1)
    gram = np.einsum("nsd,ntd->st", x, x)
    grid = shifted_grid(S)
    stats = GramStats(gram, 4, 4 * 512, grid)
    even = even_schedule(S, computed_count(S, 5.0), warmup=2)
    published = PUBLISHED_L2P_50[7]
    matrix = fit_paper_matrix(gram, 1e-3)

    rows = [
        ("fit_paper_matrix (S=50, 49 ridge solves)", lambda: fit_paper_matrix(gram, 1e-3)),
        (f"direct fit, all {S - len(even)} forecasts of even K={len(even)}",
         lambda: all_forecasts(L2PDirect(gram, 1e-3), even, grid)),
        (f"direct fit, all {S - len(published)} forecasts of published K={len(published)}",
         lambda: all_forecasts(L2PDirect(gram, 1e-3), published, grid)),
        (f"direct fit, window 3, even K={len(even)}",
         lambda: all_forecasts(L2PDirect(gram, 1e-3, window=3), even, grid)),
        (f"rollout unroll, all forecasts of published K={len(published)}",
         lambda: all_forecasts(L2PRollout(matrix), published, grid)),
        ("fit_paper_adam on G (201 iters)", lambda: fit_paper_adam(gram, elements=stats.element_count)),
        ("resample_gram 50 -> 28 steps", lambda: resample_gram(stats, shifted_grid(28))),
    ]
    print(f"{'what':58s} {'median ms':>10s}")
    for label, fn in rows:
        print(f"{label:58s} {median_ms(fn):10.2f}")


if __name__ == "__main__":
    main()
