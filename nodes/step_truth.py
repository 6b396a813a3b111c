"""Gathering a step's true outputs for calibration: every stream's chunk of the step once, per role.

A step's streams may arrive in several calls (cond and uncond not batched together) and, under the multi-GPU CFG
split, from several device threads on several devices. The step is handed to the calibration sink, all roles
together on one device, when the next step starts (or the run finishes). Not thread-safe by itself: the run
state calls it under its lock.
"""
from __future__ import annotations

import torch

from .run_pieces import CalibrationSink


class StepTruth:
    """The pending step's outputs, by role, for ``sink``.

    home_device: where a step's outputs are gathered (the model's load device); None: the first role's device.
    """

    def __init__(self, sink: CalibrationSink, home_device: torch.device | None = None) -> None:
        self.sink = sink
        self.home_device = home_device
        self.clear()

    def clear(self) -> None:
        self._step: int | None = None
        self._outputs: dict[str, torch.Tensor] = {}

    def add(self, step: int, role: str, output: torch.Tensor) -> None:
        """The true output of ``role`` at ``step``; steps arrive in increasing order."""
        if self._step is not None and self._step != step:
            self.flush()
        self._step = step
        if role in self._outputs:
            raise ValueError(
                f"L2P Calibrate: step {step} has two '{role}' conditionings at once; calibration records one"
                f" positive and at most one negative conditioning per step. Remove area/combined conditionings"
                f" while calibrating, and let timestep ranges meet between steps rather than overlap on one."
            )
        self._outputs[role] = output.detach()

    def flush(self) -> None:
        """Hand the pending step to the sink."""
        if self._step is not None and self._outputs:
            home = self.home_device or next(iter(self._outputs.values())).device
            self.sink.record(self._step, {role: out.to(home) for role, out in self._outputs.items()})
        self.clear()
