"""Where L2P attaches to a model: which ComfyUI wrapper carries the compute-or-forecast decision.

Two places can skip the transformer and hand ComfyUI a forecast instead of its output:

* ``APPLY_MODEL`` (the default, ``apply_model_hook.py``): every BaseModel runs its APPLY_MODEL wrappers around
  ``_apply_model``, which calls ``self.diffusion_model(xc, t, ..., transformer_options=...)``. For the length of
  that call our wrapper puts a proxy in place of ``diffusion_model``; the proxy computes (calls the real module) or
  returns the forecast. It serves models whose forward never calls DIFFUSION_MODEL (SD3 / 3.5, PixArt, Nunchaku's
  FLUX), finds ``transformer_options`` as the keyword ``_apply_model`` passes, and sits outside torch.compile: core
  TorchCompileModel swaps ``diffusion_model`` for the compiled module in an APPLY_MODEL wrapper of its own, and
  every run moves our wrapper innermost (``ours_innermost``), so the proxy wraps the compiled module whichever node
  was applied first. A forecast step never enters the compiled region and a computed step runs it unchanged.
* ``DIFFUSION_MODEL`` (``run_state.l2p_diffusion_model_wrapper``): the wrapper the transformer's own forward runs
  around ``_forward``. It is the fallback for a transformer whose BaseModel does not run APPLY_MODEL wrappers.
  Under torch.compile it runs inside the compiled region, where dynamo traces our Python: on ComfyUI 0.3.64 the
  first 10-step run recompiled 36 times and ran the transformer eagerly past the recompile limit, on 0.33 (whose
  node filters guards on transformer_options) dynamo failed while building a guard.

Where both exist they forecast the same tensor, the diffusion model's output: tests/test_comfy_hooks.py finds the
results bit-identical on FLUX, Qwen-Image, HunyuanVideo, LTXV and LTX-2. Per call, scripts/hook_cost.py measured the
APPLY_MODEL hook about 0.05 ms dearer than DIFFUSION_MODEL (a null transformer on a CPU: 0.24 against 0.19 ms of
overhead per computed call, 0.24 against 0.18 ms per forecast call), nothing next to a transformer pass; it is the
default because it reaches every model, never runs inside a compiled region and needs no argument positions.
What other packs see under it: their APPLY_MODEL wrappers run on every step, forecast or not (ours is innermost);
their DIFFUSION_MODEL wrappers and everything inside the transformer run on computed steps only.
"""
from __future__ import annotations

import enum

from .architectures import (
    UnsupportedModelError, calls_diffusion_model_wrapper, runs_apply_model_wrappers, supported_text,
)

WRAPPER_KEY = "comfyui_l2p"  # key of our wrappers; re-applying a node replaces them instead of stacking


class HookPoint(enum.Enum):
    """Value: ComfyUI's wrapper type name (``comfy.patcher_extension.WrappersMP``)."""

    APPLY_MODEL = "apply_model"
    DIFFUSION_MODEL = "diffusion_model"


def hook_point_for(base_model) -> HookPoint:
    """Where to hook ``base_model`` (a ModelPatcher's ``.model``); UnsupportedModelError, naming the class and what
    is supported, when neither wrapper reaches its transformer."""
    diffusion_model = getattr(base_model, "diffusion_model", None)
    if diffusion_model is not None and runs_apply_model_wrappers(type(base_model)):
        return HookPoint.APPLY_MODEL
    if diffusion_model is not None and calls_diffusion_model_wrapper(type(diffusion_model)):
        return HookPoint.DIFFUSION_MODEL
    what = type(base_model).__name__
    if diffusion_model is not None:
        what += f" (diffusion model {type(diffusion_model).__name__})"
    raise UnsupportedModelError(
        f"L2P cannot drive the model {what}: its apply_model does not run ComfyUI's APPLY_MODEL wrappers around a"
        f" diffusion_model call, and no DIFFUSION_MODEL wrapper runs in its transformer, so L2P has no place to skip"
        f" the transformer. L2P drives {supported_text()}. Update ComfyUI or the node pack that loads this model,"
        f" otherwise remove the L2P node."
    )


def ours_innermost(transformer_options: dict) -> None:
    """Move our APPLY_MODEL wrapper last (innermost) in one run's copy of the merged wrappers, so whatever an
    earlier APPLY_MODEL wrapper put in place of ``diffusion_model`` (core torch.compile's compiled module) is what
    our proxy wraps. Only the order of our own entry changes; other packs' wrappers keep theirs."""
    wrappers = transformer_options.get("wrappers", {}).get(HookPoint.APPLY_MODEL.value)
    if wrappers and WRAPPER_KEY in wrappers:
        wrappers[WRAPPER_KEY] = wrappers.pop(WRAPPER_KEY)
