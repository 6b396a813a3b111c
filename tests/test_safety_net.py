"""The per-run safety net: its margins are each calibration trajectory's exact residual, the plan computes the next
step when a residual exceeds the margin (never more than max_extra times), and a real run through the run state
reports the passes it added."""
import numpy as np
import pytest

from comfyui_l2p.benchmark import harness
from comfyui_l2p.benchmark.__main__ import calibrate
from comfyui_l2p.benchmark.harness import Batch, Scenario
from comfyui_l2p.nodes import l2p_setup, setups
from comfyui_l2p.nodes.plans import FixedPlan, SafetyNetPlan
from comfyui_l2p.nodes.report import ForcedReason, RunReport
from comfyui_l2p.predictors import load_predictor_file
from comfyui_l2p.predictors.calibration import fit
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError
from comfyui_l2p.predictors.schedules.safety_net import ResidualMargins, SafetyNet

STEPS = 16


def materialised(seed: int, n: int = 4, steps: int = 10, dim: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(1, 0, steps)[None, :, None]
    return np.cos(3 * t * rng.normal(size=(n, 1, dim))) + 0.05 * rng.normal(size=(n, steps, dim))


def test_margins_are_each_trajectorys_exact_residual_under_the_runs_weights():
    x = materialised(0)
    grams = np.einsum("nsd,ntd->nst", x, x)
    margins = ResidualMargins({"cond": grams.sum(0)}, {"cond": grams}, ridge=1e-4, net=SafetyNet(margin=1.5,
                                                                                                   quantile=1.0))
    step, computed = 6, (0, 2, 4)
    w = fit.direct_weights(grams.sum(0), step, computed, 1e-4)
    brute = [np.linalg.norm(traj[step] - w @ traj[list(computed)]) / np.linalg.norm(traj[step]) for traj in x]
    np.testing.assert_allclose(margins.normal_residuals(step, computed)["cond"], brute, rtol=1e-9)
    assert margins.threshold(step, computed) == pytest.approx(1.5 * max(brute), rel=1e-9)
    median = ResidualMargins({"cond": grams.sum(0)}, {"cond": grams}, 1e-4, SafetyNet(quantile=0.5))
    assert median.threshold(step, computed) == pytest.approx(np.median(brute), rel=1e-9)


class FixedMargin:
    def __init__(self, value: float, max_extra: int = 2) -> None:
        self.value, self.net = value, SafetyNet(max_extra=max_extra)

    def threshold(self, step, computed):
        return self.value


def drive(plan, residual_of, num_steps=12, streams=1):
    """What RunState does: decide each step in order; a computed step with history reports its residual, once per
    stream when the streams arrive in separate calls."""
    computed = []
    for step in range(num_steps):
        compute, reason = plan.decide(step)
        if compute:
            if computed:
                for _ in range(streams):
                    plan.report_residual(step, residual_of(step))
            computed.append((step, reason))
    return computed


def test_the_net_computes_the_next_step_above_the_margin_and_caps_the_extra_passes():
    report = RunReport("L2P Cache", "test", 12)
    plan = SafetyNetPlan(FixedPlan(frozenset({0, 4, 8}), warmup=1), FixedMargin(0.1, max_extra=2), report)
    computed = drive(plan, lambda step: 0.5)  # every residual is above the margin
    assert computed == [(0, ForcedReason.WARMUP), (4, None), (5, ForcedReason.SAFETY_NET),
                        (6, ForcedReason.SAFETY_NET), (8, None)]
    assert len([n for n in report.notes if n.startswith("safety net")]) == 2
    assert plan.planned == (0, 4, 8)
    twice = RunReport("L2P Cache", "test", 12)  # cond and uncond report the same step separately: one trigger
    plan = SafetyNetPlan(FixedPlan(frozenset({0, 4, 8}), warmup=1), FixedMargin(0.1, max_extra=1), twice)
    assert [s for s, _ in drive(plan, lambda step: 0.5, streams=2)] == [0, 4, 5, 8] and len(twice.notes) == 1


def test_below_the_margin_or_before_a_planned_step_nothing_is_added():
    report = RunReport("L2P Cache", "test", 12)
    quiet = SafetyNetPlan(FixedPlan(frozenset({0, 4, 8}), warmup=1), FixedMargin(1.0), report)
    assert [s for s, _ in drive(quiet, lambda step: 0.5)] == [0, 4, 8]
    busy = SafetyNetPlan(FixedPlan(frozenset({0, 4, 5, 8}), warmup=1), FixedMargin(0.1, max_extra=1), report)
    assert [s for s, _ in drive(busy, lambda step: 0.5)] == [0, 4, 5, 6, 8]  # 5 was planned: the net adds 6
    with pytest.raises(ValueError, match="max_extra"):
        SafetyNet(max_extra=-1)
    with pytest.raises(ValueError, match="quantile"):
        SafetyNet(quantile=0)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    model = harness.load_model()
    path = tmp_path_factory.mktemp("net") / "cal.safetensors"
    calibrate(model, Scenario("t", 3.0, steps=STEPS), Batch((1, 2), (0, 1)), path, speedup=4.0)
    return model, path


def cache_run(model, path, net):
    holder = l2p_setup.l2p_cache_holder(
        str(path), speedup=4.0, placement="optimized", warmup=1, compute_last=False, residual_budget=0.05,
        history_device="model device", mode="direct", grid_policy="refuse",
        options=setups.FitOptions(safety_net=net))
    return harness.sample_with(model, Scenario("t", 3.0, steps=STEPS), Batch((4,), (9,)), holder).report


def test_a_cfg_run_reports_the_passes_the_net_added(calibrated):
    model, path = calibrated
    assert load_predictor_file(str(path)).trajectories["trajectory_keys"].shape == (2,)  # batch rows count
    quiet = cache_run(model, path, SafetyNet(margin=1e6))
    assert quiet.safety_net_passes == 0 and quiet.transformer_calls == 2 * len(quiet.planned_computed)
    eager = cache_run(model, path, SafetyNet(margin=1e-9, max_extra=2))  # every residual is above the margin
    assert eager.planned_computed == quiet.planned_computed
    assert eager.safety_net_passes == 2
    assert eager.transformer_calls == quiet.transformer_calls + 2 * 2  # cond and uncond, two extra steps each
    assert "safety net" in eager.summary()


def test_a_file_without_per_trajectory_statistics_is_refused_with_the_fix(calibrated, tmp_path):
    import dataclasses

    from comfyui_l2p.predictors import save_predictor_file

    model, path = calibrated
    old = tmp_path / "old.safetensors"
    save_predictor_file(str(old), dataclasses.replace(load_predictor_file(str(path)), trajectories={}))
    with pytest.raises(PredictorFileError, match="old.safetensors: .*per-trajectory statistics.*L2P Calibrate"):
        cache_run(model, old, SafetyNet())
