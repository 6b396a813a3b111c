"""Step plans: the glue between a schedule from ``predictors.schedules.placements`` and the per-step decision of a run."""
from __future__ import annotations

from dataclasses import dataclass, field

from .report import ForcedReason, RunReport


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

    def will_compute(self, step: int) -> bool:
        """True when ``decide(step)`` computes it (planned or guarded)."""
        return step < self.warmup or step == self.last_step or step in self.computed

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


@dataclass
class SafetyNetPlan:
    """A fixed plan with the per-run safety net (``predictors.schedules.safety_net``): when a computed step's
    forecast residual exceeds the calibration's margin there, the next step is computed too (at most
    ``margins.net.max_extra`` times per run; the planned steps stay). Each trigger is noted in ``report``."""

    base: FixedPlan
    margins: object  # ResidualMargins
    report: RunReport
    extra: set[int] = field(default_factory=set)
    computed: list[int] = field(default_factory=list)

    def decide(self, step: int) -> tuple[bool, ForcedReason | None]:
        if step in self.extra:
            self.computed.append(step)
            return True, ForcedReason.SAFETY_NET
        compute, reason = self.base.decide(step)
        if compute:
            self.computed.append(step)
        return compute, reason

    def report_residual(self, step: int, residual: float) -> None:
        nxt = step + 1
        before = [s for s in self.computed if s < step]
        # a step's streams may report one by one (cond and uncond in separate calls): the first trigger counts
        if (len(self.extra) >= self.margins.net.max_extra or not before or nxt in self.extra
                or self.base.will_compute(nxt) or nxt >= self.report.num_steps):
            return
        threshold = self.margins.threshold(step, before)
        if residual > threshold:  # NaN never triggers: the engine's residual is finite for finite outputs
            self.extra.add(nxt)
            self.report.notes.append(
                f"safety net: residual {residual:.4f} at step {step} above the calibration's margin {threshold:.4f};"
                f" step {nxt} computed ({len(self.extra)} of at most {self.margins.net.max_extra} extra passes)")

    @property
    def planned(self) -> tuple[int, ...]:
        return self.base.planned

    @property
    def notes(self) -> tuple[str, ...]:
        return self.base.notes
