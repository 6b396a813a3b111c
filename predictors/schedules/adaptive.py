"""Adaptive placement: a per-run controller that moves the next computed step to hold a forecast-error budget.

Rule (a step-size controller, as ODE solvers use). At every computed step the caller reports the relative
residual r = ||F_hat - F|| / ||F|| the forecast WOULD have had there (``ForecastEngine.residual``). That forecast
reached across h = step - (previous computed step). A forecaster of order p has an error that grows like
h^(p+1), so the gap that would have hit the budget is h * (budget / r)^(1/(p+1)). The next gap is

    gap = clamp(h * clamp(safety * (budget / r) ** (1 / (order + 1)), min_factor, max_factor), min_gap, max_gap)

and the next computed step is (this step) + round(gap). r = 0 gives max_factor; a non-finite r (a forecast that
blew up) gives min_factor. Residuals above the budget therefore bring the next computed step earlier, residuals
below push it later. The first ``warmup`` steps (and, with ``compute_last``, the last step) are always computed.

State: the computed steps so far, the current gap and the decisions already made (each step is decided once, so
every chunk of one step sees the same answer). Deterministic given the residual sequence. Memory: O(S) ints.
"""
from __future__ import annotations

import math


class AdaptiveController:
    """Decides compute-or-forecast step by step from the residuals of the computed steps.

    Args:
        budget: the relative residual to hold (> 0), e.g. 0.05.
        min_gap, max_gap: bounds on the distance between computed steps (1 <= min_gap <= max_gap).
        warmup: the first ``warmup`` steps are always computed (>= 1).
        num_steps: the run's S, needed only for ``compute_last``.
        compute_last: always compute step S - 1.
        order: the forecaster's order p (error ~ h^(p+1)); 1 for linear extrapolation, 0 for reuse.
        initial_gap: the gap used until the first residual arrives (default min_gap).
        safety, min_factor, max_factor: the usual controller damping; see the module docstring.
    """

    def __init__(
        self,
        budget: float,
        min_gap: int = 1,
        max_gap: int = 8,
        warmup: int = 2,
        num_steps: int | None = None,
        compute_last: bool = False,
        order: int = 1,
        initial_gap: int | None = None,
        safety: float = 0.9,
        min_factor: float = 0.2,
        max_factor: float = 2.0,
    ) -> None:
        if not (math.isfinite(budget) and budget > 0):
            raise ValueError(f"residual budget must be a finite number > 0, got {budget}")
        if not 1 <= min_gap <= max_gap:
            raise ValueError(f"need 1 <= min_gap <= max_gap, got min_gap {min_gap}, max_gap {max_gap}")
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1 (step 0 is always computed), got {warmup}")
        if compute_last and (num_steps is None or num_steps < 1):
            raise ValueError("compute_last needs num_steps (the run's step count)")
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        if not 0 < min_factor <= 1 <= max_factor:
            raise ValueError(f"need 0 < min_factor <= 1 <= max_factor, got {min_factor}, {max_factor}")
        if not safety > 0:
            raise ValueError(f"safety must be > 0, got {safety}")
        initial = min_gap if initial_gap is None else initial_gap
        if not min_gap <= initial <= max_gap:
            raise ValueError(f"initial_gap must be in {min_gap}..{max_gap}, got {initial}")
        self.budget = float(budget)
        self.min_gap = int(min_gap)
        self.max_gap = int(max_gap)
        self.warmup = int(warmup)
        self.num_steps = num_steps
        self.compute_last = compute_last
        self.order = int(order)
        self.initial_gap = int(initial)
        self.safety = float(safety)
        self.min_factor = float(min_factor)
        self.max_factor = float(max_factor)
        self.reset()

    def reset(self) -> None:
        """Forget the run: call between sampling runs."""
        self._computed: list[int] = []
        self._decisions: dict[int, bool] = {}
        self._gap = float(self.initial_gap)

    # ------------------------------------------------------------------ queries
    @property
    def gap(self) -> float:
        """The current target distance between computed steps."""
        return self._gap

    @property
    def computed_steps(self) -> tuple[int, ...]:
        return tuple(self._computed)

    def next_step(self) -> int:
        """The next step the controller will compute (guards aside)."""
        if not self._computed:
            return 0
        return self._computed[-1] + max(1, int(round(self._gap)))

    # ------------------------------------------------------------------ per step
    def should_compute(self, step: int) -> bool:
        """Compute ``step`` for real? Decided once per step: asking again returns the same answer."""
        step = int(step)
        if step in self._decisions:
            return self._decisions[step]
        if self._decisions and step < max(self._decisions):
            raise ValueError(
                f"adaptive schedule: step {step} asked after step {max(self._decisions)}; steps must increase"
                " within a run (call reset() between runs)"
            )
        compute = (
            step < self.warmup
            or (self.compute_last and step == self.num_steps - 1)
            or not self._computed
            or step >= self.next_step()
        )
        self._decisions[step] = compute
        if compute:
            self._mark_computed(step)
        return compute

    def report_residual(self, step: int, residual: float | None) -> None:
        """The relative residual the forecast of computed step ``step`` would have had (None: no history, ignored).

        A step computed for another reason (e.g. an off-grid sigma) may be reported too: it becomes the new
        origin of the next gap.
        """
        step = int(step)
        self._mark_computed(step)
        if residual is None:
            return
        residual = float(residual)
        if residual < 0:
            raise ValueError(f"adaptive schedule: a residual is a norm ratio >= 0, got {residual} at step {step}")
        index = self._computed.index(step)
        if index == 0 or step != self._computed[-1]:
            return  # nothing before it to measure a gap from, or a stale report about an older step
        horizon = step - self._computed[index - 1]
        if not math.isfinite(residual):
            factor = self.min_factor
        elif residual == 0:
            factor = self.max_factor
        else:
            factor = self.safety * (self.budget / residual) ** (1.0 / (self.order + 1))
            factor = min(self.max_factor, max(self.min_factor, factor))
        self._gap = min(float(self.max_gap), max(float(self.min_gap), horizon * factor))

    def _mark_computed(self, step: int) -> None:
        if step not in self._computed:
            self._computed.append(step)
            self._computed.sort()
