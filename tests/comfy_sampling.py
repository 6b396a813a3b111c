"""The sampling driver: a tiny model (or the MODEL a node returned) sampled the way a user's graph samples it.

``sample`` runs ``nodes.common_ksampler`` (the KSampler node's body), ``sample_sigmas`` ``comfy.sample.sample_custom``
(the SamplerCustom path), so CFG batching, cfg-1 uncond dropping, wrappers and ``transformer_options`` are exactly
what a user's graph gets.

Public API:
    make_conditioning(model, *, seed, text_len, guidance=None) -> CONDITIONING list
    sample(model, *, steps, cfg, seed, sampler_name="euler", scheduler="simple", batch=1, ...) -> latent Tensor
    scheduler_sigmas(model, *, steps, scheduler="simple") -> Tensor (steps + 1,)
    sample_sigmas(model, *, sigmas, cfg, seed, add_noise=True, ...) -> latent Tensor
    one_thread() -> context manager: torch on one thread while sampling tiny models
    cancelled_at_call(model, call) -> a clone that a user cancels at its call-th model call
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from comfy_host import bootstrap
from tiny_models import TinyModel, as_tiny, patcher_of


def make_conditioning(model: Any, *, seed: int, text_len: int = 4, guidance: float | None = None) -> list:
    """A CONDITIONING list ``[[context (1, text_len, D), {extras}]]`` like a text encoder node returns.

    FLUX / HunyuanVideo get ``pooled_output`` (1, vec_in_dim) and ``guidance`` (the model default unless given);
    Qwen-Image gets the context only. ComfyUI repeats batch-1 conds to the latent batch.
    """
    tiny = as_tiny(model)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    context = torch.randn((1, text_len, tiny.cond.context_dim), generator=gen)
    extras: dict[str, Any] = {}
    if tiny.cond.pooled_dim is not None:
        extras["pooled_output"] = torch.randn((1, tiny.cond.pooled_dim), generator=gen)
    if tiny.cond.guidance is not None:
        extras["guidance"] = tiny.cond.guidance if guidance is None else guidance
    if tiny.cond.attention_mask:
        extras["attention_mask"] = torch.ones((1, text_len), dtype=torch.long)
    return [[context, extras]]


def _latent(tiny: TinyModel, latent_shape: tuple[int, ...] | None, batch: int, latent: torch.Tensor | None):
    if latent is not None:
        return latent
    shape = latent_shape if latent_shape is not None else tiny.latent_shape(batch)
    if shape[0] != batch:
        raise ValueError(f"latent_shape {shape} has batch {shape[0]}, expected batch={batch}")
    return torch.zeros(shape)


def _conds(tiny: TinyModel, seed: int, positive, negative, text_len: int, negative_text_len: int | None):
    if positive is None:
        positive = make_conditioning(tiny, seed=seed + 1, text_len=text_len)
    if negative is None:
        negative = make_conditioning(tiny, seed=seed + 2, text_len=negative_text_len or text_len)
    return positive, negative


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine the thread pool's spinning
    made a 4-step run up to 50x slower; restore the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sample(
    model: Any,
    *,
    steps: int,
    cfg: float,
    seed: int,
    sampler_name: str = "euler",
    scheduler: str = "simple",
    batch: int = 1,
    latent_shape: tuple[int, ...] | None = None,
    latent: torch.Tensor | None = None,
    positive: list | None = None,
    negative: list | None = None,
    text_len: int = 4,
    negative_text_len: int | None = None,
    denoise: float = 1.0,
) -> torch.Tensor:
    """Run the KSampler node's body (``nodes.common_ksampler``) on ``model`` and return the output latent.

    ``model``: a TinyModel or a ModelPatcher of one (e.g. the patched clone a node returned). ``latent`` is the
    input LATENT samples (needed for denoise < 1 to mean anything; default zeros of ``latent_shape``, else
    ``latent_shape(batch)``). Conds default to seeded random ones from ``make_conditioning`` (positive from
    ``seed + 1``, negative from ``seed + 2``): the negative gets ``negative_text_len`` tokens (default the
    positive's), and a different length stops ComfyUI from batching cond with uncond (two diffusion-model calls
    per step). Returns the latent as the sampler leaves it: 5-D for Qwen-Image / HunyuanVideo, 4-D for FLUX.
    """
    comfy = bootstrap()
    tiny = as_tiny(model)
    positive, negative = _conds(tiny, seed, positive, negative, text_len, negative_text_len)
    samples = _latent(tiny, latent_shape, batch, latent)
    with one_thread():
        (out,) = comfy.nodes.common_ksampler(
            tiny.patcher, seed, steps, cfg, sampler_name, scheduler, positive, negative, {"samples": samples},
            denoise=denoise,
        )
    return out["samples"]


def scheduler_sigmas(model: Any, *, steps: int, scheduler: str = "simple") -> torch.Tensor:
    """The BasicScheduler sigmas, float32 (steps + 1,) ending in 0, for ``model``'s model_sampling."""
    comfy = bootstrap()
    model_sampling = patcher_of(model).get_model_object("model_sampling")
    return comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps).cpu()


def sample_sigmas(
    model: Any,
    *,
    sigmas: torch.Tensor,
    cfg: float,
    seed: int,
    sampler_name: str = "euler",
    add_noise: bool = True,
    batch: int = 1,
    latent_shape: tuple[int, ...] | None = None,
    latent: torch.Tensor | None = None,
    positive: list | None = None,
    negative: list | None = None,
    text_len: int = 4,
    negative_text_len: int | None = None,
) -> torch.Tensor:
    """Custom sampling on an explicit ``sigmas`` schedule (the SamplerCustom node's path).

    ``comfy.samplers.ksampler(sampler_name)`` -> ``comfy.sample.sample_custom``; other arguments as ``sample``.
    For a two-pass graph, sample ``sigmas[:k+1]``, then feed the result as ``latent`` with ``sigmas[k:]`` and
    ``add_noise=False`` (flow models' noise_scaling / inverse_noise_scaling make the hand-over exact).
    """
    comfy = bootstrap()
    tiny = as_tiny(model)
    positive, negative = _conds(tiny, seed, positive, negative, text_len, negative_text_len)
    samples = comfy.sample.fix_empty_latent_channels(tiny.patcher, _latent(tiny, latent_shape, batch, latent))
    if add_noise:
        noise = comfy.sample.prepare_noise(samples, seed)
    else:
        noise = torch.zeros(samples.shape, dtype=samples.dtype)
    sampler = comfy.samplers.ksampler(sampler_name)
    with one_thread():
        return comfy.sample.sample_custom(
            tiny.patcher, noise, cfg, sampler, sigmas, positive, negative, samples, disable_pbar=True, seed=seed,
        )


def cancelled_at_call(model: Any, call: int) -> Any:
    """A clone of ``model`` whose DIFFUSION_MODEL wrapper raises ComfyUI's InterruptProcessingException at its
    ``call``-th call, as a user pressing cancel mid-run. L2P's wrapper runs innermost, so this one sees every call
    the sampler makes (the third of a cfg-1 run is step 2)."""
    comfy = bootstrap()
    calls: list[int] = []

    def cancel(executor, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise comfy.model_management.InterruptProcessingException()
        return executor(*args, **kwargs)

    clone = patcher_of(model).clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test-cancel", cancel)
    return clone
