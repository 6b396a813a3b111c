"""PROGRESSIVE placement: Spectrum's growing windows, with exactly K computed steps.

    Spectrum's rule: the first ``warmup`` steps, then with c consecutive skipped steps and the window ws
    (initially N = ``window``): compute iff (c + 1) mod floor(ws) == 0, then ws <- round(ws + alpha, 3).
    The gaps after the warm-up are floor(N + j * alpha), j = 0, 1, ...; alpha is searched for K steps.

State: none. Cost: O(S log(S * 1000)) schedule evaluations of O(S) each (alpha bisected on Spectrum's 0.001 grid).
"""
from __future__ import annotations

import math
from typing import Sequence

from ..errors import ScheduleError
from .budget import check_guards, guard_steps

SPECTRUM_WINDOW = 2  # Spectrum's window_size N: the first gap after the warm-up
_ALPHA_DECIMALS = 3  # Spectrum rounds the window to 3 decimals after every computed step
_ALPHA_UNIT = 10**_ALPHA_DECIMALS


def spectrum_progressive_steps(num_steps: int, warmup: int, window: int, alpha: float) -> tuple[int, ...]:
    """Spectrum's rule, as published: the first ``warmup`` steps, then, with c consecutive skipped steps and the
    window ws (initially ``window``), compute iff (c + 1) mod floor(ws) == 0; after every such step
    ws <- round(ws + alpha, 3). The gaps after the warm-up are floor(window + j * alpha), j = 0, 1, ...
    """
    if window < 1 or alpha < 0:
        raise ValueError(f"need window >= 1 and alpha >= 0, got window {window}, alpha {alpha}")
    steps = list(range(min(warmup, num_steps)))
    skipped, ws = 0, float(window)
    for step in range(warmup, num_steps):
        if (skipped + 1) % math.floor(ws) == 0:
            steps.append(step)
            skipped, ws = 0, round(ws + alpha, _ALPHA_DECIMALS)
        else:
            skipped += 1
    return tuple(steps)


def progressive_schedule(
    num_steps: int, k: int, warmup: int = 1, compute_last: bool = False, window: int = SPECTRUM_WINDOW
) -> tuple[int, ...]:
    """Spectrum's progressive windows with exactly K computed steps (guards included).

    The count of computed steps never increases with alpha (every gap floor(window + j * alpha) grows with it),
    so alpha is bisected over Spectrum's own 0.001 grid to the value giving K. When K exceeds what window 2
    reaches at alpha 0 (every other step), window 1 is used instead (alpha 0 there computes every step). With
    window 2 every K from warm-up + 1 up was reached exactly for S <= 119, warm-up <= 6. Window 1 (speedup below
    about 2) jumps over some K (several gaps grow at one alpha); then the schedule with the smallest count above
    K is thinned by ``_drop_to_count``.
    """
    check_guards(num_steps, k, warmup, compute_last)
    guards = guard_steps(num_steps, warmup, compute_last)
    if k == len(guards):
        return guards
    if k == num_steps:
        return tuple(range(num_steps))

    def schedule(win: int, milli_alpha: int) -> tuple[int, ...]:
        base = spectrum_progressive_steps(num_steps, warmup, win, milli_alpha / _ALPHA_UNIT)
        return tuple(sorted(set(base) | set(guards)))

    win = window if len(schedule(window, 0)) >= k else 1
    lo, hi = 0, num_steps * _ALPHA_UNIT  # count(lo) >= k; at hi every later gap exceeds the run
    if len(schedule(win, lo)) == k:
        return schedule(win, lo)
    if len(schedule(win, hi)) > k:
        raise ScheduleError(f"progressive placement cannot compute as few as {k} of {num_steps} steps with warm-up"
                         f" {warmup}: lower the warm-up or use the even placement")
    while hi - lo > 1:  # invariant: count(lo) > k >= count(hi)
        mid = (lo + hi) // 2
        count = len(schedule(win, mid))
        if count == k:
            return schedule(win, mid)
        lo, hi = (mid, hi) if count > k else (lo, mid)
    if len(schedule(win, hi)) == k:
        return schedule(win, hi)
    return _drop_to_count(schedule(win, lo), k, guards, num_steps)


def _drop_to_count(steps: Sequence[int], k: int, guards: Sequence[int], num_steps: int) -> tuple[int, ...]:
    """Remove non-guard steps until K remain, each time the one whose removal opens the smallest gap (the later
    one on ties, so gaps keep growing towards the end as in Spectrum's rule)."""
    kept = sorted(steps)
    while len(kept) > k:
        def merged_gap(i: int) -> tuple[int, int]:
            nxt = kept[i + 1] if i + 1 < len(kept) else num_steps
            return nxt - kept[i - 1], -i

        removable = [i for i in range(1, len(kept)) if kept[i] not in guards]
        del kept[min(removable, key=merged_gap)]
    return tuple(kept)
