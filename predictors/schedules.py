"""Schedules: which steps of a run are really computed.

A ``speedup`` target gives the number K of computed steps (sampler steps per real transformer pass). A
placement decides where those K steps go. Guards are applied by every placement: the first ``warmup`` steps
are always computed (a forecast needs history) and, optionally, the last step.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

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


def computed_count(num_steps: int, speedup: float) -> int:
    """K = round(S / speedup), at least 1 and at most S. speedup 1 computes every step."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not speedup >= 1.0:
        raise ValueError(f"speedup must be >= 1 (sampler steps per real pass), got {speedup}")
    return max(1, min(num_steps, round(num_steps / speedup)))


def _check_guards(num_steps: int, k: int, warmup: int, compute_last: bool) -> None:
    if not 1 <= warmup <= num_steps:
        raise ValueError(f"warmup must be in 1..{num_steps} (step 0 is always computed), got {warmup}")
    needed = warmup + (1 if compute_last and warmup < num_steps else 0)
    if k < needed:
        raise ValueError(
            f"{k} computed steps cannot cover the guards (warmup {warmup}{', last step' if compute_last else ''}):"
            f" lower the speedup or the warm-up"
        )


def even_schedule(num_steps: int, k: int, warmup: int = 1, compute_last: bool = False) -> tuple[int, ...]:
    """The first ``warmup`` steps, then K - warmup steps at even spacing over the rest of the run.

    Without ``compute_last`` the spacing includes the tail (the last computed step sits one gap before the end),
    so every forecast run is about equally long.
    """
    _check_guards(num_steps, k, warmup, compute_last)
    steps = list(range(min(warmup, k)))
    rest = k - len(steps)
    if rest > 0:
        start = warmup
        if compute_last:
            # rest points from (start + gap) .. S-1 inclusive
            span = (num_steps - 1) - (start - 1)
            steps += [start - 1 + round(span * (j + 1) / rest) for j in range(rest)]
        else:
            span = num_steps - start
            steps += [start + round(span * j / rest) for j in range(rest)]
    out = tuple(sorted(set(steps)))
    if len(out) != k:
        raise AssertionError(f"even_schedule produced {out} for k={k}")
    return out


def published_schedule(num_steps: int, k: int) -> tuple[int, ...]:
    """The L2P release's list with exactly K computed steps (50-step runs only)."""
    if num_steps != 50:
        raise ValueError(f"the published L2P schedules exist for 50 steps only, the run has {num_steps}")
    for steps in PUBLISHED_L2P_50.values():
        if len(steps) == k:
            return steps
    have = sorted(len(s) for s in PUBLISHED_L2P_50.values())
    raise ValueError(f"no published L2P schedule computes {k} steps; published counts are {have}")
