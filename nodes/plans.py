"""Step plans: the glue between a schedule from ``predictors.schedules.placements`` and the per-step decision of a run."""
from __future__ import annotations

from dataclasses import dataclass

from .report import ForcedReason


@dataclass
class FixedPlan:
    """A fixed set of computed steps. Guard steps are reported as forced, with their guard as the reason."""

    computed: frozenset[int]
    warmup: int
    last_step: int | None = None  # the run's last step, when the last-step guard is on
    notes: tuple[str, ...] = ()  # for the run's report, e.g. a short run computing its guards (schedules.budget)

    def decide(self, step: int) -> tuple[bool, ForcedReason | None]:
        if step < self.warmup:
            return True, ForcedReason.WARMUP
        if self.last_step is not None and step == self.last_step:
            return True, ForcedReason.LAST_STEP
        return step in self.computed, None

    def report_residual(self, step: int, residual: float) -> None:
        pass

    @property
    def planned(self) -> tuple[int, ...]:
        return tuple(sorted(self.computed))


class EveryStepPlan(FixedPlan):
    """Compute every step (calibration, or speedup 1)."""

    def __init__(self, num_steps: int, notes: tuple[str, ...] = ()) -> None:
        super().__init__(frozenset(range(num_steps)), warmup=0, notes=notes)

    def decide(self, step: int) -> tuple[bool, ForcedReason | None]:
        return True, None  # the plan itself, not a guard: nothing to report as forced


@dataclass
class AdaptivePlan:
    """Wraps an ``AdaptiveController`` (predictors.schedules.placements): computed steps follow the residual budget."""

    controller: object
    warmup: int
    notes: tuple[str, ...] = ()

    def decide(self, step: int) -> tuple[bool, ForcedReason | None]:
        compute = bool(self.controller.should_compute(step))
        if compute:
            return True, ForcedReason.WARMUP if step < self.warmup else ForcedReason.ADAPTIVE
        return False, None

    def report_residual(self, step: int, residual: float) -> None:
        self.controller.report_residual(step, residual)

    @property
    def planned(self) -> None:
        return None
