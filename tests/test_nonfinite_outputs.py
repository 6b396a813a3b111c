"""NaN / inf model outputs and forecasts, found at the step where they appear (nodes/output_guard.py), with
stand-ins for ComfyUI's executor (the same inside real ComfyUI sampling: test_comfy_errors.py)."""
import uuid

import numpy as np
import pytest
import torch

from comfyui_l2p.nodes.output_guard import all_finite
from comfyui_l2p.nodes.plans import EveryStepPlan, FixedPlan
from comfyui_l2p.nodes.report import ForcedReason, RunReport
from comfyui_l2p.nodes.run_state import RUN_KEY, RunPieces, RunState, l2p_diffusion_model_wrapper
from comfyui_l2p.predictors import Fora, StepGrid, TaylorSeer, TimeAxis
from comfyui_l2p.predictors.engine.linear_predictor import LinearPredictor
from comfyui_l2p.predictors.errors import ModelOutputError

GRID = StepGrid.uniform(8)


class Model:
    """A 'transformer' whose output turns NaN (in batch row ``bad_row``, or everywhere) from step ``bad_from``."""

    def __init__(self, bad_from: int | None, bad_row: int | None = None, value=float("nan")):
        self.bad_from, self.bad_row, self.value, self.calls = bad_from, bad_row, value, []

    def __call__(self, x, to):
        sigma = float(to["sigmas"][0])
        step = GRID.step_of(sigma)
        self.calls.append(step)
        out = x * 0 + sigma * torch.arange(1, x.shape[0] + 1, dtype=x.dtype).view(-1, 1, 1, 1)
        if self.bad_from is not None and step >= self.bad_from:
            if self.bad_row is None:
                out[:] = self.value
            else:
                out[self.bad_row, 0, 0, 0] = self.value
        return out


def drive(run: RunState, model: Model, rows: int = 1, dtype=torch.float32) -> list[torch.Tensor]:
    u = uuid.uuid4()
    outs = []
    for s in range(GRID.num_steps):
        to = {"sigmas": torch.tensor([GRID.sigmas[s]]), "uuids": [u], "cond_or_uncond": [0], RUN_KEY: run}
        outs.append(l2p_diffusion_model_wrapper(lambda x, t: model(x, t), torch.zeros(rows, 1, 2, 2, dtype=dtype),
                                                to))
    return outs


class Sink:
    """A calibration sink (L2P Calibrate's role) that records what reaches it."""

    on_policy = False

    def __init__(self):
        self.steps, self.finished = [], None

    def record(self, step, outputs):
        self.steps.append(step)

    def finish(self, success, report):
        self.finished = success


def test_all_finite_is_exact_even_when_the_sum_overflows():
    assert all_finite(torch.ones(4)) and not all_finite(torch.tensor([1.0, float("nan")]))
    assert not all_finite(torch.tensor([float("inf"), -float("inf")]))  # sums to NaN, not to 0
    assert all_finite(torch.full((4,), 3e38))  # the float32 sum overflows, every element is finite


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_calibration_stops_at_the_first_bad_step_and_keeps_nothing(value):
    sink = Sink()
    run = RunState(RunPieces(Fora(), EveryStepPlan(GRID.num_steps), calibration=sink), GRID,
                   RunReport("L2P Calibrate", "teacher-forced", GRID.num_steps))
    model = Model(bad_from=3, value=value)
    with pytest.raises(ModelOutputError, match=r"model's output at step 3 \(of steps 0-7, sigma 0\.625, stream "
                                               r"cond\) holds NaN or infinite values.*left unchanged"):
        drive(run, model)
    assert model.calls == [0, 1, 2, 3]  # stopped where it happened, not after the batch
    run.finish(False)  # what the OUTER_SAMPLE wrapper does with a failed run
    assert sink.finished is False and 3 not in sink.steps


class LearningSink(Sink):
    """L2P Cache's learning recorder's role: a bad output drops the run's recording, the run goes on."""

    stops_on_bad_output = False

    def __init__(self):
        super().__init__()
        self.finish_calls = 0

    def finish(self, success, report):
        super().finish(success, report)
        self.finish_calls += 1


def test_a_learning_run_drops_its_recording_at_the_bad_step_and_finishes():
    sink = LearningSink()
    report = RunReport("L2P Cache", "learning", GRID.num_steps)
    run = RunState(RunPieces(Fora(), EveryStepPlan(GRID.num_steps), calibration=sink), GRID, report)
    model = Model(bad_from=3)
    outs = drive(run, model)  # no error: the user's image comes back, as the model made it
    assert model.calls == list(range(GRID.num_steps))  # every step computed, as a learning run does
    assert all(torch.isfinite(o).all() for o in outs[:3]) and all(torch.isnan(o).all() for o in outs[3:])
    assert sink.finished is False and sink.finish_calls == 1  # dropped at step 3, before any step reached it
    recorded = list(sink.steps)
    assert all(step < 3 for step in recorded)  # nothing from the bad step on; finish(False) drops the rest
    assert any("step 3" in note and "NaN" in note for note in report.notes)
    run.finish(True)  # the sampler finished: the recording stays dropped, the sink is not told twice
    assert sink.finish_calls == 1 and sink.steps == recorded


def test_a_cache_passes_the_bad_output_on_keeps_it_out_of_history_and_computes_the_rest():
    run = RunState(RunPieces(TaylorSeer(order=1, axis=TimeAxis.SIGMA), FixedPlan(frozenset({0, 1, 4}), 1)), GRID,
                   RunReport("L2P Cache", "taylorseer", GRID.num_steps))
    model = Model(bad_from=4, bad_row=1)
    outs = drive(run, model, rows=2)
    assert model.calls == [0, 1, 4, 5, 6, 7]  # planned 0, 1, 4; after the bad step 4 every step is computed
    assert torch.isnan(outs[4][1]).any() and all_finite(outs[4][0])  # the model's own output, unchanged
    assert all(all_finite(o[0]) for o in outs)  # the finite row is exact everywhere: no NaN entered history
    assert run.engine.computed_steps(("cond", next(iter(run.engine.streams))[1])) == (0, 1)
    forced = [(s, r) for s, _, r in run.report.forced if r == ForcedReason.NON_FINITE_OUTPUT.value]
    assert [s for s, _ in forced] == [5, 6, 7]
    assert any("step 4" in n and "stream cond" in n for n in run.report.notes)


class Huge(LinearPredictor):
    """Weights that overflow float16 (max 65504) on outputs >= 0.125: 1e6 x the last output."""

    name = "huge"

    def _weights(self, target, computed, grid):
        w = np.zeros(len(computed))
        w[-1] = 1e6
        return w


def test_a_forecast_that_overflows_is_computed_instead():
    run = RunState(RunPieces(Huge(), FixedPlan(frozenset({0, 1}), 1)), GRID, RunReport("Forecast Cache", "huge", 8))
    model = Model(bad_from=None)
    outs = drive(run, model, dtype=torch.float16)
    assert model.calls == list(range(8)) and all(all_finite(o) for o in outs)
    assert [s for s, _, r in run.report.forced if r == ForcedReason.NON_FINITE_FORECAST.value] == list(range(2, 8))
