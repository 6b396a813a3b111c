"""Where L2P attaches to a model: which ComfyUI wrapper carries the compute-or-forecast decision of a run.

Two places can skip the transformer and hand ComfyUI a forecast instead of its output:

* ``DIFFUSION_MODEL`` (``run_state.l2p_diffusion_model_wrapper``): the wrapper the transformer's own forward runs
  around ``_forward``, made innermost for the run, so other packs' DIFFUSION_MODEL wrappers see every call the
  sampler makes and L2P only decides whether ``_forward`` runs. Most of ComfyUI's DiTs call it.
* ``APPLY_MODEL`` (``apply_model_hook.py``): every BaseModel runs its APPLY_MODEL wrappers around ``_apply_model``,
  which calls ``self.diffusion_model(xc, t, ..., transformer_options=...)``. For the length of that call our
  wrapper, made innermost, puts a proxy in place of ``diffusion_model``; the proxy computes (calls the module)
  or returns the forecast. It reaches models whose forward never calls DIFFUSION_MODEL (SD3 / 3.5, PixArt,
  Nunchaku's FLUX) and sits outside torch.compile: core TorchCompileModel swaps ``diffusion_model`` for the
  compiled module in an APPLY_MODEL wrapper keyed ``torch.compile``, which stays outside ours whichever node was
  applied first, so the proxy wraps the compiled module: a forecast step never enters the compiled region and a
  computed step runs it unchanged. Other packs' DIFFUSION_MODEL wrappers then run on computed steps only.

The nodes register both where both reach the model; ``select_hook`` keeps one per run (the other leaves the run's
copy of the wrappers): APPLY_MODEL when the transformer never calls DIFFUSION_MODEL or the run is compiled, else
DIFFUSION_MODEL, whose behaviour for other packs' wrappers the runtime tests pin. Where both exist they forecast
the same tensor (tests/test_comfy_hooks.py: bit-identical results on FLUX, Qwen-Image, HunyuanVideo, LTXV and
LTX-2); APPLY_MODEL costs about 0.03 ms more per call (scripts/hook_cost.py, a null transformer on one CPU thread:
0.17 against 0.14 ms of overhead per computed call, 0.15 against 0.13 ms per forecast call). Under torch.compile the
DIFFUSION_MODEL wrapper would run inside the compiled region, where dynamo traces our Python: forced there on a
tiny FLUX, ComfyUI 0.3.64's first 10-step run compiled 31 graphs around 26 graph breaks and the second 3 more, and
on 0.33 (whose node filters guards on transformer_options) dynamo failed building a guard; at APPLY_MODEL the same
runs compile once and run the compiled graph on the 4 computed steps only.
"""
from __future__ import annotations

import enum

from .architectures import (
    UnsupportedModelError, calls_diffusion_model_wrapper, qualified_name, runs_apply_model_wrappers, supported_text,
)

WRAPPER_KEY = "comfyui_l2p"  # key of our wrappers; re-applying a node replaces them instead of stacking
COMPILE_KEY = "torch.compile"  # the key of core torch.compile's APPLY_MODEL wrapper (comfy_api/torch_helpers)


class HookPoint(enum.Enum):
    """Value: ComfyUI's wrapper type name (``comfy.patcher_extension.WrappersMP``)."""

    APPLY_MODEL = "apply_model"
    DIFFUSION_MODEL = "diffusion_model"


def hook_points_for(base_model) -> tuple[HookPoint, ...]:
    """The hooks that reach ``base_model`` (a ModelPatcher's ``.model``); UnsupportedModelError, naming the class
    and what is supported, when none does."""
    diffusion_model = getattr(base_model, "diffusion_model", None)
    points = ()
    if diffusion_model is not None:
        points = tuple(point for point, reaches in (
            (HookPoint.APPLY_MODEL, runs_apply_model_wrappers(type(base_model))),
            (HookPoint.DIFFUSION_MODEL, calls_diffusion_model_wrapper(type(diffusion_model))),
        ) if reaches)
    if points:
        return points
    what = type(base_model).__name__
    if diffusion_model is not None:
        what += f" (diffusion model {qualified_name(type(diffusion_model))})"
    raise UnsupportedModelError(
        f"L2P cannot drive the model {what}: its apply_model does not run ComfyUI's APPLY_MODEL wrappers around a"
        f" diffusion_model call, and no DIFFUSION_MODEL wrapper runs in its transformer, so L2P has no place to skip"
        f" the transformer. L2P drives {supported_text()}. Update ComfyUI or the node pack that loads this model,"
        f" otherwise remove the L2P node."
    )


def select_hook(transformer_options: dict, diffusion_model) -> str:
    """Keep one of our hook wrappers in one run's copy of the merged wrappers and say which, and why.

    APPLY_MODEL when the run's transformer never calls DIFFUSION_MODEL or core torch.compile swaps it in the run,
    else DIFFUSION_MODEL; a model installed with one hook only keeps it. Other packs' wrappers are not touched.
    """
    wrappers = transformer_options.get("wrappers", {})
    ours = [point for point in HookPoint if WRAPPER_KEY in wrappers.get(point.value, {})]
    if len(ours) < 2:
        return f"{ours[0].value} (the only one installed)" if ours else "none installed"
    if not calls_diffusion_model_wrapper(type(diffusion_model)):
        chosen, why = HookPoint.APPLY_MODEL, f"{type(diffusion_model).__name__} never calls DIFFUSION_MODEL"
    elif COMPILE_KEY in wrappers.get(HookPoint.APPLY_MODEL.value, {}):
        chosen, why = HookPoint.APPLY_MODEL, "torch.compile: outside the compiled region"
    else:
        chosen, why = HookPoint.DIFFUSION_MODEL, "the transformer's own wrapper"
    for point in ours:
        if point is not chosen:
            wrappers[point.value].pop(WRAPPER_KEY)
    return f"{chosen.value} ({why})"
