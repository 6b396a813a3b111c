"""The hook points without ComfyUI: the APPLY_MODEL proxy, wrapper order, the choice of hook and the never-reached
report (where a call's transformer_options sit and list outputs: test_call_layouts.py). The same pieces run inside
real ComfyUI sampling in test_comfy_hooks.py."""
import uuid

import pytest
import torch

from comfyui_l2p.nodes.apply_model_hook import DiffusionModelProxy, l2p_apply_model_wrapper
from comfyui_l2p.nodes.architectures import UnsupportedModelError, family_of
from comfyui_l2p.nodes.hook_points import COMPILE_KEY, WRAPPER_KEY, HookPoint, hook_points_for, select_hook
from comfyui_l2p.nodes.plans import FixedPlan
from comfyui_l2p.nodes.report import NOT_REACHED, RunReport
from comfyui_l2p.nodes.run_state import RUN_KEY, RunPieces, RunState, make_innermost
from comfyui_l2p.predictors import StepGrid, TaylorSeer, TimeAxis


# ----------------------------------------------------------------------------------------- the proxy


class Transformer(torch.nn.Module):
    patch_size = 2

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x, timesteps, context=None, transformer_options={}, **kwargs):
        self.calls += 1
        return x * self.weight + transformer_options["sigmas"].reshape(-1)[0]


class BaseModelLike(torch.nn.Module):
    """ComfyUI's BaseModel in miniature: apply_model runs APPLY_MODEL wrappers around _apply_model."""

    def __init__(self):
        super().__init__()
        self.diffusion_model = Transformer()

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        # the wrappers of WrappersMP.APPLY_MODEL, in order, around _apply_model
        wrappers = list(transformer_options.get("wrappers", {}).get("apply_model", {}).values())
        return Executor(self._apply_model, self, [w for ws in wrappers for w in ws]).execute(
            x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)

    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        assert self.diffusion_model.patch_size == 2  # attribute reads reach the real module through the proxy
        return self.diffusion_model(x, t, context=c_crossattn, transformer_options=transformer_options)


class Executor:
    """comfy.patcher_extension.WrapperExecutor's protocol: ``original``, ``class_obj``, calling runs the rest."""

    def __init__(self, original, class_obj, wrappers, idx=0):
        self.original, self.class_obj, self.wrappers, self.idx = original, class_obj, wrappers, idx

    def __call__(self, *args, **kwargs):
        return Executor(self.original, self.class_obj, self.wrappers, self.idx + 1).execute(*args, **kwargs)

    def execute(self, *args, **kwargs):
        if self.idx == len(self.wrappers):
            return self.original(*args, **kwargs)
        return self.wrappers[self.idx](self, *args, **kwargs)


def swap_in(module):
    """A stand-in for core torch.compile's APPLY_MODEL wrapper: ``diffusion_model`` replaced during the call."""
    def wrapper(executor, *args, **kwargs):
        original = executor.class_obj.diffusion_model
        executor.class_obj.diffusion_model = module
        try:
            return executor(*args, **kwargs)
        finally:
            executor.class_obj.diffusion_model = original
    return wrapper


class Replacement(Transformer):
    pass


def test_the_proxy_forecasts_without_calling_the_module_and_restores_it():
    base = BaseModelLike()
    real = base.diffusion_model
    grid = StepGrid.uniform(6)
    run = RunState(RunPieces(TaylorSeer(order=1, axis=TimeAxis.SIGMA), FixedPlan(frozenset({0, 1, 4}), 1)), grid,
                   RunReport("test", "taylorseer", grid.num_steps))
    u = uuid.uuid4()
    wrappers = {"apply_model": {WRAPPER_KEY: [l2p_apply_model_wrapper]}}
    for s in range(6):
        to = {"sigmas": torch.tensor([grid.sigmas[s]]), "uuids": [u], "cond_or_uncond": [0], RUN_KEY: run,
              "wrappers": wrappers}
        out = base.apply_model(torch.full((1, 2), 3.0), torch.tensor([grid.sigmas[s]]), transformer_options=to)
        torch.testing.assert_close(out, torch.full((1, 2), 3.0 + grid.sigmas[s]))
        assert base.diffusion_model is real  # restored after every call
    assert real.calls == 3 and run.report.forecast_calls == 3


def test_made_innermost_it_wraps_what_an_earlier_wrapper_swapped_in_in_either_order():
    for ours_first in (True, False):
        base = BaseModelLike()
        replacement = Replacement()
        grid = StepGrid.uniform(4)
        run = RunState(RunPieces(TaylorSeer(order=1), FixedPlan(frozenset({0, 1}), 1)), grid,
                       RunReport("test", "taylorseer", grid.num_steps))
        entries = [(WRAPPER_KEY, [l2p_apply_model_wrapper]), ("torch.compile", [swap_in(replacement)])]
        apply_model = dict(entries if ours_first else entries[::-1])
        to = {"wrappers": {"apply_model": apply_model, "outer_sample": {"x": []}}}
        make_innermost(to)
        assert list(to["wrappers"]["apply_model"]) == ["torch.compile", WRAPPER_KEY]
        u = uuid.uuid4()
        for s in range(4):
            to.update({"sigmas": torch.tensor([grid.sigmas[s]]), "uuids": [u], "cond_or_uncond": [0], RUN_KEY: run})
            base.apply_model(torch.ones(1, 2), torch.tensor([grid.sigmas[s]]), transformer_options=to)
        assert replacement.calls == 2 and base.diffusion_model.calls == 0  # the swapped-in module, computed steps only
        assert run.report.forecast_calls == 2


def test_the_proxy_is_no_submodule_and_forwards_attributes():
    real = Transformer()
    proxy = DiffusionModelProxy(real, run=None, apply_options={})
    assert list(proxy.parameters()) == [] and proxy.patch_size == 2 and proxy.weight is real.weight


class DiffusersStyleBase(BaseModelLike):
    """A third-party _apply_model calling its transformer without transformer_options (a diffusers UNet's way)."""

    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        return self.diffusion_model(x, transformer_options["sigmas"])


class TransformerWithoutOptions(Transformer):
    def forward(self, x, sigma):
        self.calls += 1
        return x + sigma.reshape(-1)[0]


def test_without_transformer_options_in_the_call_the_proxy_uses_apply_models():
    base = DiffusersStyleBase()
    base.diffusion_model = TransformerWithoutOptions()
    grid = StepGrid.uniform(5)
    run = RunState(RunPieces(TaylorSeer(order=1, axis=TimeAxis.SIGMA), FixedPlan(frozenset({0, 1}), 1)), grid,
                   RunReport("test", "taylorseer", grid.num_steps))
    u = uuid.uuid4()
    for s in range(5):
        to = {"sigmas": torch.tensor([grid.sigmas[s]]), "uuids": [u], "cond_or_uncond": [0], RUN_KEY: run,
              "wrappers": {"apply_model": {WRAPPER_KEY: [l2p_apply_model_wrapper]}}}
        out = base.apply_model(torch.ones(1, 2), torch.tensor([grid.sigmas[s]]), transformer_options=to)
        torch.testing.assert_close(out, torch.full((1, 2), 1.0 + grid.sigmas[s]))
    assert base.diffusion_model.calls == 2 and run.report.forecast_calls == 3


def test_a_call_outside_an_l2p_run_passes_through():
    base = BaseModelLike()
    to = {"sigmas": torch.tensor([0.5]), "wrappers": {"apply_model": {WRAPPER_KEY: [l2p_apply_model_wrapper]}}}
    out = base.apply_model(torch.ones(1, 2), torch.tensor([0.5]), transformer_options=to)
    assert torch.equal(out, torch.full((1, 2), 1.5)) and base.diffusion_model.calls == 1


# --------------------------------------------------------------------------------- choosing the hook


class ForwardCallsWrapper(torch.nn.Module):
    def forward(self, x):  # runs WrappersMP.DIFFUSION_MODEL around _forward (detection reads the source)
        return x


class NoWrappers(torch.nn.Module):
    def forward(self, x):
        return x


class PlainBase:
    def __init__(self, dm):
        self.diffusion_model = dm

    def apply_model(self, x):
        return self.diffusion_model(x)


def test_the_hooks_that_reach_a_model_are_detected_and_none_is_refused():
    assert hook_points_for(BaseModelLike()) == (HookPoint.APPLY_MODEL,)
    both = BaseModelLike()
    both.diffusion_model = ForwardCallsWrapper()
    assert hook_points_for(both) == (HookPoint.APPLY_MODEL, HookPoint.DIFFUSION_MODEL)
    assert hook_points_for(PlainBase(ForwardCallsWrapper())) == (HookPoint.DIFFUSION_MODEL,)
    with pytest.raises(UnsupportedModelError, match=r"cannot drive the model PlainBase \(diffusion model test_hooks\.NoWrappers\)"
                                                    r".*APPLY_MODEL.*DIFFUSION_MODEL.*remove the L2P node"):
        hook_points_for(PlainBase(NoWrappers()))
    with pytest.raises(UnsupportedModelError, match="cannot drive the model object"):
        hook_points_for(object())


def run_wrappers(*apply_model_keys: str) -> dict:
    ours = [l2p_apply_model_wrapper]
    return {"wrappers": {"apply_model": {k: ours if k == WRAPPER_KEY else [] for k in apply_model_keys},
                         "diffusion_model": {"other": [], WRAPPER_KEY: ours}}}


def test_each_run_keeps_one_hook():
    to = run_wrappers("other", WRAPPER_KEY)
    assert select_hook(to, ForwardCallsWrapper()).startswith("diffusion_model")  # the transformer's own wrapper
    assert WRAPPER_KEY not in to["wrappers"]["apply_model"] and WRAPPER_KEY in to["wrappers"]["diffusion_model"]
    assert "other" in to["wrappers"]["apply_model"]  # other packs' wrappers are left alone

    to = run_wrappers(COMPILE_KEY, WRAPPER_KEY)
    assert select_hook(to, ForwardCallsWrapper()) == "apply_model (torch.compile: outside the compiled region)"
    assert WRAPPER_KEY in to["wrappers"]["apply_model"] and WRAPPER_KEY not in to["wrappers"]["diffusion_model"]

    to = run_wrappers(WRAPPER_KEY)
    assert select_hook(to, NoWrappers()) == "apply_model (NoWrappers never calls DIFFUSION_MODEL)"

    to = run_wrappers("other")  # installed at DIFFUSION_MODEL only
    assert select_hook(to, NoWrappers()) == "diffusion_model (the only one installed)"


def test_unknown_models_are_named_by_class():
    assert family_of(NoWrappers()) == "NoWrappers"


# ----------------------------------------------------------------------------------------- reporting


def test_a_finished_run_that_never_reached_the_hook_says_so():
    report = RunReport("test", "fora", 4)
    report.check_hook_reached()
    assert not report.reached_hook and report.notes == [NOT_REACHED] and NOT_REACHED in report.summary()
    report = RunReport("test", "fora", 4, transformer_calls=1)
    report.check_hook_reached()
    assert report.reached_hook and report.notes == []


class OverridesWithoutSuper(BaseModelLike):
    def apply_model(self, x, t, **kwargs):
        return self._apply_model(x, t, **kwargs)


class OverridesWithSuper(BaseModelLike):
    def apply_model(self, x, t, **kwargs):
        return super().apply_model(x, t, **kwargs)


def test_detection_follows_super_calls_and_stops_at_overrides():
    assert hook_points_for(OverridesWithSuper()) == (HookPoint.APPLY_MODEL,)
    with pytest.raises(UnsupportedModelError, match="OverridesWithoutSuper"):
        hook_points_for(OverridesWithoutSuper())
