"""How much a forecast error at step s grows before it reaches the result: the per-step weights of the schedule
search's error model (``optimizer.step_weights``).

Formula: weight_s = |dsigma_s| ** power, power in [0, 1]. Euler carries a velocity error at step s into the latent
scaled by |dsigma_s|; the rest of sampling then multiplies it by a gain g_s (how much a perturbation of the latent
after step s grows or shrinks by the end). Measured on both reference models (``python3 -m benchmark.gains``,
24 held-out samples, a random perturbation per sample), g_s falls from early to late steps roughly as
|dsigma_s| ** -a: without CFG a = 0.45 / 0.42 (FLUX / Qwen-Image reference) for the median sample, 0.61 / 0.57 for the
90th percentile, 0.92 / 0.72 for the worst; with CFG 3, 0.25 / 0.26, 0.44 / 0.40 and 0.57 / 0.57. So the error that
reaches the image is |dsigma_s| * g_s ~ |dsigma_s| ** (1 - a): early steps (small dsigma, large gain) matter more
than the dsigma-only model (power 1) says, most for the samples that go wrong.

State: none (a frozen config). Cost: one [S] vector per schedule search.

Defaults (``DEFAULT``, ``DEFAULT_CFG``): 0.25 without CFG, 0.75 with CFG, chosen on the calibration classes with
seeds neither the calibration nor the benchmark uses (``python3 -m benchmark.sweep --growths 1 0.75 0.5 0.4 0.25 0.1 0
--eval-classes calibration``, both models): without CFG 0.25 had the best mean, or within 0.11 dB of it, at every
speedup on both models (+0.04 to +3.2 dB over 1); with CFG 0.75 was within 0.5 dB of 1 or better (up to +0.9 dB),
0.25 cost up to 1.6 dB (power 0 up to 3 dB), and 0.75 is the measured median growth. On the held-out classes the
default's worst sample rose by 0-5.4 dB without CFG and moved by -1.9 to +5.0 dB with CFG (README).
Files calibrated before this model existed record no power and keep 1.0 (the error model they were made with) until
L2P Calibrate adds runs to them (the metadata keys below).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..engine.grid import StepGrid

#: predictor-file metadata keys holding the powers the file's schedules are searched with (absent: LEGACY)
POWER_KEY = "schedule_dsigma_power"
CFG_POWER_KEY = "schedule_dsigma_power_cfg"


@dataclass(frozen=True)
class ErrorGrowth:
    """weight_s = |dsigma_s| ** power (see the module docstring). power 1: no growth modelled."""

    power: float

    def __post_init__(self) -> None:
        if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) \
                or not (math.isfinite(self.power) and 0.0 <= self.power <= 1.0):
            raise ValueError(f"ErrorGrowth.power must be a number in [0, 1] (1: errors do not grow), got"
                             f" {self.power!r}")
        object.__setattr__(self, "power", float(self.power))

    def step_weights(self, grid: StepGrid) -> np.ndarray:
        """float64 [S]: how much a forecast error at each step weighs in the final result."""
        return np.abs(grid.dsigma()) ** self.power


#: the dsigma-only error model: what every file made before the growth model was searched with
LEGACY = ErrorGrowth(1.0)
#: the defaults new calibrations record (module docstring: measured)
DEFAULT = ErrorGrowth(0.25)
DEFAULT_CFG = ErrorGrowth(0.75)


def for_guidance(cfg_run: bool, metadata: dict[str, str] | None = None, source: str = "predictor file") -> ErrorGrowth:
    """The growth model a file's schedules are searched with: the power it records for this guidance setup
    (``to_metadata``), LEGACY when it records none. ``source`` names the file in errors."""
    key = CFG_POWER_KEY if cfg_run else POWER_KEY
    value = (metadata or {}).get(key)
    if value is None:
        return LEGACY
    try:
        return ErrorGrowth(float(value))
    except ValueError as err:
        raise ValueError(f"{source}: metadata '{key}' must be a number in [0, 1], found {value!r} ({err})."
                         f" Recalibrate with L2P Calibrate, or remove the key to use the dsigma-only schedule"
                         f" error") from None


def to_metadata(growth: ErrorGrowth = DEFAULT, cfg_growth: ErrorGrowth = DEFAULT_CFG) -> dict[str, str]:
    """The metadata a newly written calibration records."""
    return {POWER_KEY: repr(growth.power), CFG_POWER_KEY: repr(cfg_growth.power)}
