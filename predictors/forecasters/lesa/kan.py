"""A small Kolmogorov-Arnold network (KAN) with cubic B-spline edges, as LESA's per-stage expert.

One layer maps x [N, in] to y [N, out] as a sum of learnable univariate functions of each input (the
"efficient-KAN" form):

    y_j = sum_i  w_base[j, i] * silu(x_i)  +  sum_k  c[j, i, k] * B_k(x_i)

B_k are the G + 3 uniform cubic B-splines on the fixed knot grid of G intervals over [-R, R] (extended by 3
knots each side so every point of [-R, R] sees 4 splines). Outside [-R, R] the splines fade to 0 and only the
silu term remains, so extrapolation is linear-ish, never wild. Inputs are standardised by the caller, so R = 3
covers almost all data.

Choices where LESA's paper is silent (its KAN sizes are not public): cubic splines, G = 6, R = 3, a fixed grid
(no data-driven grid update, so the function is exactly reproducible from the stored coefficients), 1-2 layers.
The last layer starts at zero so an untrained network outputs exactly 0 (the caller adds it as a residual).

Parameters are plain tensors in a dict (names ``layer{l}.base`` [out, in] and ``layer{l}.spline`` [out, in, G+3]),
so serialisation is a dict of float32 arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SPLINE_ORDER = 3  # cubic: the 4-piece cardinal B-spline below


@dataclass(frozen=True)
class KanShape:
    """widths: (in, hidden..., out), e.g. (7, 8, 1); grid_size: spline intervals over [-grid_range, grid_range]."""

    widths: tuple[int, ...]
    grid_size: int = 6
    grid_range: float = 3.0

    def __post_init__(self) -> None:
        widths = tuple(int(w) for w in self.widths)
        if len(widths) < 2 or any(w < 1 for w in widths):
            raise ValueError(f"KAN widths must be (in, ..., out) with every width >= 1, got {self.widths}")
        if not (isinstance(self.grid_size, int) and 1 <= self.grid_size <= 64):
            raise ValueError(f"KAN grid_size must be an integer in 1..64, got {self.grid_size!r}")
        if not (float(self.grid_range) > 0):
            raise ValueError(f"KAN grid_range must be > 0, got {self.grid_range!r}")
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "grid_range", float(self.grid_range))

    @property
    def num_basis(self) -> int:
        return self.grid_size + SPLINE_ORDER

    @property
    def num_layers(self) -> int:
        return len(self.widths) - 1

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for layer, (n_in, n_out) in enumerate(zip(self.widths, self.widths[1:])):
            shapes[f"layer{layer}.base"] = (n_out, n_in)
            shapes[f"layer{layer}.spline"] = (n_out, n_in, self.num_basis)
        return shapes


def cubic_bspline_basis(x: torch.Tensor, shape: KanShape) -> torch.Tensor:
    """[..., num_basis]: the uniform cubic B-splines of ``shape``'s grid at x [...].

    Basis k is the cardinal cubic B-spline on knots t_k .. t_k + 4h, t_k = -R + (k - 3) h, h = 2R / G. The
    cardinal spline is written with truncated powers, B(z) = (1/6) sum_i (-1)^i C(4, i) relu(z - i)^3 on z in
    [0, 4]; z is clamped to [0, 4] first (B(0) = B(4) = 0) so far-away points give exact zeros, not round-off.
    """
    h = 2.0 * shape.grid_range / shape.grid_size
    starts = -shape.grid_range + (torch.arange(shape.num_basis, dtype=x.dtype, device=x.device) - SPLINE_ORDER) * h
    z = ((x.unsqueeze(-1) - starts) / h).clamp(0.0, 4.0)  # [..., num_basis]
    out = z.pow(3) - 4.0 * (z - 1).clamp_min(0).pow(3) + 6.0 * (z - 2).clamp_min(0).pow(3) \
        - 4.0 * (z - 3).clamp_min(0).pow(3)  # the relu(z - 4) term is 0 on the clamped range
    return out / 6.0


def init_params(shape: KanShape, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """float32 parameters: hidden layers random (silu weights ~ U(+-1/sqrt(in)), spline coefficients ~ N(0, 0.1)),
    the last layer zero so the network starts as the zero function."""
    params = {}
    for layer, (n_in, n_out) in enumerate(zip(shape.widths, shape.widths[1:])):
        last = layer == shape.num_layers - 1
        if last:
            base = torch.zeros(n_out, n_in)
            spline = torch.zeros(n_out, n_in, shape.num_basis)
        else:
            bound = 1.0 / n_in ** 0.5
            base = (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound
            spline = torch.randn(n_out, n_in, shape.num_basis, generator=generator) * 0.1
        params[f"layer{layer}.base"] = base
        params[f"layer{layer}.spline"] = spline
    return params


def kan_forward(x: torch.Tensor, params: dict[str, torch.Tensor], shape: KanShape) -> torch.Tensor:
    """[N, out] from x [N, in] (float32; params on x's device)."""
    h = x
    for layer in range(shape.num_layers):
        base = params[f"layer{layer}.base"]  # [out, in]
        spline = params[f"layer{layer}.spline"]  # [out, in, nb]
        basis = cubic_bspline_basis(h, shape)  # [N, in, nb]
        flat = basis.reshape(basis.shape[0], -1)  # [N, in * nb]
        h = torch.nn.functional.silu(h) @ base.T + flat @ spline.reshape(spline.shape[0], -1).T  # [N, out]
    return h
