"""torch.compile under L2P, inside real ComfyUI sampling on a tiny FLUX compiled the way core TorchCompileModel compiles
it: a forecast step never runs the compiled model, nothing recompiles per step, and speedup 1 is bit-identical.
Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import pytest
import torch

import comfy_sampling
import tiny_models
from comfy_node_cases import PLANNED, forecast_cache, last_report

pytestmark = pytest.mark.comfy


class CountingBackend:
    """A torch.compile backend that runs dynamo's graph as traced (no codegen) and counts compiles and runs."""

    def __init__(self) -> None:
        self.compiles = 0
        self.graph_runs = 0

    def __call__(self, graph_module, example_inputs):
        self.compiles += 1

        def run(*args):
            self.graph_runs += 1
            return graph_module.forward(*args)
        return run


def host_compile_options() -> dict:
    """The options the host's TorchCompileModel node passes (0.33 and later: guards on transformer_options off)."""
    try:
        from comfy_extras.nodes_torch_compile import skip_torch_compile_dict
    except ImportError:
        return {}
    return {"options": {"guard_filter_fn": skip_torch_compile_dict}}


@pytest.fixture(scope="module")
def compiled(comfy):
    """A tiny FLUX compiled the way core TorchCompileModel compiles it, and its compiled 10-step run.

    FLUX's attention is swapped for torch's SDPA here (ComfyUI's choice on a GPU): on a CPU ComfyUI picks
    sub-quadratic attention, which asks psutil for free memory inside the forward and gives dynamo a graph break
    per block (20 graphs, about 45 s per compile on this machine)."""
    import comfy.ldm.flux.math
    import comfy.ldm.modules.attention
    from comfy_api.torch_helpers import set_torch_compile_wrapper
    import torch._dynamo

    torch._dynamo.reset()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comfy.ldm.flux.math, "optimized_attention", comfy.ldm.modules.attention.attention_pytorch)
        tiny = tiny_models.tiny_flux(seed=16)
        backend = CountingBackend()

        def compile_model(model):
            model = model.clone()
            set_torch_compile_wrapper(model, backend=backend, **host_compile_options())
            return model

        model = compile_model(tiny.patcher)
        reference = comfy_sampling.sample(model, steps=10, cfg=1.0, seed=1)
        assert backend.compiles >= 1 and backend.graph_runs == 10
        yield tiny, model, compile_model, backend, reference
    torch._dynamo.reset()


@pytest.mark.parametrize("order", ["compile-then-L2P", "L2P-then-compile"])
def test_compile_forecast_steps_never_run_the_compiled_model_and_nothing_recompiles_per_step(pack, compiled, order):
    from torch._dynamo.utils import counters

    tiny, compiled_model, compile_model, backend, _ = compiled
    patched = (forecast_cache(pack, compiled_model) if order == "compile-then-L2P"
               else compile_model(forecast_cache(pack, tiny)))
    eager = comfy_sampling.sample(forecast_cache(pack, tiny), steps=10, cfg=1.0, seed=1)
    breaks = sum(counters["graph_break"].values())
    compiles = [backend.compiles]
    for _ in range(2):
        before = backend.graph_runs
        out = comfy_sampling.sample(patched, steps=10, cfg=1.0, seed=1)
        compiles.append(backend.compiles)
        report = last_report(patched)
        assert backend.graph_runs - before == 4 == report.transformer_calls  # computed steps only
        assert report.streams["cond"].computed == PLANNED and report.reached_hook
        assert report.hook == "apply_model (torch.compile: outside the compiled region)"
        assert torch.equal(out, eager)  # compiled passes, the same forecasts
    # adding L2P's entries to the options compiles at most once more (0.3.64 guards on them; 0.33's node does not),
    # and a second run compiles nothing
    assert compiles[1] - compiles[0] <= 1 and compiles[2] == compiles[1]
    assert sum(counters["graph_break"].values()) == breaks


def test_compile_speedup_one_is_bit_identical_to_the_compiled_model(pack, compiled):
    tiny, compiled_model, _, backend, reference = compiled
    before = backend.graph_runs
    out = comfy_sampling.sample(forecast_cache(pack, compiled_model, speedup=1.0), steps=10, cfg=1.0, seed=1)
    assert backend.graph_runs - before == 10 and torch.equal(out, reference)
