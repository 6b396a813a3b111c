"""The run state when several threads call it at once, as ComfyUI's multi-GPU CFG split does: every device thread
calls the run's one RunState with its own subset of the conds, all at the same step (runs without ComfyUI; the
real host's threaded path is driven in test_comfy_runtime.py).

Each step here is what the host does: one thread per device, started together (a barrier), joined before the
sampler moves on. The plans widen the race window on purpose (a short sleep inside ``decide``) so that missing
locking shows up as a second decision; what the tests assert is exact (counts, lists, bit-identical outputs).
"""
import threading
import time
import uuid

import pytest
import torch

from comfyui_l2p.nodes.plans import FixedPlan
from comfyui_l2p.nodes.report import ForcedReason, RunReport
from comfyui_l2p.nodes.run_state import RUN_KEY, RunPieces, RunState, l2p_diffusion_model_wrapper
from comfyui_l2p.predictors import StepGrid, TaylorSeer, TimeAxis

COND, UNCOND = uuid.uuid4(), uuid.uuid4()


class CountingPlan(FixedPlan):
    """A FixedPlan that records every decide and residual call, and lingers in decide to expose races."""

    def __init__(self, computed, warmup=1):
        super().__init__(frozenset(computed), warmup)
        self.decide_calls: list[int] = []
        self.residual_calls: list[tuple[int, float]] = []

    def decide(self, step):
        self.decide_calls.append(step)
        time.sleep(0.005)
        return super().decide(step)

    def report_residual(self, step, residual):
        self.residual_calls.append((step, residual))


class RecordingSink:
    on_policy = False

    def __init__(self):
        self.records: list[tuple[int, dict]] = []
        self.finished: list[bool] = []

    def record(self, step, outputs):
        self.records.append((step, {k: v.clone() for k, v in outputs.items()}))

    def finish(self, success, report):
        self.finished.append(success)


def transformer(x, to):
    """Output nonlinear in sigma (forecasts are not exact), different per role and row, the same whether a chunk
    comes alone or batched with others (as a real transformer's rows are)."""
    s = float(to["sigmas"].reshape(-1)[0])
    chunks = []
    for chunk, role in zip(x.chunk(len(to["cond_or_uncond"])), to["cond_or_uncond"]):
        rows = torch.arange(1, chunk.shape[0] + 1, dtype=torch.float32).view(-1, 1, 1, 1)
        chunks.append(chunk * 0 + (s**2 + 0.3 * s) * rows + (1.0 if role == 0 else -0.5))
    return torch.cat(chunks)


class Executor:
    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, x, to):
        with self._lock:
            self.calls += 1
        return transformer(x, to)


def make_run(grid, plan, sink=None):
    pieces = RunPieces(TaylorSeer(order=1, axis=TimeAxis.SIGMA), plan, calibration=sink)
    return RunState(pieces, grid, RunReport("test", "taylorseer", grid.num_steps))


def call(run, ex, sigma, uuids, roles):
    to = {"sigmas": torch.tensor([sigma]), "uuids": uuids, "cond_or_uncond": roles, RUN_KEY: run}
    return l2p_diffusion_model_wrapper(ex, torch.zeros(2 * len(uuids), 1, 2, 2), to)


def device_threads(run, ex, sigma):
    """cond and uncond on two 'device' threads at once; returns {role: output}."""
    barrier, outputs = threading.Barrier(2), {}

    def work(u, role):
        barrier.wait()
        outputs[role] = call(run, ex, sigma, [u], [role])

    threads = [threading.Thread(target=work, args=(u, r)) for u, r in ((COND, 0), (UNCOND, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outputs


def single_device(run, ex, sigma, batched):
    """The same step on one device: cond and uncond in one call (batched) or two (uncond first, as ComfyUI)."""
    if batched:
        out = call(run, ex, sigma, [UNCOND, COND], [1, 0])
        return {1: out[:2], 0: out[2:]}
    return {1: call(run, ex, sigma, [UNCOND], [1]), 0: call(run, ex, sigma, [COND], [0])}


def sample(step_fn, computed=(0, 1, 4, 7), sink=None, steps=10):
    grid = StepGrid.uniform(steps)
    plan = CountingPlan(computed)
    run = make_run(grid, plan, sink)
    ex = Executor()
    outputs = [step_fn(run, ex, grid.sigmas[s]) for s in range(steps)]
    run.finish(True)
    return run, plan, ex, outputs


def test_device_threads_share_one_decision_per_step_and_match_a_single_device_run():
    run, plan, ex, outputs = sample(device_threads)
    assert plan.decide_calls == list(range(10))  # once per step, whichever thread asked first
    assert ex.calls == 2 * 4 and run.report.transformer_calls == 8 and run.report.forecast_calls == 12
    for name in ("cond", "uncond"):
        assert run.report.stream(name).computed == [0, 1, 4, 7]
        assert run.report.stream(name).forecast == [2, 3, 5, 6, 8, 9]
    for batched in (True, False):
        ref_run, _, ref_ex, ref_outputs = sample(lambda r, e, s: single_device(r, e, s, batched))
        assert ref_ex.calls == 8 // (2 if batched else 1)
        for got, ref in zip(outputs, ref_outputs):
            assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        assert ref_run.report.stream("cond").residuals == run.report.stream("cond").residuals


def test_residuals_reach_the_plan_once_per_step_in_order_whatever_the_call_layout():
    _, threaded, _, _ = sample(device_threads)
    _, batched, _, _ = sample(lambda r, e, s: single_device(r, e, s, True))
    _, separate, _, _ = sample(lambda r, e, s: single_device(r, e, s, False))
    steps = [s for s, _ in threaded.residual_calls]
    assert steps == [1, 4, 7]  # step 0 has no history to measure a residual from; step 7's reaches it at step 8
    assert threaded.residual_calls == batched.residual_calls == separate.residual_calls


def test_calibration_records_every_threads_streams_once_per_step():
    sink = RecordingSink()
    _, _, _, outputs = sample(device_threads, computed=range(6), sink=sink, steps=6)
    assert [step for step, _ in sink.records] == list(range(6)) and sink.finished == [True]
    for (step, recorded), out in zip(sink.records, outputs):
        assert set(recorded) == {"cond", "uncond"}
        assert torch.equal(recorded["cond"], out[0]) and torch.equal(recorded["uncond"], out[1])


def test_a_device_thread_still_running_after_the_run_ended_touches_nothing():
    grid = StepGrid.uniform(6)
    sink = RecordingSink()
    run = make_run(grid, CountingPlan(range(6)), sink)
    ex = Executor()
    call(run, ex, grid.sigmas[0], [COND], [0])
    entered, release = threading.Event(), threading.Event()

    def slow(x, to):  # the straggler: its pass outlives the run (the host raised on another device's error)
        entered.set()
        release.wait(5)
        return transformer(x, to)

    result = {}
    straggler = threading.Thread(target=lambda: result.setdefault("out", call(run, slow, grid.sigmas[1], [COND], [0])))
    straggler.start()
    assert entered.wait(5)
    run.finish(False)  # the run failed on another thread
    calls_at_end = run.report.transformer_calls
    release.set()
    straggler.join()
    assert run.closed and result["out"].shape == (2, 1, 2, 2)
    assert run.report.transformer_calls == calls_at_end and run.history_bytes == 0
    assert sink.records == [] and sink.finished == [False]  # a failed run records nothing
    out = call(run, ex, grid.sigmas[2], [COND], [0])  # any later call passes straight through
    assert torch.equal(out, transformer(torch.zeros(2, 1, 2, 2), {"sigmas": torch.tensor([grid.sigmas[2]]),
                                                                 "cond_or_uncond": [0]}))
    assert run.report.transformer_calls == calls_at_end and run.history_bytes == 0


def test_forecasts_are_returned_on_the_calling_threads_device():
    grid = StepGrid.uniform(4)
    run = make_run(grid, CountingPlan({0}))
    ex = Executor()
    call(run, ex, grid.sigmas[0], [COND], [0])
    meta = {"sigmas": torch.tensor([grid.sigmas[1]]), "uuids": [COND], "cond_or_uncond": [0], RUN_KEY: run}
    out = l2p_diffusion_model_wrapper(ex, torch.empty(2, 1, 2, 2, device="meta"), meta)
    assert out.device.type == "meta" and ex.calls == 1  # forecast (not computed), moved to the caller's device


@pytest.mark.parametrize("layout", ["batched", "separate"])
def test_a_conditioning_that_changes_during_the_run_is_computed_until_its_history_is_current(layout):
    # timestep-ranged positive prompts: A for steps 0-3, B for 4-6, A again from 7 (uncond throughout)
    grid = StepGrid.uniform(10)
    plan = CountingPlan({0, 1, 3, 8}, warmup=1)
    run = make_run(grid, plan)
    ex = Executor()
    a, b = uuid.uuid4(), uuid.uuid4()
    for s in range(10):
        positive = b if 4 <= s <= 6 else a
        if layout == "batched":
            call(run, ex, grid.sigmas[s], [UNCOND, positive], [1, 0])
        else:
            call(run, ex, grid.sigmas[s], [UNCOND], [1])
            call(run, ex, grid.sigmas[s], [positive], [0])
    forced = [(step, reason) for step, _, reason in run.report.forced if step != 0]  # step 0: warm-up
    # step 4: B is new and is computed. Step 7: A is back; it was computed at 3, still the latest planned step, so
    # its history is current and it is forecast. B never needs more than its own computed step 4.
    assert forced == [(4, ForcedReason.NO_HISTORY.value)]
    assert run.report.stream("cond#2").computed == [4] and run.report.stream("cond#2").forecast == [5, 6]
    assert run.report.stream("cond").forecast == [2, 7, 9] and run.report.stream("cond").computed == [0, 1, 3, 8]
    assert run.report.stream("uncond").computed == ([0, 1, 3, 4, 8] if layout == "batched" else [0, 1, 3, 8])


def test_a_stream_that_missed_the_latest_computed_step_is_computed():
    # B is active at steps 2-3 and 6-7; the plan computes step 4 while B is away
    grid = StepGrid.uniform(9)
    run = make_run(grid, CountingPlan({0, 1, 2, 4}, warmup=1))
    ex = Executor()
    a, b = uuid.uuid4(), uuid.uuid4()
    for s in range(9):
        call(run, ex, grid.sigmas[s], [a], [0])
        if s in (2, 3, 6, 7):
            call(run, ex, grid.sigmas[s], [b], [0])
    forced = {(step, reason) for step, _, reason in run.report.forced}
    assert (6, ForcedReason.STALE_HISTORY.value) in forced  # B's history ends at 2, the run computed 4 since
    assert run.report.stream("cond#2").computed == [2, 6] and run.report.stream("cond#2").forecast == [3, 7]
    assert run.report.stream("cond").forecast == [3, 5, 6, 7, 8]


def test_each_call_may_get_its_own_copy_of_transformer_options():
    """ComfyUI 0.33's _apply_model passes a shallow copy of transformer_options (#13618): nothing may depend on
    writing into it, and the caller's dict is never changed."""
    grid = StepGrid.uniform(8)
    runs = [make_run(grid, CountingPlan({0, 1, 4})) for _ in range(2)]
    outs = []
    for copy_per_call, run in zip((False, True), runs):
        shared = {"uuids": [COND], "cond_or_uncond": [0], RUN_KEY: run}
        ex, got = Executor(), []
        for s in range(8):
            shared["sigmas"] = torch.tensor([grid.sigmas[s]])
            before = set(shared)
            to = dict(shared) if copy_per_call else shared
            got.append(l2p_diffusion_model_wrapper(ex, torch.zeros(2, 1, 2, 2), to))
            assert set(to) == before
        outs.append(torch.stack(got))
    assert torch.equal(outs[0], outs[1])
