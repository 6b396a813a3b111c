"""Recording calibration statistics during sampling runs.

``TrajectoryRecorder`` is fed each step's outputs of one sampling run and adds the new step's inner products
against the run's earlier steps as it goes, per batch row (``gram.cross_gram_rows``): each row is one trajectory.
It keeps the run's outputs (R * S latent-sized tensors, in the model's dtype, optionally in CPU memory) and one
[R*S, R*S] float64 Gram per row until ``finish()`` folds the run into a ``GramStats`` (their sum, and the rows'
Grams in its trajectory sample) and frees them; a run that never finishes (cancelled, failed) leaves no trace in
any statistics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from ..engine.grid import StepGrid
from .gram import GramStats, _check_roles
from .inner_products import DEFAULT_CHUNK_ELEMENTS, cross_gram_rows
from .trajectory_grams import TrajectoryGrams

# ---------------------------------------------------------------------------------------------- recording
def check_step_outputs(step: int, outputs: Mapping[str, torch.Tensor], roles: tuple[str, ...],
                       num_steps: int) -> tuple:
    """Validate one step's outputs for every role; returns their common (shape, dtype, device)."""
    if not 0 <= step < num_steps:
        raise ValueError(f"step {step} is outside the {num_steps}-step calibration grid")
    if set(outputs) != set(roles):
        raise ValueError(f"step {step}: expected outputs for roles {roles}, got {tuple(outputs)}")
    first = outputs[roles[0]]
    layout = (tuple(first.shape), first.dtype, first.device)
    for role in roles:
        out = outputs[role]
        found = (tuple(out.shape), out.dtype, out.device)
        if found != layout:
            raise ValueError(f"step {step}: role {role!r} output is {found}, role {roles[0]!r} is "
                             f"{layout}; every role needs the same shape, dtype and device")
    if first.ndim < 1 or first.shape[0] < 1:
        raise ValueError(f"step {step}: outputs must be [N, ...] with N >= 1 batch rows, got {layout[0]}")
    return layout


@dataclass
class _RunState:
    buffer: torch.Tensor  # [S*R, N, D] in the outputs' dtype, row s*R + r = role r at step s (step-major)
    layout: tuple  # (shape, dtype, device) of every role's output
    gram: np.ndarray  # float64 [N, R*S, R*S]: one Gram per batch row (G's role-major index)
    recorded: list[int] = field(default_factory=list)


class TrajectoryRecorder:
    """Accumulates one sampling run's trajectory statistics, step by step.

    Args:
        grid: the run's sigma grid (S+1 sigmas).
        roles: the stream roles every ``record`` call provides.
        offload: keep the run's outputs in CPU memory and form dot products there (saves device memory).
        chunk_elements, compute_dtype: see ``cross_gram``; float32 blocks are accumulated in float64.

    Memory: all R*S outputs of the run (latent-sized, in the outputs' dtype) and N float64 [R*S, R*S] Grams until
    ``finish`` or ``abandon``.
    One recorder per run: after ``finish`` or ``abandon`` it refuses further use.
    """

    def __init__(self, grid: StepGrid, roles: Sequence[str] = ("cond",), offload: bool = False,
                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS, compute_dtype: torch.dtype = torch.float32) -> None:
        self.grid = grid
        self.roles = _check_roles(roles)
        self.offload = offload
        self.chunk_elements = int(chunk_elements)
        if self.chunk_elements < 1:
            raise ValueError(f"chunk_elements must be >= 1, got {chunk_elements}")
        self.compute_dtype = compute_dtype
        self._state: _RunState | None = None
        self._closed = False

    @property
    def recorded_steps(self) -> tuple[int, ...]:
        return tuple(self._state.recorded) if self._state else ()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this TrajectoryRecorder already finished or was abandoned; use one per run")

    def record(self, step: int, outputs: Mapping[str, torch.Tensor]) -> None:
        """Add step ``step`` (0..S-1, increasing): outputs[role] = that role's output [N, ...] for the run's N
        samples (row n of every role is the same sample)."""
        self._check_open()
        num_steps = self.grid.num_steps
        layout = check_step_outputs(step, outputs, self.roles, num_steps)
        state = self._state
        if state is None:
            state = self._state = self._new_run(layout)
        elif state.layout != layout:
            raise ValueError(f"step {step}: output layout changed within one run, from {state.layout} to {layout}")
        if state.recorded and step <= state.recorded[-1]:
            raise ValueError(f"step {step} recorded after step {state.recorded[-1]}: steps of a run must increase "
                             f"and be recorded once each")
        num_roles = len(self.roles)
        rows = slice(step * num_roles, (step + 1) * num_roles)
        for r, role in enumerate(self.roles):
            state.buffer[rows.start + r].copy_(outputs[role].detach().reshape(state.buffer.shape[1:]),
                                               non_blocking=False)
        # this step's rows against every row recorded so far (unrecorded steps are zero rows), itself included,
        # per batch row: block[n, r, q*R + p] pairs (role r, step) with (role p, step q) in sample n
        block = cross_gram_rows(state.buffer[rows], state.buffer[:rows.stop], self.chunk_elements,
                                self.compute_dtype)
        own = [r * num_steps + step for r in range(num_roles)]  # scatter to the role-major index of G
        for q in range(step + 1):
            for p in range(num_roles):
                col = p * num_steps + q
                values = block[:, :, q * num_roles + p]  # [N, R]
                state.gram[:, own, col] = values
                state.gram[:, col, own] = values
        state.recorded.append(step)

    def _new_run(self, layout: tuple) -> _RunState:
        shape, dtype, device = layout
        if not (dtype.is_floating_point):
            raise ValueError(f"outputs must be floating point, got {dtype}")
        rows = int(shape[0])
        per_row = int(np.prod(shape[1:], dtype=np.int64))
        where = torch.device("cpu") if self.offload else device
        size = len(self.roles) * self.grid.num_steps
        buffer = torch.zeros((size, rows, per_row), dtype=dtype, device=where)  # zero rows: steps not yet recorded
        return _RunState(buffer=buffer, layout=layout, gram=np.zeros((rows, size, size)))

    def finish(self) -> GramStats:
        """The run's statistics; frees the outputs. Refuses a run in which any step was not recorded."""
        self._check_open()
        state = self._state
        if state is None:
            raise ValueError("nothing was recorded in this run: calibration needs every step's outputs")
        missing = sorted(set(range(self.grid.num_steps)) - set(state.recorded))
        if missing:
            raise ValueError(
                f"the run skipped steps {missing} of {self.grid.num_steps}: calibration needs the output of every "
                f"step (a step computed off the grid or not at all cannot be recorded). Discarding this run")
        shape = state.layout[0]
        samples = int(shape[0])
        elements = int(np.prod(shape))
        self.abandon()
        return GramStats(state.gram.sum(axis=0), samples, elements, self.grid, self.roles,
                         TrajectoryGrams.of(state.gram))

    def abandon(self) -> None:
        """Drop this run (cancelled or failed): frees its outputs and adds nothing anywhere."""
        self._state = None
        self._closed = True
