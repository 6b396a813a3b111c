"""Counting a model's calls and real transformer passes while it samples, and recording what its DIFFUSION_MODEL
wrapper receives.

Public API:
    count_passes(model) -> context manager yielding PassCounter   (any model: ModelPatcher, TinyModel, FamilyModel)
    first_blocks(diffusion_model) -> the first block of each block list
    record_diffusion_model_args(model) -> (clone, records)
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator

import torch

from comfy_host import ComfyHostError, bootstrap
from tiny_models import as_tiny, patcher_of


@dataclasses.dataclass(frozen=True)
class DiffusionCall:
    """One call of the model by the sampler (``BaseModel.apply_model``, one per chunk of conds ComfyUI sends)."""

    rows: int  # x.shape[0]: batch rows in this call (cond and uncond chunks concatenated)
    cond_or_uncond: tuple[int, ...]  # transformer_options["cond_or_uncond"]: 0 = cond, 1 = uncond, per chunk
    sigma: float  # transformer_options["sigmas"][0]
    computed: bool  # True when the transformer really ran (its first block was entered)


@dataclasses.dataclass
class PassCounter:
    """Calls of a diffusion model during a ``count_passes`` block.

    ``dm_calls`` counts the sampler's model calls (``apply_model``, one per chunk ComfyUI sends: 1 per step when
    cond+uncond batch, 2 when they cannot), whichever wrapper answers them; ``forwards`` counts the calls where the
    transformer's first block ran (a call answered by a forecast, at any hook, is a ``dm_call`` but not a
    ``forward``); ``forward_rows`` sums the batch rows of those real passes.
    """

    calls: list[DiffusionCall] = dataclasses.field(default_factory=list)
    _block_entered: bool = False

    @property
    def dm_calls(self) -> int:
        return len(self.calls)

    @property
    def forwards(self) -> int:
        return sum(c.computed for c in self.calls)

    @property
    def forward_rows(self) -> int:
        return sum(c.rows for c in self.calls if c.computed)

    def reset(self) -> None:
        self.calls.clear()


def first_blocks(diffusion_model: torch.nn.Module) -> list[torch.nn.Module]:
    """The first block of every block list the transformer owns (double_blocks / single_blocks for FLUX,
    transformer_blocks for Qwen-Image and LTXV, blocks for Wan and PixArt, joint_blocks for SD3, layers and refiners
    for Lumina, input_blocks for a UNet, ...): one of them runs in every real pass, none when a wrapper answers
    without calling the transformer. A stand-in that wraps the transformer as ``model`` (Nunchaku's way) is searched
    through."""
    blocks = [child[0] for child in diffusion_model.children()
              if isinstance(child, torch.nn.ModuleList) and len(child) > 0]
    inner = getattr(diffusion_model, "model", None)
    if not blocks and isinstance(inner, torch.nn.Module):
        return first_blocks(inner)
    if not blocks:
        raise ComfyHostError(f"{type(diffusion_model).__name__} has no block list (nn.ModuleList) to count passes by")
    return blocks



@contextlib.contextmanager
def count_passes(model: Any) -> Iterator[PassCounter]:
    """Count model calls and real transformer passes of ``model`` (a ModelPatcher, a TinyModel or anything holding
    its ``patcher``).

    The counters sit on the shared BaseModel (an instance attribute in front of ``apply_model``) and on the first
    transformer blocks, so clones of the patcher are counted too; both are removed on exit. Calls are counted at
    ``apply_model``, so a call answered by a forecast counts whichever hook (APPLY_MODEL or DIFFUSION_MODEL) answered.
    """
    base = patcher_of(model).model
    counter = PassCounter()
    apply_model = base.apply_model

    def counting_apply_model(x, t, *args, **kwargs):
        options = kwargs.get("transformer_options", args[4] if len(args) > 4 else {})
        sigmas = options.get("sigmas")
        counter.calls.append(DiffusionCall(
            rows=int(x.shape[0]),
            cond_or_uncond=tuple(options.get("cond_or_uncond", ())),
            sigma=float(sigmas[0]) if sigmas is not None else float("nan"),
            computed=False,
        ))
        counter._block_entered = False
        out = apply_model(x, t, *args, **kwargs)
        if counter._block_entered:
            counter.calls[-1] = dataclasses.replace(counter.calls[-1], computed=True)
        return out

    def block_pre_hook(module, args):
        counter._block_entered = True

    # every module of those blocks: a UNet runs its TimestepEmbedSequential's layers one by one, never the block
    handles = [module.register_forward_pre_hook(block_pre_hook)
               for block in first_blocks(base.diffusion_model) for module in block.modules()]
    base.apply_model = counting_apply_model
    try:
        yield counter
    finally:
        del base.apply_model
        for handle in handles:
            handle.remove()


def record_diffusion_model_args(model: Any) -> tuple[Any, list[tuple[tuple, dict]]]:
    """A clone of ``model`` with a DIFFUSION_MODEL wrapper that records (args, kwargs) of every call.

    Returns (clone, records); the wrapper calls its executor, so sampling is unchanged.
    """
    comfy = bootstrap()
    patcher = as_tiny(model).patcher
    records: list[tuple[tuple, dict]] = []

    def wrapper(executor: Callable, *args, **kwargs):
        records.append((args, kwargs))
        return executor(*args, **kwargs)

    clone = patcher.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "comfy_host.record", wrapper)
    return clone, records


@contextlib.contextmanager
def nan_from_call(tiny, first_bad_call: int):
    """The model's output (its final layer's) turns NaN from the ``first_bad_call``-th transformer pass on."""
    calls = []

    def hook(module, args, output):
        calls.append(1)
        return output * float("nan") if len(calls) > first_bad_call else output

    handle = tiny.diffusion_model.final_layer.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()
