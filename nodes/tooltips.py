"""What each node's inputs say in the UI (tooltips), as data: no ComfyUI import, so tests check every claim.

Three rules the texts keep:
- an input that applies only to some choices of another input starts with ``<choice> only:`` (Forecast Cache's
  Spectrum knobs, the adaptive placement's budget, L2P Cache's learning inputs), from the table in
  nodes/input_scopes.py that also tells the pack's frontend extension which widgets to hide (README, "Use");
- a node's placement tooltip describes the placements that node offers, no others;
- numbers are computed from the code (step counts from ``computed_count``) or quote a measurement with its command.
"""
from __future__ import annotations

from ..predictors.forecasters.registry import ForecastMethod
from ..predictors.schedules.budget import computed_count
from ..predictors.schedules.placements import Placement
from . import learn_setup
from .input_scopes import ADAPTIVE, LEARNING as LEARNING_SCOPE, ON_POLICY, SPECTRUM

DEFAULT_FORECAST_METHOD = ForecastMethod.TAYLOR2  # the best training-free mean at 4.55x and 5.56x (both models)

# The examples the speedup tooltip gives: the paper's 50-step settings, and a count that rounding moves.
_PAPER_STEPS, _PAPER_SPEEDUPS = 50, (4.55, 5.56, 7.14)
_ROUNDED_STEPS, _ROUNDED_SPEEDUP = 30, 5.56


def _speedup_tooltip() -> str:
    counts = " / ".join(str(computed_count(_PAPER_STEPS, s)) for s in _PAPER_SPEEDUPS)
    k = computed_count(_ROUNDED_STEPS, _ROUNDED_SPEEDUP)
    return (f"Sampler steps per real transformer pass. 1 computes every step (off). The computed steps are"
            f" round(steps / speedup), a whole number, so the achieved speedup (in the node's report) can differ:"
            f" {_PAPER_STEPS} steps at {' / '.join(str(s) for s in _PAPER_SPEEDUPS)} compute {counts} steps;"
            f" {_ROUNDED_STEPS} steps at {_ROUNDED_SPEEDUP} compute {k} ({_ROUNDED_STEPS / k:.2f}x).")


SPEEDUP = _speedup_tooltip()

PLACEMENT_TEXTS: dict[Placement, str] = {
    Placement.OPTIMIZED: "optimized: chosen from the calibration to minimise the expected error of the final image,"
                         " each step's error weighted by how much it grows through the rest of sampling",
    Placement.EVEN: "even: the warm-up steps, then equal gaps to the end",
    Placement.PROGRESSIVE: "progressive: Spectrum's growing gaps, giving exactly the requested number of passes",
    Placement.PUBLISHED: "published: the L2P paper's lists (50 steps, 11/10/9/8/7/6 passes only)",
    Placement.ADAPTIVE: "adaptive: the next computed step moves earlier or later to hold residual_budget",
}


def placement_tooltip(offered: list[str]) -> str:
    """The placement combo's tooltip for a node offering ``offered`` (their values, in the combo's order)."""
    return "Where the computed steps go. " + ". ".join(PLACEMENT_TEXTS[Placement(p)] for p in offered) + "."


WARMUP = "The first steps are always computed: forecasts need history."
COMPUTE_LAST = "Always compute the final step (finer detail, one more pass)."
RESIDUAL_BUDGET = (f"{ADAPTIVE.only}: the relative forecast error to hold (the other placements ignore"
                   " it).")
HISTORY_DEVICE = "Where past outputs are kept. cpu saves VRAM (a few latents per stream) at the cost of copies."

# ----------------------------------------------------------------------------------------------- L2P Cache
PREDICTOR_FILE = (
    f"{learn_setup.AUTO_FILE}: the first runs of each setup (model, steps, scheduler, CFG) compute every step and"
    f" are recorded into models/l2p/auto-...safetensors; then the runs are forecast at the speedup. Or pin a"
    f" predictor file from models/l2p/ (made by L2P Calibrate or learned) or the pack's weights/, used as it is"
    f" and never modified; the official L2P weight.txt is accepted too.")
GRID_MISMATCH = ("When the run's sigmas differ from the file's: refuse with an error, or resample the calibration"
                 " to the run's grid.")
OTHER_MODEL = ("A file records the model it was calibrated on. refuse: use it only on that model (the same weights,"
               " also at another precision). allow: also on a LoRA or fine-tune of it (same class and config, other"
               " weights); the run's report says so. Another model class or config is always refused.")
LEARNING = (
    f"{LEARNING_SCOPE.only} (a pinned file is never changed). learn, then forecast: record full runs until"
    f" the setup has learning_images, then forecast; one run in {learn_setup.KEEP_LEARNING_EVERY} is still a full,"
    f" recorded run until the file holds {learn_setup.TOP_UP_TRAJECTORIES} images (16 came within 1.1 dB of a"
    f" 42-image calibration in every case measured, 4 in 11 of 12). keep learning: one full, recorded run in {learn_setup.KEEP_LEARNING_EVERY}, without end. stop"
    f" learning: record nothing; forecast from what was learned. start over: move this setup's learned file to"
    f" models/l2p/archive/ (kept, pinnable), then learn again.")
LEARNING_IMAGES = (f"{LEARNING_SCOPE.only}: how many images (trajectories; every batch row counts) a setup"
                   f" records before its runs are forecast.")

# ------------------------------------------------------------------------------------------ Forecast Cache
METHOD_TEXTS: dict[ForecastMethod, str] = {
    ForecastMethod.FORA: "FORA: reuse the last computed output",
    ForecastMethod.TAYLOR1: "TaylorSeer order 1: a line through the last 2 computed outputs",
    ForecastMethod.TAYLOR2: "TaylorSeer order 2 (default): a parabola through the last 3; the best training-free"
                            " mean measured at 4.55x and 5.56x (README, Results)",
    ForecastMethod.SPECTRUM: "Spectrum: a Chebyshev ridge fit over every computed output, blended with a line;"
                             " its three spectrum_ inputs apply to it alone",
    ForecastMethod.FOCA: "FoCa: our formulation of forecast-then-calibrate; weak on the reference models",
}
METHOD = "How a skipped step is forecast from the computed ones. " + ". ".join(METHOD_TEXTS.values()) + "."
TIME_AXIS = "step: step index, as published. sigma: the noise level, which respects uneven schedules."
SPECTRUM_DEGREE = f"{SPECTRUM.only}: the Chebyshev degree M (the other methods ignore it)."
SPECTRUM_LAMBDA = f"{SPECTRUM.only}: the ridge strength (the other methods ignore it)."
SPECTRUM_BLEND = f"{SPECTRUM.only}: the weight of the Chebyshev fit against the line (the other methods ignore it)."

# ----------------------------------------------------------------------------------------------- Calibrate
FILE_NAME = ("Created in models/l2p/, or extended when it exists and matches this model, step grid and guidance"
             " setup.")
RIDGE = "Ridge strength of the fit, relative to the outputs' energy."
CALIBRATION_MODE = ("teacher-forced: every step computed and recorded. on-policy: follow what L2P Cache does with this"
                    " file by default (direct fit, optimized schedule, CFG handling) at on_policy_speedup while"
                    " recording the truth; it needs an existing file.")
ON_POLICY_SPEEDUP = f"{ON_POLICY.only}: the speedup whose forecasts the run follows (teacher-forced ignores it)."
