"""The APPLY_MODEL hook: a proxy stands in for ``BaseModel.diffusion_model`` during one ``apply_model`` call.

``l2p_apply_model_wrapper`` (WrappersMP.APPLY_MODEL) finds the run state in the call's transformer_options, puts a
``DiffusionModelProxy`` in place of ``diffusion_model`` and restores the module in ``finally``: ComfyUI's
``_apply_model`` (input scaling, concat channels, multi-latent unpacking, ``calculate_denoised``) runs unchanged
around it, and the proxy hands the diffusion model's call to the run state, which computes it (calls the real
module: ComfyUI's class, a compiled module or a third-party replacement) or returns the forecast. Core
torch.compile swaps the module the same way (comfy_api/torch_helpers/torch_compile.py). Why this is the default
hook: hook_points.py.

Memory: nothing beyond the call; the proxy holds three references and lives for one call.
"""
from __future__ import annotations

import torch

from .run_state import RUN_KEY, run_options


class DiffusionModelProxy(torch.nn.Module):
    """``diffusion_model`` for the length of one apply_model call. Attribute reads it does not define (``dtype``,
    ``patch_size``, ...) go to the real module, so ``_apply_model`` and model code reading the base model's
    diffusion_model see the real one's values. The real module is deliberately not registered as a submodule:
    the base model's module tree and state-dict keys stay those of the real model during the call."""

    def __init__(self, inner: torch.nn.Module, run, apply_options: dict) -> None:
        super().__init__()
        object.__setattr__(self, "_l2p_inner", inner)
        object.__setattr__(self, "_l2p_run", run)
        object.__setattr__(self, "_l2p_apply_options", apply_options)

    def forward(self, *args, **kwargs):
        # ComfyUI's _apply_model passes transformer_options as a keyword (0.33: a shallow copy of apply_model's);
        # a third-party _apply_model that passes none still has apply_model's, which carries the same step data
        to = kwargs.get("transformer_options")
        if not isinstance(to, dict):
            to = self._l2p_apply_options
        return self._l2p_run(self._l2p_inner, args, kwargs, to)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_l2p_inner"), name)


def l2p_apply_model_wrapper(executor, *args, **kwargs):
    """APPLY_MODEL: the proxy in place of ``diffusion_model`` while the rest of the apply_model chain runs."""
    to = run_options(args, kwargs)
    if to is None:  # sampled through a path without our OUTER_SAMPLE wrapper: stay out of the way
        return executor(*args, **kwargs)
    base_model = executor.class_obj
    inner = base_model.diffusion_model
    base_model.diffusion_model = DiffusionModelProxy(inner, to[RUN_KEY], to)
    try:
        return executor(*args, **kwargs)
    finally:
        base_model.diffusion_model = inner
