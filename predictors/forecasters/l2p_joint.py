"""Joint L2P under CFG: each stream forecast from BOTH streams' computed outputs.

Formula:   F_hat[r, s] = sum_{r'} sum_{j in C} w[r', j] F[r', j]   (r, r' in {cond, uncond}; C = computed steps)
           with w the ridge least-squares solution under the joint calibration Gram over (role, step), so the
           cond forecast may use the uncond history (guidance makes the two streams strongly correlated).
State:     per stream the computed outputs, like ``ForecastEngine``; a forecast reads the latest stream of every
           role, so memory is the same as per-stream L2P, and a forecast is one weighted sum over 2K tensors.
Neighbours: ``L2PDirect`` fits each stream on its own history only; this is its cross-stream generalisation and
           equals it when the cross terms are zero. Needs a file calibrated with CFG (roles cond and uncond).
           ``CrossStreamEngine`` (histories, sources, the weighted sum) is shared with ``l2p_difference.py``,
           which forecasts the guidance difference c - u and u instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

import numpy as np
import torch

from ..engine.linear_predictor import ForecastError
from ..engine.history import HistoryEngine
from ..calibration.fit import level_preserving_solve, ridge_solve
from ..engine.grid import StepGrid


@dataclass(frozen=True)
class CrossStreamInfo:
    """What RunState and reports read from ``engine.predictor``: a name, and no history limit."""

    name: str
    history_limit: None = None


class CrossStreamEngine(HistoryEngine):
    """Streams keyed (role, uuid); a forecast for role r is a weighted sum over the latest stream of every role.

    Subclasses give the weights (``_coefficients``); this class keeps the histories, gathers the sources and takes
    the sum (fp32 on the stream's device, like ``ForecastEngine``).
    """

    name = "cross-stream"

    def __init__(self, roles: tuple[str, ...], grid: StepGrid, offload: bool = False) -> None:
        self.roles = tuple(roles)
        self.predictor = CrossStreamInfo(self.name)
        super().__init__(grid, offload, None)

    def reset(self) -> None:
        super().reset()
        self._latest: dict[str, Hashable] = {}  # role -> key of its most recently observed stream
        self._coef_cache: dict[tuple, tuple[np.ndarray, ...]] = {}

    def observe(self, key: Hashable, step: int, output: torch.Tensor) -> None:
        super().observe(key, step, output)
        self._latest[key[0]] = key

    def _coefficients(self, role: int, target: int, steps: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
        """float64 weights per role (aligned with ``steps[r]``, the computed steps of role r's latest stream;
        empty for an absent role) for forecasting role index ``role`` at step ``target``."""
        raise NotImplementedError

    def forecast(self, key: Hashable, target: int) -> torch.Tensor:
        role = key[0]
        if role not in self.roles:
            raise ForecastError(f"{self.predictor.name}: stream role {role!r} is not in the calibration's roles"
                                f" {self.roles}")
        stream = self.streams.get(key)
        if stream is None or not stream.steps:
            raise ForecastError(f"stream {key!r}: cannot forecast step {target} before any step was computed")
        histories = []
        for r in self.roles:
            other = self.streams.get(key if r == role else self._latest.get(r))
            if other is None or other.layout[2] != stream.layout[2]:
                other = None  # that role is absent (or shaped differently): fit on what is there
            histories.append(other)
        steps = tuple(tuple(h.steps) if h is not None else () for h in histories)
        cache_key = (self.roles.index(role), target, steps)
        coef = self._coef_cache.get(cache_key)
        if coef is None:
            coef = self._coefficients(self.roles.index(role), target, steps)
            self._coef_cache[cache_key] = coef
        device, dtype, shape = stream.layout
        acc = torch.zeros(shape, dtype=torch.float32, device=device)
        for history, weights in zip(histories, coef):
            if history is None:
                continue
            for c, out in zip(weights.tolist(), history.outputs):
                if c != 0.0:
                    acc.add_(out.to(device, non_blocking=True), alpha=c)
        return acc.to(dtype)


class JointL2PEngine(CrossStreamEngine):
    """Each role forecast from every role's computed outputs, weights fitted on the joint Gram.

    Args:
        gram: float64 [R*S, R*S], the joint calibration Gram (index r*S + s).
        roles: the roles in the Gram's block order, e.g. ("cond", "uncond").
        ridge: relative ridge (``fit.ridge_solve``).
    """

    name = "l2p_joint"

    def __init__(self, gram: np.ndarray, roles: tuple[str, ...], ridge: float, grid: StepGrid,
                 offload: bool = False, preserve_levels: bool = False) -> None:
        size = len(roles) * grid.num_steps
        if gram.shape != (size, size):
            raise ValueError(f"joint Gram must be [{size}, {size}] for roles {roles} on {grid.num_steps} steps,"
                             f" got {list(gram.shape)}")
        self.gram, self.ridge, self.preserve_levels = gram, float(ridge), bool(preserve_levels)
        super().__init__(roles, grid, offload)

    def _coefficients(self, role: int, target: int, steps: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
        S = self.grid.num_steps
        sources = [r * S + s for r, role_steps in enumerate(steps) for s in role_steps]
        if self.preserve_levels:  # the own stream's weights sum to 1, every other stream's to 0
            present = [r for r, role_steps in enumerate(steps) if role_steps]
            groups = [present.index(r) for r, role_steps in enumerate(steps) for _ in role_steps]
            weights = level_preserving_solve(self.gram, role * S + target, sources, self.ridge, groups,
                                             [1.0 if r == role else 0.0 for r in present])
        else:
            weights = ridge_solve(self.gram, role * S + target, sources, self.ridge)
        split = np.cumsum([len(role_steps) for role_steps in steps])[:-1]
        return tuple(np.split(weights, split))
