"""FoCa (forecast then calibrate): a linear recursion over every step, unrolled into weights over computed outputs.

Why this formulation: the official FoCa code is unreleased and the paper's forecast/calibrate equations could not
be read (methods.md section 3), so this is our own formulation of its stated idea (treat the feature sequence as
an ODE; forecast with a multistep predictor, then calibrate with a trapezoid/Heun corrector). It generalises the
only public reconstruction, cache-dit's calibrator (methods.md 3.3), to non-uniform steps: cache-dit assumes
h = 1 and adds the anchor difference (A - A_prev) to the step difference (F_k - F_{k-1}) although the first
spans a whole refresh interval and the second one step. Here both are slopes on the time axis t, so the
recursion is exact on outputs that are linear in t whatever the spacing (see "Exact on"). With adjacent anchors
on the uniform step axis it is cache-dit's rule.

Formula:   walk every step s from the first computed step to the target, on the time axis t (step index by
           default, sigma as an option). Keep the current value F_k (at t_k = t_s), the previous value F_{k-1}
           (at t_{k-1} = t_{s-1}), each computed or forecast, and the two most recent computed anchors
           A (at t_A) and A_prev (at t_Aprev).
           - computed step: its true output Y; F_{k-1} <- F_k, F_k <- Y, A_prev <- A, A <- Y.
           - forecast step, h = t_{s+1} - t_k:
               forecast   d_k = (F_k - F_{k-1}) / (t_k - t_{k-1})          (BDF2-style linear extrapolation)
               calibrate  d_A = (A - A_prev) / (t_A - t_Aprev)             (slope between the last two anchors)
                          F_{k+1} = F_k + h (d_k + d_A) / 2                 (trapezoid/Heun average of slopes)
             then F_{k-1} <- F_k, F_k <- F_{k+1}.
             With no previous value (right after the first computed step) it reuses F_k; with no second anchor it
             uses the recent slope only: F_{k+1} = F_k + h d_k.
           The history before a computed step includes forecasts: right after an anchor, F_{k-1} is the forecast
           value of the previous step when that step was forecast.
Exact on:  sequences F(t) = a + b t linear in the chosen time axis, for any grid spacing and any placement of
           the later computed steps, provided the first two steps of the history are both computed (a warm-up of
           two or more steps, the nodes' default): both slopes then equal b and every
           forecast is exact by induction. When the first computed step is followed by a forecast, that forecast
           reuses the value (exact only on constants), and being F_{k-1} when the next anchor arrives, its error
           persists. Not exact on quadratics, and on the step axis not exact on sequences linear in sigma over a
           non-uniform grid.
Unrolling: every value is a float64 weight vector over the computed outputs (a computed step is a unit vector),
           so the recursion runs on K-vectors and the engine takes one weighted sum. O(S K) work per target.
State:     none here; history_limit is None because a forecast reaches every computed output through the
           forecasts it feeds back: the engine keeps all K computed outputs per stream (K latent-sized tensors).
Neighbours: TaylorSeer order 1 extrapolates the last two computed steps only; FoCa also feeds its own forecasts
           back (like the L2P rollout) and calibrates the recent slope with the anchor slope.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..engine.linear_predictor import LinearPredictor
from ..engine.grid import StepGrid, TimeAxis


@dataclass(frozen=True)
class FoCa(LinearPredictor):
    name: ClassVar[str] = "foca"
    axis: TimeAxis = TimeAxis.STEP

    def __post_init__(self) -> None:
        if not isinstance(self.axis, TimeAxis):
            raise ValueError(f"FoCa axis must be a TimeAxis, got {self.axis!r}")

    def _weights(self, target: int, computed: tuple[int, ...], grid: StepGrid) -> np.ndarray:
        t = grid.positions(self.axis)
        slot_of = {step: i for i, step in enumerate(computed)}  # computed step -> index in the weight vector
        unit = np.eye(len(computed))

        first = computed[0]
        current = unit[0]  # F_k, a weight vector over computed outputs; the value at step `first`
        previous = None  # F_{k-1}, at the step before `current`, once there is one
        anchor, anchor_step = unit[0], first  # A
        prev_anchor, prev_anchor_step = None, None  # A_prev
        for step in range(first, target):
            nxt = step + 1
            if nxt in slot_of:
                value = unit[slot_of[nxt]]
                prev_anchor, prev_anchor_step = anchor, anchor_step
                anchor, anchor_step = value, nxt
            elif previous is None:
                value = current  # a single value: reuse it
            else:
                h = t[nxt] - t[step]
                slope = (current - previous) / (t[step] - t[step - 1])
                if prev_anchor is not None:
                    anchor_slope = (anchor - prev_anchor) / (t[anchor_step] - t[prev_anchor_step])
                    slope = 0.5 * (slope + anchor_slope)
                value = current + h * slope
            previous, current = current, value
        return current.copy()
