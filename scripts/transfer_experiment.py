"""How well does resampling calibration statistics over sigma transfer? Synthetic, exact-expectation measurement.

Trajectories: F(sigma; n) = sum_k a_k(n) phi_k(sigma) with smooth basis functions phi_k and random coefficient
vectors a_k(n) (D elements each, variance decaying with k). Then G on any grid is Phi A Phi^T with A the K x K
Gram of the coefficients: A_cal over N calibration samples (what a calibration at that grid would record) and
A_pop = E[a a^T] (the population the forecasts are judged on, i.e. infinitely many fresh samples).

For each target grid (20 and 28 steps, FLUX-style shift 3; and 28 steps with shift 2, a scheduler change) and each
speedup: the direct L2P fit (ridge 1e-4) for an even schedule, from
    direct:    G calibrated on the target grid itself (same N samples),
    resampled: G calibrated at 50 steps, then ``resample_gram`` onto the target grid,
    oracle:    the population G on the target grid (the best any calibration could do),
and FORA (reuse) for scale. Reported: the expected relative forecast error over forecast steps
sum_s E||F_hat_s - F_s||^2 / sum_s E||F_s||^2 and the relative error of the Euler result
E||sum_s dsigma_s (F_hat_s - F_s)||^2 / E||sum_s dsigma_s F_s||^2, both in dB (lower is better), averaged over seeds; and the worst difference between resampled and direct over
seeds, with the worst max-entry relative difference between the resampled and the directly calibrated G.

Run: python3 scripts/transfer_experiment.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import conftest  # noqa: E402,F401  (makes the pack importable as comfyui_l2p)

from comfyui_l2p.predictors.calibration.gram import GramStats  # noqa: E402
from comfyui_l2p.predictors.calibration.fit import direct_weights  # noqa: E402
from comfyui_l2p.predictors.engine.grid import StepGrid  # noqa: E402
from comfyui_l2p.predictors.schedules.placements import computed_count, even_schedule  # noqa: E402
from comfyui_l2p.predictors.calibration.transfer import resample_gram  # noqa: E402

RIDGE = 1e-4
D = 256  # elements per sample
SEEDS = range(8)
SPEEDUPS = (3.0, 4.0, 5.0)


def shifted_grid(num_steps: int, shift: float) -> StepGrid:
    t = np.linspace(1.0, 0.0, num_steps + 1)
    return StepGrid(tuple(shift * t / (1.0 + (shift - 1.0) * t)))


def basis(sigma: np.ndarray) -> np.ndarray:
    """[len(sigma), K] smooth functions of sigma: trends, oscillations, a sharp late change, and weaker
    higher-frequency terms (so that G is not of tiny rank)."""
    s = np.asarray(sigma)
    funcs = [np.ones_like(s), s, np.cos(3.0 * s), np.sin(5.0 * s + 0.3), np.exp(-6.0 * s),
             s ** 2 * np.cos(8.0 * s), 1.0 / (1.0 + 20.0 * s)]
    funcs += [np.cos(2.0 * np.pi * j * s + j) for j in range(2, 6)]
    return np.stack(funcs, axis=1)


SCALES = np.array([1.0, 0.8, 0.6, 0.5, 0.7, 0.3, 0.4] + [0.15 / j for j in range(2, 6)])  # coefficient std


def coefficient_mixing(seed: int) -> np.ndarray:
    """K x K: coefficients a(n) = diag(SCALES) M z with z ~ N(0, I) per element, so they correlate across k."""
    k = SCALES.size
    mix = np.eye(k) + 0.3 * np.random.default_rng(1000 + seed).standard_normal((k, k)) / np.sqrt(k)
    return np.diag(SCALES) @ mix


def coefficient_gram(n: int, mixing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """K x K: sum over n samples and D elements of a_k a_l (what a calibration of n samples records)."""
    a = rng.standard_normal((n, D, SCALES.size)) @ mixing.T  # [n, D, K]
    return np.einsum("ndk,ndl->kl", a, a)


def population_gram(mixing: np.ndarray) -> np.ndarray:
    """K x K: the expectation of coefficient_gram per sample (D E[a a^T])."""
    return D * mixing @ mixing.T


def gram_on(grid: StepGrid, coef_gram: np.ndarray) -> np.ndarray:
    phi = basis(grid.array[:-1])
    return phi @ coef_gram @ phi.T


def forecast_matrix(gram: np.ndarray | None, schedule: tuple[int, ...], num_steps: int) -> np.ndarray:
    """[S, S]: row s = how step s's value is made from the true outputs (unit rows at computed steps).
    gram None: FORA (reuse the last computed output)."""
    out = np.zeros((num_steps, num_steps))
    for s in range(num_steps):
        if s in schedule:
            out[s, s] = 1.0
            continue
        known = [c for c in schedule if c < s]
        if gram is None:
            out[s, known[-1]] = 1.0
        else:
            out[s, known] = direct_weights(gram, s, known, RIDGE)
    return out


def errors_db(b: np.ndarray, pop: np.ndarray, grid: StepGrid) -> tuple[float, float]:
    e = b - np.eye(b.shape[0])
    per_step = np.einsum("ij,jk,ik->i", e, pop, e)
    dsig = grid.dsigma()
    final = dsig @ e @ pop @ e.T @ dsig / (dsig @ pop @ dsig)
    return 10 * np.log10(per_step.sum() / np.trace(pop)), 10 * np.log10(final)


def main() -> None:
    source = shifted_grid(50, 3.0)
    targets = [("20 steps, shift 3", shifted_grid(20, 3.0)), ("28 steps, shift 3", shifted_grid(28, 3.0)),
               ("28 steps, shift 2", shifted_grid(28, 2.0))]
    for n_cal in (4, 32):
        print(f"\nN = {n_cal} calibration samples, D = {D}, ridge {RIDGE}, mean over {len(SEEDS)} seeds "
              f"(dB, lower is better)")
        print(f"{'target grid':18s} {'speedup':>7s} {'K':>3s} | {'forecast error':^35s} | {'Euler result error':^35s}"
              f" | {'worst |resamp - direct|':^23s}")
        print(f"{'':18s} {'':7s} {'':3s} | {'direct':>8s} {'resamp':>8s} {'oracle':>8s} {'FORA':>8s} |"
              f" {'direct':>8s} {'resamp':>8s} {'oracle':>8s} {'FORA':>8s} | {'dB fcst':>7s} {'dB Euler':>8s} {'G rel':>6s}")
        for label, grid in targets:
            num_steps = grid.num_steps
            for speedup in SPEEDUPS:
                k = computed_count(num_steps, speedup)
                schedule = even_schedule(num_steps, k, warmup=2)
                rows, g_err = [], []
                for seed in SEEDS:
                    mixing = coefficient_mixing(seed)
                    cal = coefficient_gram(n_cal, mixing, np.random.default_rng(seed))
                    pop = gram_on(grid, population_gram(mixing))
                    stats50 = GramStats(gram_on(source, cal), n_cal, n_cal * D, source)
                    resampled = resample_gram(stats50, grid).gram
                    direct = gram_on(grid, cal)
                    g_err.append(np.max(np.abs(resampled - direct)) / np.max(np.abs(direct)))
                    row = []
                    for g in (direct, resampled, pop, None):
                        row.append(errors_db(forecast_matrix(g, schedule, num_steps), pop, grid))
                    rows.append(row)
                rows = np.array(rows)  # [seeds, 4 methods (direct, resampled, oracle, FORA), 2 metrics]
                mean = rows.mean(axis=0)
                worst = np.max(np.abs(rows[:, 1] - rows[:, 0]), axis=0)
                print(f"{label:18s} {speedup:7.1f} {k:3d} | " + " ".join(f"{v:8.2f}" for v in mean[:, 0]) + " | "
                      + " ".join(f"{v:8.2f}" for v in mean[:, 1])
                      + f" | {worst[0]:7.3f} {worst[1]:8.3f} {max(g_err):6.0e}")


if __name__ == "__main__":
    main()
