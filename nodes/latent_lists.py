"""List inputs and outputs of multi-latent models (LTX-2's [video, audio]; ComfyUI unpacks the sampler's packed
latent into a list before the diffusion model and packs the list it returns, #10456).

The run state keeps one history per stream (conditioning chunk and batch row) as one tensor. A list output is
flattened to one tensor of ``B`` rows (each part's elements after the batch dimension, concatenated) and a
forecast is cut back into the parts. Every linear forecaster weighs each element's own history with weights
that depend on the step only, so forecasting the flat tensor equals forecasting each part from its own history;
the residual the report shows is the relative error over all parts together. Nothing here is kept beyond a call
except the layout (shapes and dtypes, no data), which the run state holds for its run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PartsLayout:
    """How a list output was flattened: the container type and each part's shape (without batch) and dtype."""

    container: type  # list or tuple
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]

    def restore(self, flat: torch.Tensor):
        """``flat`` (B, total) cut back into parts of shape (B, *shape), each in its own dtype."""
        rows = flat.shape[0]
        sizes = [int(torch.Size(shape).numel()) for shape in self.shapes]
        parts = flat.split(sizes, dim=1)
        return self.container(
            part.reshape(rows, *shape).to(dtype) for part, shape, dtype in zip(parts, self.shapes, self.dtypes)
        )


def is_parts(value) -> bool:
    """A non-empty list or tuple of tensors that share the batch dimension."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return all(torch.is_tensor(v) and v.ndim > 0 for v in value) and len({int(v.shape[0]) for v in value}) == 1


def batch_rows(x) -> int | None:
    """Batch rows of a model input: a tensor's first dimension, a list's (its parts share it); None for anything
    else, which the run state computes for real and notes."""
    if torch.is_tensor(x) and x.ndim > 0:
        return int(x.shape[0])
    if is_parts(x):
        return int(x[0].shape[0])
    return None


def flatten_parts(out) -> tuple[torch.Tensor | None, PartsLayout | None]:
    """A model output as one tensor of B rows and the layout to restore it (None for a plain tensor); (None, None)
    for an output that is neither a tensor nor a list of tensors, which the run state does not track."""
    if torch.is_tensor(out):
        return out, None
    if not is_parts(out):
        return None, None
    dtype = functools.reduce(torch.promote_types, [part.dtype for part in out])
    flat = torch.cat([part.reshape(part.shape[0], -1).to(dtype) for part in out], dim=1)
    layout = PartsLayout(type(out), tuple(tuple(part.shape[1:]) for part in out), tuple(p.dtype for p in out))
    return flat, layout
