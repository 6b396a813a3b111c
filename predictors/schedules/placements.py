"""Schedules: which steps of a run are really computed.

A ``speedup`` target gives the number K of computed steps (sampler steps per real transformer pass). A
placement decides where those K steps go. Guards are applied by every placement: the first ``warmup`` steps
are always computed (a forecast needs history) and, optionally, the last step.

Placements (``Placement``):
- EVEN: warm-up, then the rest evenly spread.
- PUBLISHED: the L2P release's lists (50 steps).
- PROGRESSIVE: Spectrum's growing windows, with the growth alpha searched so that exactly K steps are computed
  (``progressive``).
- OPTIMIZED: searched on a calibration Gram matrix to minimise the expected final-latent error
  (``optimizer``); never worse than EVEN under that error.
- ADAPTIVE: not a fixed list; a per-run ``AdaptiveController`` (``adaptive``) follows the residuals.

``ScheduleConfig`` holds the user's choices; ``plan_schedule`` turns it into the computed steps of a run.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from .adaptive import AdaptiveController
from .budget import RunBudget, check_guards, computed_count, guard_steps, run_budget
from ..engine.grid import StepGrid
from ..errors import ScheduleError
from .optimizer import DEFAULT_MAX_SWEEPS, Spread, expected_final_error, optimize_schedule
from .progressive import SPECTRUM_WINDOW, progressive_schedule, spectrum_progressive_steps

# Relative ridge of the direct fits when planning an OPTIMIZED schedule (fit.ridge_solve's convention).
from ..calibration.fit import DEFAULT_RIDGE  # one default for fits and schedule search

# Published L2P computed-step lists, FLUX.1-dev at 50 steps (L2P-Cache `FULL_STEP_SCHEDULES`, by interval).
PUBLISHED_L2P_50: dict[int, tuple[int, ...]] = {
    5: (0, 1, 2, 4, 6, 9, 14, 23, 30, 37, 44),
    6: (0, 1, 2, 4, 7, 14, 23, 31, 38, 45),
    7: (0, 1, 2, 4, 9, 17, 26, 35, 43),
    8: (0, 1, 2, 4, 10, 20, 31, 41),
    10: (0, 1, 2, 4, 12, 24, 38),
    16: (0, 1, 2, 4, 16, 32),
}


class Placement(enum.Enum):
    EVEN = "even"  # warm-up, then the remaining computed steps evenly spread to the end
    PUBLISHED = "published"  # the L2P release's lists (50 steps only)
    PROGRESSIVE = "progressive"  # Spectrum's growing gaps, growth chosen to compute exactly K steps
    OPTIMIZED = "optimized"  # minimises the expected final-latent error under a calibration Gram matrix
    ADAPTIVE = "adaptive"  # decided during the run from forecast residuals (AdaptiveController)

    @property
    def is_fixed(self) -> bool:
        """True when the computed steps are known before the run starts."""
        return self is not Placement.ADAPTIVE


def even_schedule(num_steps: int, k: int, warmup: int = 1, compute_last: bool = False) -> tuple[int, ...]:
    """The first ``warmup`` steps, then K - warmup steps at even spacing over the rest of the run.

    Without ``compute_last`` the gaps are equal from the last warm-up step to the end of the run, the tail
    counted as one gap, so every forecast run is about equally long.
    """
    check_guards(num_steps, k, warmup, compute_last)
    steps = list(range(min(warmup, k)))
    rest = k - len(steps)
    if rest > 0:
        start = warmup
        if compute_last:
            # rest points from (start + gap) .. S-1 inclusive
            span = (num_steps - 1) - (start - 1)
            steps += [start - 1 + round(span * (j + 1) / rest) for j in range(rest)]
        else:
            # equal gaps from the last warm-up step to the end of the run, the tail counted as one gap
            span = num_steps - (start - 1)
            steps += [start - 1 + round(span * (j + 1) / (rest + 1)) for j in range(rest)]
    out = tuple(sorted(set(steps)))
    if len(out) != k:
        raise AssertionError(f"even_schedule produced {out} for k={k}")
    return out


def published_schedule(num_steps: int, k: int) -> tuple[int, ...]:
    """The L2P release's list with exactly K computed steps (50-step runs only)."""
    if num_steps != 50:
        raise ScheduleError(f"the published L2P schedules exist for 50 steps only, the run has {num_steps}")
    for steps in PUBLISHED_L2P_50.values():
        if len(steps) == k:
            return steps
    have = sorted(len(s) for s in PUBLISHED_L2P_50.values())
    raise ScheduleError(f"no published L2P schedule computes {k} steps; published counts are {have}")


# ---------------------------------------------------------------------------------------------- optimized
def optimized_schedule(
    gram: np.ndarray,
    grid: StepGrid,
    k: int,
    warmup: int = 1,
    compute_last: bool = False,
    ridge: float = DEFAULT_RIDGE,
    step_weights=None,
    max_sweeps: int = DEFAULT_MAX_SWEEPS,
    mix=None,
    spread: Spread | None = None,
) -> tuple[int, ...]:
    """K computed steps minimising ``expected_final_error`` under ``gram`` (float64 [S, S], or the joint
    [R*S, R*S] with ``mix``, one weight per stream), or the ``spread``'s robust objective, found by local search
    from the even schedule with the same K and guards; never worse than that even schedule. Guards never move.
    """
    start = even_schedule(grid.num_steps, k, warmup, compute_last)
    fixed = guard_steps(grid.num_steps, warmup, compute_last)
    return optimize_schedule(gram, grid, start, fixed, ridge, step_weights, max_sweeps, mix, spread)


# ---------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ScheduleConfig:
    """The user's schedule choices, validated at construction.

    speedup: sampler steps per real pass (>= 1), giving K = round(S / speedup).
    placement: a Placement (or its string value).
    warmup: the first steps always computed (>= 1). compute_last: always compute the last step.
    residual_budget, min_gap, max_gap: ADAPTIVE only. max_gap None: ceil(2 * speedup) (at least min_gap).
    window: PROGRESSIVE only, Spectrum's window_size N.
    """

    speedup: float
    placement: Placement
    warmup: int = 2
    compute_last: bool = False
    residual_budget: float = 0.05
    min_gap: int = 1
    max_gap: int | None = None
    window: int = SPECTRUM_WINDOW

    def __post_init__(self) -> None:
        if isinstance(self.placement, str):
            valid = [p.value for p in Placement]
            if self.placement not in valid:
                raise ValueError(f"unknown placement {self.placement!r}; choose one of {valid}")
            object.__setattr__(self, "placement", Placement(self.placement))
        if not isinstance(self.placement, Placement):
            raise ValueError(f"placement must be a Placement, got {self.placement!r}")
        if not (isinstance(self.speedup, (int, float)) and math.isfinite(self.speedup) and self.speedup >= 1.0):
            raise ValueError(f"speedup must be a finite number >= 1 (sampler steps per real pass), got {self.speedup}")
        if not (isinstance(self.warmup, int) and self.warmup >= 1):
            raise ValueError(f"warmup must be an integer >= 1 (step 0 is always computed), got {self.warmup}")
        if not (math.isfinite(self.residual_budget) and self.residual_budget > 0):
            raise ValueError(f"residual_budget must be a finite number > 0, got {self.residual_budget}")
        if not (isinstance(self.min_gap, int) and self.min_gap >= 1):
            raise ValueError(f"min_gap must be an integer >= 1, got {self.min_gap}")
        if self.max_gap is not None and not (isinstance(self.max_gap, int) and self.max_gap >= self.min_gap):
            raise ValueError(f"max_gap must be an integer >= min_gap ({self.min_gap}) or None, got {self.max_gap}")
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"window must be an integer >= 1, got {self.window}")

    def computed_count(self, num_steps: int) -> int:
        return computed_count(num_steps, self.speedup)

    def budget(self, num_steps: int) -> RunBudget:
        """The run's computed-step count (``budget.run_budget``): K, or the guards / every step in a short run."""
        return run_budget(num_steps, self.speedup, self.warmup, self.compute_last)


def plan_schedule(
    config: ScheduleConfig,
    grid: StepGrid,
    gram: np.ndarray | None = None,
    ridge: float = DEFAULT_RIDGE,
    step_weights=None,
    mix=None,
    spread: Spread | None = None,
) -> tuple[int, ...]:
    """The computed steps of a run on ``grid`` for a fixed placement (EVEN, PUBLISHED, PROGRESSIVE, OPTIMIZED).
    A run too short for the speedup computes its guards, or every step (``ScheduleConfig.budget``).

    gram: needed by OPTIMIZED only: float64 [S, S] (one stream, or several roles' summed blocks sharing one fit),
    or the joint [R*S, R*S] of R streams each fitted on its own block, with ``mix`` their weights in the output.
    """
    num_steps = grid.num_steps
    budget = config.budget(num_steps)
    if budget.every_step:
        return tuple(range(num_steps))
    k = budget.computed
    placement = config.placement
    if placement is Placement.EVEN:
        return even_schedule(num_steps, k, config.warmup, config.compute_last)
    if placement is Placement.PROGRESSIVE:
        return progressive_schedule(num_steps, k, config.warmup, config.compute_last, config.window)
    if placement is Placement.PUBLISHED:
        steps = published_schedule(num_steps, k)
        missing = sorted(set(guard_steps(num_steps, config.warmup, config.compute_last)) - set(steps))
        if missing:
            raise ScheduleError(
                f"the published L2P schedule {steps} does not compute the guard steps {missing}: the published"
                " lists compute steps 0-2 and never the last step. Use warm-up <= 3 without compute-last, or"
                " another placement"
            )
        return steps
    if placement is Placement.OPTIMIZED:
        if gram is None:
            raise ScheduleError(
                "the optimized placement needs a calibrated predictor file (one holding a Gram matrix, made by"
                " L2P Calibrate); this one has none. Choose the even placement, or calibrate this model"
            )
        return optimized_schedule(gram, grid, k, config.warmup, config.compute_last, ridge, step_weights, mix=mix,
                                  spread=spread)
    raise ValueError(
        f"placement {placement.value!r} is decided during the run, not planned: use adaptive_controller()"
    )


def adaptive_controller(config: ScheduleConfig, num_steps: int, order: int = 1) -> AdaptiveController:
    """The per-run controller for ADAPTIVE: the speedup sets the starting gap, max_gap defaults to
    ceil(2 * speedup), so the residual budget moves the gaps within [min_gap, max_gap]."""
    max_gap = config.max_gap if config.max_gap is not None else max(config.min_gap, math.ceil(2 * config.speedup))
    initial = min(max_gap, max(config.min_gap, int(round(config.speedup))))
    return AdaptiveController(
        budget=config.residual_budget, min_gap=config.min_gap, max_gap=max_gap, warmup=config.warmup,
        num_steps=num_steps, compute_last=config.compute_last, order=order, initial_gap=initial,
    )


__all__ = [
    "AdaptiveController", "DEFAULT_RIDGE", "PUBLISHED_L2P_50", "Placement", "RunBudget", "ScheduleConfig",
    "adaptive_controller", "computed_count", "even_schedule", "expected_final_error", "guard_steps",
    "optimized_schedule", "plan_schedule", "progressive_schedule", "published_schedule", "run_budget",
    "spectrum_progressive_steps",
]
