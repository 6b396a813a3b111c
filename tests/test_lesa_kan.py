"""LESA's KAN basis (predictors/forecasters/lesa/kan.py): the local evaluation equals the cubic B-splines' textbook
form everywhere, values and gradients, on and off the knots and outside the grid."""
import pytest
import torch

from comfyui_l2p.predictors.forecasters.lesa.kan import KanShape, cubic_bspline_basis


def truncated_power_basis(x: torch.Tensor, shape: KanShape) -> torch.Tensor:
    """Every spline evaluated everywhere: B(z) = (1/6) sum_i (-1)^i C(4, i) relu(z - i)^3 on z in [0, 4]."""
    h = 2.0 * shape.grid_range / shape.grid_size
    starts = -shape.grid_range + (torch.arange(shape.num_basis, dtype=x.dtype) - 3) * h
    z = ((x.unsqueeze(-1) - starts) / h).clamp(0.0, 4.0)
    return (z.pow(3) - 4 * (z - 1).clamp_min(0).pow(3) + 6 * (z - 2).clamp_min(0).pow(3)
            - 4 * (z - 3).clamp_min(0).pow(3)) / 6.0


@pytest.mark.parametrize("grid_size,grid_range", [(6, 3.0), (1, 1.0), (11, 2.5)])
def test_local_basis_equals_the_textbook_splines_in_value_and_gradient(grid_size, grid_range):
    shape = KanShape((3, 1), grid_size=grid_size, grid_range=grid_range)
    h = 2 * grid_range / grid_size
    knots = -grid_range + h * torch.arange(-3, grid_size + 4, dtype=torch.float64)  # every knot, support ends too
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([knots, knots + 1e-9, knots - 1e-9, torch.randn(2000, generator=gen, dtype=torch.float64) * 2
                   * grid_range, torch.tensor([-1e6, 1e6, 0.0], dtype=torch.float64)])
    x = x.reshape(-1, 1).expand(-1, 3).clone().requires_grad_(True)
    mine, ref = cubic_bspline_basis(x, shape), truncated_power_basis(x, shape)
    torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)
    weights = torch.randn(shape.num_basis, generator=gen, dtype=torch.float64)
    (g_mine,) = torch.autograd.grad((mine * weights).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    torch.testing.assert_close(g_mine, g_ref, rtol=0, atol=1e-9)


def test_basis_is_a_partition_of_unity_inside_and_exactly_zero_far_outside():
    shape = KanShape((1, 1))
    inside = torch.linspace(-3.0, 3.0, 1001).unsqueeze(-1)
    torch.testing.assert_close(cubic_bspline_basis(inside, shape).sum(-1), torch.ones(1001, 1))
    far = torch.tensor([[-4.5], [4.5], [-1e30], [1e30]])  # beyond the last knot of the support (R + 3h = 6)
    assert torch.equal(cubic_bspline_basis(far * torch.tensor([[1.5]]), shape), torch.zeros(4, 1, shape.num_basis))
