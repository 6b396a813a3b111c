"""Joint L2P under CFG: each stream forecast from BOTH streams' computed outputs.

Formula:   F_hat[r, s] = sum_{r'} sum_{j in C} w[r', j] F[r', j]   (r, r' in {cond, uncond}; C = computed steps)
           with w the ridge least-squares solution under the joint calibration Gram over (role, step), so the
           cond forecast may use the uncond history (guidance makes the two streams strongly correlated).
State:     per stream the computed outputs, like ``ForecastEngine``; a forecast reads the latest stream of every
           role, so memory is the same as per-stream L2P, and a forecast is one weighted sum over 2K tensors.
Neighbours: ``L2PDirect`` fits each stream on its own history only; this is its cross-stream generalisation and
           equals it when the cross terms are zero. Needs a file calibrated with CFG (roles cond and uncond).
"""
from __future__ import annotations

from typing import Hashable

import numpy as np
import torch

from .base import ForecastError
from .engine import HistoryEngine
from .fit import ridge_solve
from .grid import StepGrid


class JointPredictorInfo:
    """What RunState and reports read from ``engine.predictor``."""

    name = "l2p_joint"
    history_limit = None


class JointL2PEngine(HistoryEngine):
    """Streams keyed (role, uuid); a forecast for role r combines the latest stream of every role.

    Args:
        gram: float64 [R*S, R*S], the joint calibration Gram (index r*S + s).
        roles: the roles in the Gram's block order, e.g. ("cond", "uncond").
        ridge: relative ridge (``fit.ridge_solve``).
    """

    def __init__(self, gram: np.ndarray, roles: tuple[str, ...], ridge: float, grid: StepGrid,
                 offload: bool = False) -> None:
        size = len(roles) * grid.num_steps
        if gram.shape != (size, size):
            raise ValueError(f"joint Gram must be [{size}, {size}] for roles {roles} on {grid.num_steps} steps,"
                             f" got {list(gram.shape)}")
        self.gram, self.roles, self.ridge = gram, tuple(roles), float(ridge)
        self.predictor = JointPredictorInfo()
        super().__init__(grid, offload, None)

    def reset(self) -> None:
        super().reset()
        self._latest: dict[str, Hashable] = {}  # role -> key of its most recently observed stream
        self._coef_cache: dict[tuple, np.ndarray] = {}

    def observe(self, key: Hashable, step: int, output: torch.Tensor) -> None:
        super().observe(key, step, output)
        self._latest[key[0]] = key

    def forecast(self, key: Hashable, target: int) -> torch.Tensor:
        role = key[0]
        if role not in self.roles:
            raise ForecastError(f"joint L2P: stream role {role!r} is not in the calibration's roles {self.roles}")
        stream = self.streams.get(key)
        if stream is None or not stream.steps:
            raise ForecastError(f"stream {key!r}: cannot forecast step {target} before any step was computed")
        sources, tensors = [], []
        S = self.grid.num_steps
        for r_index, r in enumerate(self.roles):
            other = self.streams.get(key if r == role else self._latest.get(r))
            if other is None or other.layout[2] != stream.layout[2]:
                continue  # that role is absent (or shaped differently): fit on what is there
            for s, out in zip(other.steps, other.outputs):
                sources.append(r_index * S + s)
                tensors.append(out)
        target_index = self.roles.index(role) * S + target
        cache_key = (target_index, tuple(sources))
        coef = self._coef_cache.get(cache_key)
        if coef is None:
            coef = ridge_solve(self.gram, target_index, sources, self.ridge)
            self._coef_cache[cache_key] = coef
        device, dtype, shape = stream.layout
        acc = torch.zeros(shape, dtype=torch.float32, device=device)
        for c, out in zip(coef.tolist(), tensors):
            acc.add_(out.to(device, non_blocking=True), alpha=c)
        return acc.to(dtype)
