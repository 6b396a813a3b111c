"""Tests of the harness's tiny models (tests/tiny_models.py), sampling driver (comfy_sampling.py) and pass counter.

Pass counts at a glance (asserted below, euler unless named, S steps, batch B):
    cfg 1                        -> S calls, S*B rows   (ComfyUI drops the uncond)
    cfg > 1, negative same len   -> S calls, 2*S*B rows (cond + uncond batched, chunk order [uncond, cond])
    cfg > 1, negative other len  -> 2*S calls, 2*S*B rows (cannot concatenate: one call per cond)
    heun                         -> 2*S - 1 calls       (its last step, to sigma 0, is a plain Euler step)
"""
from __future__ import annotations

import inspect

import pytest
import torch

import comfy_host
import comfy_sampling
import pass_counter
import tiny_models
import tiny_specs
from comfy_fixtures import comfy, requires_comfyui  # noqa: F401  (fixture used by name)

FAMILIES = {
    "flux": tiny_models.tiny_flux,
    "qwen_image": tiny_models.tiny_qwen_image,
    "hunyuan_video": tiny_models.tiny_hunyuan_video,
}
STEPS = 4
BATCH = 2


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tiny(request, comfy):
    return FAMILIES[request.param](seed=0)


@pytest.fixture(scope="module")
def flux(comfy):
    return tiny_models.tiny_flux(seed=0)


# ------------------------------------------------------------------------------------------ tiny models


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_samples_finite_nonconstant_and_counts_passes(tiny, cfg):
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(tiny, steps=STEPS, cfg=cfg, seed=7, batch=BATCH)

    five_d = tiny.family in (tiny_specs.Family.QWEN_IMAGE, tiny_specs.Family.HUNYUAN_VIDEO)
    assert out.shape == ((BATCH, 16, 1, 8, 8) if five_d else (BATCH, 16, 8, 8))
    assert torch.isfinite(out).all()
    assert out.std() > 0.1
    assert not torch.equal(out[0], out[1])  # batch rows get their own noise

    assert counter.dm_calls == STEPS
    assert counter.forwards == STEPS
    if cfg == 1.0:
        assert counter.forward_rows == STEPS * BATCH
        assert {c.cond_or_uncond for c in counter.calls} == {(0,)}
    else:
        assert counter.forward_rows == 2 * STEPS * BATCH
        assert {c.cond_or_uncond for c in counter.calls} == {(1, 0)}  # uncond chunk first
    assert [c.sigma for c in counter.calls] == sorted((c.sigma for c in counter.calls), reverse=True)


def test_sampling_is_deterministic(tiny):
    a = comfy_sampling.sample(tiny, steps=STEPS, cfg=3.0, seed=11)
    b = comfy_sampling.sample(tiny, steps=STEPS, cfg=3.0, seed=11)
    c = comfy_sampling.sample(tiny, steps=STEPS, cfg=3.0, seed=12)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_qwen_image_takes_a_4d_empty_latent(comfy):
    qwen = tiny_models.tiny_qwen_image(seed=0)
    four_d = comfy_sampling.sample(qwen, steps=2, cfg=1.0, seed=1, latent_shape=(1, 16, 8, 8))
    five_d = comfy_sampling.sample(qwen, steps=2, cfg=1.0, seed=1, latent_shape=(1, 16, 1, 8, 8))
    assert four_d.shape == (1, 16, 1, 8, 8)  # ComfyUI unsqueezes it (Wan21 latent format, comfy/sample.py)
    assert torch.equal(four_d, five_d)


def test_init_weights_sets_every_parameter(tiny):
    # includes the output layers (adaLN modulation, final projection) that real trainings zero-initialise
    for name, param in tiny.diffusion_model.named_parameters():
        param = param.detach()
        assert torch.isfinite(param).all(), name
        if param.ndim >= 2 and param.numel() >= 1024:
            expected = param[0].numel() ** -0.5  # N(0, 1/fan_in)
            assert abs(float(param.std()) / expected - 1) < 0.1, (name, float(param.std()), expected)
        elif bool((param == 0).all()):
            assert name.endswith(".bias") and "norm" in name, f"{name} is all zeros"


def test_tiny_models_depend_on_weight_seed(comfy):
    a = comfy_sampling.sample(tiny_models.tiny_flux(seed=0), steps=2, cfg=1.0, seed=1)
    b = comfy_sampling.sample(tiny_models.tiny_flux(seed=1), steps=2, cfg=1.0, seed=1)
    assert not torch.allclose(a, b)


def test_negative_of_other_length_gives_two_calls_per_step(tiny):
    with pass_counter.count_passes(tiny) as counter:
        out = comfy_sampling.sample(tiny, steps=STEPS, cfg=3.0, seed=5, batch=BATCH, text_len=4, negative_text_len=6)
    assert torch.isfinite(out).all()
    assert counter.dm_calls == 2 * STEPS
    assert counter.forwards == 2 * STEPS
    assert all(c.rows == BATCH for c in counter.calls)
    per_step = [{counter.calls[i].cond_or_uncond, counter.calls[i + 1].cond_or_uncond} for i in range(0, 2 * STEPS, 2)]
    assert per_step == [{(0,), (1,)}] * STEPS
    assert [c.sigma for c in counter.calls[0::2]] == [c.sigma for c in counter.calls[1::2]]


@pytest.mark.parametrize("sampler_name, expected_calls", [("heun", 2 * STEPS - 1), ("dpmpp_2m", STEPS)])
def test_other_samplers(flux, sampler_name, expected_calls):
    with pass_counter.count_passes(flux) as counter:
        out = comfy_sampling.sample(flux, steps=STEPS, cfg=1.0, seed=3, sampler_name=sampler_name)
    assert torch.isfinite(out).all()
    # heun: 2 evaluations per step except the last, which steps to sigma 0 with plain Euler (k-diffusion)
    assert counter.dm_calls == expected_calls


def test_denoise_below_one_samples_the_tail_of_a_longer_schedule(flux):
    start = comfy_sampling.sample(flux, steps=STEPS, cfg=1.0, seed=2)
    with pass_counter.count_passes(flux) as counter:
        partial = comfy_sampling.sample(flux, steps=STEPS, cfg=1.0, seed=3, latent=start, denoise=0.5)
    full = comfy_sampling.sample(flux, steps=STEPS, cfg=1.0, seed=3, latent=start, denoise=1.0)
    assert counter.dm_calls == STEPS
    assert counter.calls[0].sigma < 0.9  # starts part-way down the 2*STEPS schedule
    assert torch.isfinite(partial).all()
    assert not torch.allclose(partial, full)


def test_two_pass_custom_sigmas_matches_one_pass(tiny):
    sigmas = comfy_sampling.scheduler_sigmas(tiny, steps=STEPS)
    assert sigmas.shape == (STEPS + 1,) and sigmas[-1] == 0
    one = comfy_sampling.sample_sigmas(tiny, sigmas=sigmas, cfg=3.0, seed=4)
    with pass_counter.count_passes(tiny) as counter:
        first = comfy_sampling.sample_sigmas(tiny, sigmas=sigmas[:3], cfg=3.0, seed=4)
        two = comfy_sampling.sample_sigmas(tiny, sigmas=sigmas[2:], cfg=3.0, seed=4, latent=first, add_noise=False)
    assert counter.dm_calls == STEPS
    # same path, split in two; only latent in/out scaling between the passes rounds differently
    torch.testing.assert_close(two, one, rtol=1e-4, atol=1e-4)
    # and the KSampler path with the same schedule gives the same result
    torch.testing.assert_close(comfy_sampling.sample(tiny, steps=STEPS, cfg=3.0, seed=4), one, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- counting and host layouts


def test_counter_tells_skipped_calls_from_real_passes(flux, comfy):
    model = flux.patcher.clone()

    def skip_after_first_step(executor, *args, **kwargs):
        options = args[-1]
        if options["sigmas"][0] != options["sample_sigmas"][0]:
            return torch.zeros_like(args[0])
        return executor(*args, **kwargs)

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.skip", skip_after_first_step)
    dm = flux.diffusion_model
    with pass_counter.count_passes(model) as counter:
        comfy_sampling.sample(model, steps=STEPS, cfg=1.0, seed=1)
    assert counter.dm_calls == STEPS
    assert counter.forwards == 1
    assert [c.computed for c in counter.calls] == [True] + [False] * (STEPS - 1)
    assert not dm._forward_pre_hooks and not dm._forward_hooks  # hooks removed on exit
    assert "apply_model" not in flux.patcher.model.__dict__
    assert not any(m._forward_pre_hooks for b in pass_counter.first_blocks(dm) for m in b.modules())


def diffusion_model_args(diffusion_model: torch.nn.Module) -> tuple[str, ...]:
    """The positional arguments a DIFFUSION_MODEL wrapper receives: the names of the model's ``forward`` parameters,
    which every wrapped forward passes on to its executor in order (the host's own signature, so a parameter a
    newer ComfyUI adds, like HunyuanVideo's ``clip_fea`` in 0.33, is followed, not hard-coded)."""
    parameters = inspect.signature(type(diffusion_model).forward).parameters.values()
    return tuple(p.name for p in parameters if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD)


def test_diffusion_model_wrapper_layout(tiny):
    model, records = pass_counter.record_diffusion_model_args(tiny)
    comfy_sampling.sample(model, steps=2, cfg=3.0, seed=1, batch=BATCH)
    assert len(records) == 2
    args, kwargs = records[0]
    names = diffusion_model_args(tiny.diffusion_model)
    # what the pack relies on, on every host: x first, transformer_options last, the conds by name in between
    assert names[:3] == ("x", "timestep", "context") and names[-1] == "transformer_options"
    assert len(args) == len(names)
    by_name = dict(zip(names, args))
    options = by_name["transformer_options"]
    assert isinstance(options, dict)
    assert options["cond_or_uncond"] == [1, 0]
    assert len(options["uuids"]) == 2
    torch.testing.assert_close(options["sample_sigmas"], comfy_sampling.scheduler_sigmas(tiny, steps=2))
    assert by_name["x"].shape[0] == 2 * BATCH
    assert by_name["context"].shape == (2 * BATCH, 4, tiny.cond.context_dim)
    if tiny.cond.guidance is not None:
        assert by_name["guidance"].tolist() == [tiny.cond.guidance] * (2 * BATCH)
    if tiny.family is tiny_specs.Family.QWEN_IMAGE:
        assert kwargs == {"control": None}
    else:
        assert kwargs == {}


def test_flux_from_state_dict_reproduces_the_model(flux):
    state = {k: v.clone() for k, v in flux.diffusion_model.state_dict().items()}
    rebuilt = tiny_models.flux_from_state_dict(state, tiny_specs.FLUX_TINY)
    assert rebuilt.diffusion_model is not flux.diffusion_model
    a = comfy_sampling.sample(flux, steps=STEPS, cfg=1.0, seed=9)
    b = comfy_sampling.sample(rebuilt, steps=STEPS, cfg=1.0, seed=9)
    assert torch.equal(a, b)

    prefixed = tiny_models.flux_from_state_dict({"model.diffusion_model." + k: v for k, v in state.items()},
                                                tiny_specs.FLUX_TINY)
    assert torch.equal(comfy_sampling.sample(prefixed, steps=STEPS, cfg=1.0, seed=9), a)

    del state["final_layer.linear.bias"]
    with pytest.raises(comfy_host.ComfyHostError, match="final_layer.linear.bias"):
        tiny_models.flux_from_state_dict(state, tiny_specs.FLUX_TINY)
    partial_config = {k: v for k, v in tiny_specs.FLUX_TINY.items() if k != "theta"}
    with pytest.raises(comfy_host.ComfyHostError, match="missing \\['theta'\\]"):
        tiny_models.flux_from_state_dict(state, partial_config)
