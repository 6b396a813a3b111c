"""The wrappers and run state driven by stand-ins for ComfyUI's executor and guider (runs without ComfyUI).

The same behaviour is checked inside real ComfyUI sampling in test_comfy_integration.py.
"""
import types
import uuid

import pytest
import torch

from comfyui_l2p.nodes.plans import EveryStepPlan, FixedPlan
from comfyui_l2p.nodes.report import ForcedReason, RunReport
from comfyui_l2p.nodes.run_state import (
    HOLDER_KEY, RUN_KEY, L2PHolder, RunPieces, RunState, l2p_diffusion_model_wrapper, l2p_outer_sample_wrapper,
)
from comfyui_l2p.predictors import StepGrid, TaylorSeer, TimeAxis


class Executor:
    """Counts real transformer passes; ``fn(x, sigma)`` is the 'transformer'."""

    def __init__(self, fn, class_obj=None):
        self.fn, self.class_obj, self.calls = fn, class_obj, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def linear_model(x, to):
    # output linear in sigma, different per row: TaylorSeer-1 on the sigma axis forecasts it exactly
    return x * 0 + to["sigmas"].reshape(-1)[0] * torch.arange(1, x.shape[0] + 1).view(-1, 1, 1, 1)


def call(run, ex, x, sigma, uuids, roles):
    to = {"sigmas": torch.tensor([sigma]), "uuids": uuids, "cond_or_uncond": roles, RUN_KEY: run}
    return l2p_diffusion_model_wrapper(ex, x, to)


def make_run(grid, computed, warmup=1, predictor=None):
    pieces = RunPieces(predictor or TaylorSeer(order=1, axis=TimeAxis.SIGMA), FixedPlan(frozenset(computed), warmup))
    return RunState(pieces, grid, RunReport("test", "taylorseer", grid.num_steps))


def test_passes_equal_schedule_and_forecasts_are_exact_for_linear_outputs():
    grid = StepGrid.uniform(10)
    run = make_run(grid, computed={0, 1, 5})
    ex = Executor(lambda x, to: linear_model(x, to))
    cond, unc = uuid.uuid4(), uuid.uuid4()
    for s in range(10):
        x = torch.zeros(4, 2, 3, 3)  # 2 chunks (uncond first, as ComfyUI orders them) x batch 2
        out = call(run, ex, x, grid.sigmas[s], [unc, cond], [1, 0])
        expected = linear_model(x, {"sigmas": torch.tensor([grid.sigmas[s]])})
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    assert ex.calls == 3
    assert run.report.stream("cond").computed == [0, 1, 5]
    assert run.report.stream("uncond").forecast == [2, 3, 4, 6, 7, 8, 9]


def test_cond_and_uncond_in_separate_calls_follow_one_decision_per_step():
    grid = StepGrid.uniform(6)
    run = make_run(grid, computed={0, 1, 4})
    ex = Executor(lambda x, to: linear_model(x, to))
    cond, unc = uuid.uuid4(), uuid.uuid4()
    for s in range(6):
        call(run, ex, torch.zeros(1, 1, 2, 2), grid.sigmas[s], [cond], [0])
        call(run, ex, torch.zeros(1, 1, 2, 2), grid.sigmas[s], [unc], [1])
    assert ex.calls == 6
    assert run.report.stream("cond").computed == run.report.stream("uncond").computed == [0, 1, 4]


def test_off_grid_and_repeated_sigmas_are_computed_and_reported():
    grid = StepGrid.uniform(4)
    run = make_run(grid, computed={0})
    ex = Executor(lambda x, to: linear_model(x, to))
    u = uuid.uuid4()
    call(run, ex, torch.zeros(1, 1, 1, 1), grid.sigmas[0], [u], [0])
    call(run, ex, torch.zeros(1, 1, 1, 1), 0.61, [u], [0])  # a midpoint sigma (dpmpp_2s-style)
    call(run, ex, torch.zeros(1, 1, 1, 1), grid.sigmas[1], [u], [0])  # forecast
    call(run, ex, torch.zeros(1, 1, 1, 1), grid.sigmas[1], [u], [0])  # Heun's second evaluation of step 1
    reasons = [r for _, _, r in run.report.forced]
    assert ForcedReason.OFF_GRID.value in reasons and ForcedReason.REPEAT.value in reasons
    assert ex.calls == 3 and run.report.forecast_calls == 1


def test_a_stream_without_history_forces_the_call():
    grid = StepGrid.uniform(5)
    run = make_run(grid, computed={0})
    ex = Executor(lambda x, to: linear_model(x, to))
    a, b = uuid.uuid4(), uuid.uuid4()
    call(run, ex, torch.zeros(1, 1, 1, 1), grid.sigmas[0], [a], [0])
    call(run, ex, torch.zeros(2, 1, 1, 1), grid.sigmas[1], [a, b], [0, 0])  # b appears late (timestep-range cond)
    assert ex.calls == 2
    assert [r for _, _, r in run.report.forced] == [ForcedReason.WARMUP.value, ForcedReason.NO_HISTORY.value]
    assert run.report.stream("cond#2").computed == [1]


def test_outer_wrapper_creates_state_per_run_and_restores_options_even_on_cancel():
    grid = StepGrid.uniform(4)
    started = []

    def start_run(context, report):
        started.append(context.grid.num_steps)
        return RunPieces(TaylorSeer(order=1), EveryStepPlan(context.grid.num_steps))

    holder = L2PHolder("test", "taylorseer", start_run)
    options = {"transformer_options": {HOLDER_KEY: holder}}
    guider = types.SimpleNamespace(model_options=options,
                                   model_patcher=types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=None)))
    seen_runs = []

    def sampling(noise, latent, sampler, sigmas, *rest):
        run = guider.model_options["transformer_options"][RUN_KEY]
        seen_runs.append(run)
        if sampler == "cancel":
            raise KeyboardInterrupt
        return noise

    ex = Executor(sampling, class_obj=guider)
    l2p_outer_sample_wrapper(ex, torch.zeros(1), None, "euler", torch.tensor(grid.sigmas))
    with pytest.raises(KeyboardInterrupt):
        l2p_outer_sample_wrapper(ex, torch.zeros(1), None, "cancel", torch.tensor(grid.sigmas))
    l2p_outer_sample_wrapper(ex, torch.zeros(1), None, "euler", torch.tensor(grid.sigmas))
    assert guider.model_options is options and RUN_KEY not in options["transformer_options"]
    assert len(set(map(id, seen_runs))) == 3  # a fresh state every run, cancelled or not
    assert [r.status.split(":")[0] for r in holder.reports] == ["finished", "failed", "finished"]


def test_wrapper_without_run_state_stays_out_of_the_way():
    ex = Executor(lambda x, to: x + 1)
    out = l2p_diffusion_model_wrapper(ex, torch.zeros(2), {"sigmas": torch.tensor([1.0])})
    assert ex.calls == 1 and torch.equal(out, torch.ones(2))
