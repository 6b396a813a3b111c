"""What happened in one sampling run: an artifact tests and users can read, and one log line.

Per stream (one conditioning chunk, e.g. the positive or the negative prompt): steps computed and forecast, the
relative forecast residuals seen at computed steps (what the forecast would have missed by), and every step that
was computed against the schedule, with the reason.
"""
from __future__ import annotations

import collections
import enum
import logging
from dataclasses import dataclass, field

LOG_PREFIX = "[L2P]"
logger = logging.getLogger("comfyui_l2p")


class ForcedReason(enum.Enum):
    """Why a step the schedule would forecast was computed for real (or why a call bypassed the schedule)."""

    WARMUP = "warm-up guard"
    LAST_STEP = "last-step guard"
    OFF_GRID = "sigma not on the run's step grid (multi-evaluation or modified-sigma sampler)"
    REPEAT = "second evaluation of a step (multi-evaluation sampler)"
    NO_HISTORY = "stream without history (a conditioning that was not computed before)"
    STALE_HISTORY = "stream absent at the latest computed step (the conditioning changed during the run)"
    ADAPTIVE = "residual budget of the adaptive schedule"
    SAFETY_NET = "safety net: the forecast residual exceeded the calibration's margin"
    NON_FINITE_OUTPUT = "the model's output held NaN/inf at an earlier step: forecasting stopped for this run"
    NON_FINITE_FORECAST = "the forecast held NaN/inf values (overflow in the output's dtype): computed instead"


@dataclass
class StreamReport:
    name: str
    computed: list[int] = field(default_factory=list)
    forecast: list[int] = field(default_factory=list)
    residuals: dict[int, float] = field(default_factory=dict)  # step -> ||F_hat - F|| / ||F|| at computed steps


NOT_REACHED = (
    "the sampler finished without calling the diffusion model through L2P's hook: every step ran at full cost and"
    " nothing was forecast. Another node runs this model around ComfyUI's APPLY_MODEL / DIFFUSION_MODEL wrappers;"
    " see 'Where L2P hooks' in the README."
)


class LearningAction(enum.Enum):
    """What a run of L2P Cache's learning mode did."""

    RECORD = "learning run: every step computed and recorded"
    KEEP_LEARNING = "keep-learning run: every step computed and recorded"
    FORECAST = "forecast from the learned file"
    FORECAST_FEW = "forecast from fewer trajectories than asked (learning stopped)"
    UNLEARNED = "every step computed, nothing recorded (learning stopped before anything was learned)"

    @property
    def records(self) -> bool:
        return self in (LearningAction.RECORD, LearningAction.KEEP_LEARNING)


@dataclass
class LearningStatus:
    """What L2P Cache's learning mode did in one run, and where the setup's learned file stands after it."""

    file: str  # the setup's learned file (base name)
    trajectories: int  # trajectories the file holds (after this run when it was saved)
    needed: int  # how many make it forecast
    action: LearningAction  # what this run did
    saved: bool | None = None  # recording runs: True when this run reached the file, False when it was lost


@dataclass
class RunReport:
    """Filled in during one run by the run state; finished by the OUTER_SAMPLE wrapper."""

    feature: str  # "L2P Cache", "Forecast Cache", "L2P Calibrate"
    predictor: str
    num_steps: int
    planned_computed: tuple[int, ...] | None = None
    streams: dict[str, StreamReport] = field(default_factory=dict)
    forced: list[tuple[int | None, float, str]] = field(default_factory=list)  # (step, sigma, reason value)
    transformer_calls: int = 0  # real transformer passes (calls of the wrapped model)
    forecast_calls: int = 0  # calls answered by a forecast
    status: str = "running"  # "finished" or "failed: <error>"
    notes: list[str] = field(default_factory=list)
    hook: str = ""  # which wrapper served the run, and why (hook_points.select_hook)
    learning: LearningStatus | None = None  # L2P Cache's learning mode only
    recorded: int | None = None  # trajectories in the calibration file this run was added to, after it
    recording_lost: str | None = None  # why this run's recording did not reach its calibration file
    quality: tuple[tuple[float, float], ...] = ()  # (speedup, expected dB) of the file this run extended

    def stream(self, name: str) -> StreamReport:
        return self.streams.setdefault(name, StreamReport(name))

    @property
    def reached_hook(self) -> bool:
        """Whether any call of the diffusion model reached L2P's hook (computed or forecast)."""
        return self.transformer_calls + self.forecast_calls > 0

    def check_hook_reached(self) -> None:
        """At the end of a finished run: say so when the model never reached the hook (never silently ignored)."""
        if not self.reached_hook:
            self.notes.append(NOT_REACHED)

    def force(self, step: int | None, sigma: float, reason: ForcedReason) -> None:
        self.forced.append((step, sigma, reason.value))

    @property
    def computed_steps(self) -> list[int]:
        """Steps with at least one computed stream, ascending."""
        return sorted({s for r in self.streams.values() for s in r.computed})

    @property
    def worst_residual(self) -> tuple[float, int, str] | None:
        """(residual, step, stream) of the largest forecast residual seen at a computed step, or None."""
        seen = [(v, step, r.name) for r in self.streams.values() for step, v in r.residuals.items()]
        return max(seen) if seen else None

    @property
    def safety_net_passes(self) -> int:
        """Steps the safety net computed beyond the plan (each one real pass per stream chunk)."""
        return sum(1 for _, _, reason in self.forced if reason == ForcedReason.SAFETY_NET.value)

    @property
    def achieved_speedup(self) -> float:
        """Model calls the sampler made per real transformer pass."""
        total = self.transformer_calls + self.forecast_calls
        return total / self.transformer_calls if self.transformer_calls else float("inf") if total else 1.0

    def summary(self) -> str:
        lines = [
            f"{LOG_PREFIX} {self.feature} ({self.predictor}) {self.status}: {self.transformer_calls} real passes,"
            f" {self.forecast_calls} forecast calls, {self.achieved_speedup:.2f}x over {self.num_steps} steps"
            + (f"; hook {self.hook}" if self.hook else "")
        ]
        for r in self.streams.values():
            res = [v for v in r.residuals.values()]
            worst = f", worst residual {max(res):.3f}" if res else ""
            lines.append(f"{LOG_PREFIX}   stream {r.name}: computed {len(r.computed)} {r.computed},"
                         f" forecast {len(r.forecast)}{worst}")
        reasons = collections.Counter(reason for _, _, reason in self.forced)
        for reason, n in reasons.items():
            lines.append(f"{LOG_PREFIX}   forced {n}x: {reason}")
        lines.extend(f"{LOG_PREFIX}   {n}" for n in self.notes)
        return "\n".join(lines)


# The most recent reports, newest last, for code that has no handle on the model (e.g. tests driving ComfyUI).
RECENT_REPORTS: collections.deque[RunReport] = collections.deque(maxlen=64)


def publish(report: RunReport) -> None:
    RECENT_REPORTS.append(report)
    (logger.info if report.reached_hook or report.status != "finished" else logger.warning)(report.summary())
