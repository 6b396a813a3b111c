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

    Basis k is the cardinal cubic B-spline on knots t_k .. t_k + 4h, t_k = -R + (k - 3) h, h = 2R / G. Only 4
    splines are non-zero at any point, so they are evaluated locally: with u = (x - t_0) / h clamped to
    [0, G + 6], interval i = floor(u) and t = u - i in [0, 1], splines k = i-3 .. i take the cardinal cubic's four
    pieces (1-t)^3/6, (3t^3 - 6t^2 + 4)/6, (-3t^3 + 3t^2 + 3t + 1)/6, t^3/6, and are scattered into place (indices
    outside 0..G+2 fall into padding that is cut off). Outside the spline support every basis is exactly 0. The
    same function as evaluating all G + 3 splines everywhere, at 2-3x less work (forward and backward).
    """
    nb = shape.num_basis
    h = 2.0 * shape.grid_range / shape.grid_size
    u = ((x + shape.grid_range) / h + SPLINE_ORDER).clamp(0.0, float(nb + SPLINE_ORDER))
    i = u.detach().floor().clamp(max=nb + SPLINE_ORDER - 1)  # the last interval is closed on the right
    t = u - i
    t2 = t * t
    t3 = t2 * t
    s = 1.0 - t
    pieces = torch.stack([s * s * s, 3.0 * t3 - 6.0 * t2 + 4.0, -3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0, t3],
                         dim=-1) / 6.0  # splines k = i-3 .. i
    index = i.to(torch.int64).unsqueeze(-1) + torch.arange(SPLINE_ORDER + 1, device=x.device)  # k + 3
    padded = torch.zeros(*x.shape, nb + 2 * SPLINE_ORDER, dtype=x.dtype, device=x.device)
    return padded.scatter_(-1, index, pieces)[..., SPLINE_ORDER:nb + SPLINE_ORDER]


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
