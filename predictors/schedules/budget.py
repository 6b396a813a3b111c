"""How many of a run's steps are computed: the speedup's K, or what the guards need when the run is short.

    K = round(S / speedup), clamped to 1..S                          (``computed_count``)
    G = |guards| = min(warmup, S) + (1 if compute_last and warmup < S)
    computed = S  when K >= S (speedup 1) or G >= S (no step left to forecast after the guards)
             = G  when K < G < S (the guards, then forecasts)
             = K  otherwise

A short run (a few-step distilled model, a step LoRA, one expert's share of a Wan 2.2 split) must never fail
mid-sampling because the speedup asks for fewer computed steps than the warm-up guard: it computes the guards (or
every step) and ``RunBudget.note`` says so for the run's report. State: none; O(1).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ScheduleError


def computed_count(num_steps: int, speedup: float) -> int:
    """K = round(S / speedup), at least 1 and at most S. speedup 1 computes every step."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not speedup >= 1.0:
        raise ValueError(f"speedup must be >= 1 (sampler steps per real pass), got {speedup}")
    return max(1, min(num_steps, round(num_steps / speedup)))


def guard_count(num_steps: int, warmup: int, compute_last: bool) -> int:
    """The number of steps every placement computes: the first ``warmup`` and, with ``compute_last``, the last."""
    return min(warmup, num_steps) + (1 if compute_last and warmup < num_steps else 0)


def guard_steps(num_steps: int, warmup: int, compute_last: bool) -> tuple[int, ...]:
    """The steps every placement computes: 0..warmup-1 and, with ``compute_last``, S-1."""
    steps = set(range(min(warmup, num_steps)))
    if compute_last:
        steps.add(num_steps - 1)
    return tuple(sorted(steps))


def check_guards(num_steps: int, k: int, warmup: int, compute_last: bool) -> None:
    """ScheduleError unless a warm-up fits the run and K computed steps cover the guards."""
    if not 1 <= warmup <= num_steps:
        raise ScheduleError(f"warmup must be in 1..{num_steps} (step 0 is always computed), got {warmup}")
    if k < guard_count(num_steps, warmup, compute_last):
        raise ScheduleError(
            f"{k} computed steps cannot cover the guards (warmup {warmup}{', last step' if compute_last else ''}):"
            f" lower the speedup or the warm-up"
        )


@dataclass(frozen=True)
class RunBudget:
    """The computed-step count of one run and why it differs from the speedup's, if it does."""

    num_steps: int
    speedup: float
    requested: int  # K from the speedup
    guards: int  # G: the warm-up steps and the last-step guard
    computed: int  # what the run computes

    @property
    def every_step(self) -> bool:
        return self.computed >= self.num_steps

    @property
    def note(self) -> str | None:
        """One line for the run's report when the guards overrode the speedup; None otherwise."""
        if self.computed == self.requested:
            return None
        if self.every_step:
            return (f"computed every step: this run has {self.num_steps} steps and the guards ({self.guards} steps)"
                    f" leave none to forecast at speedup {self.speedup:g}; lower the warm-up or sample more steps")
        return (f"speedup {self.speedup:g} asks for {self.requested} computed step(s) of {self.num_steps}, fewer than"
                f" the guards need ({self.guards}): computed the {self.guards} guard steps and forecast the other"
                f" {self.num_steps - self.guards} ({self.num_steps / self.computed:.2f}x)")


def run_budget(num_steps: int, speedup: float, warmup: int, compute_last: bool) -> RunBudget:
    """The run's computed-step count under the rule in the module docstring (never raises for a short run)."""
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 (step 0 is always computed), got {warmup}")
    requested = computed_count(num_steps, speedup)
    guards = guard_count(num_steps, warmup, compute_last)
    if requested >= num_steps or guards >= num_steps:
        computed = num_steps
    else:
        computed = max(requested, guards)
    return RunBudget(num_steps, float(speedup), requested, guards, computed)
