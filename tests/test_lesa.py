"""LESA: untrained equals its baseline, it learns a non-linear recurrence, stage routing, file round trip, and the
engine contract that nodes/run_calls.py relies on."""
import numpy as np
import pytest
import torch

from comfyui_l2p.predictors.engine.linear_predictor import ForecastError
from comfyui_l2p.predictors.engine.history import ForecastEngine
from comfyui_l2p.predictors.forecasters.fora import Fora
from comfyui_l2p.predictors.engine.grid import StepGrid, TimeAxis
from comfyui_l2p.predictors.forecasters.lesa.model import Baseline, LesaModel, lesa_from_file, stage_edges, with_lesa
from comfyui_l2p.predictors.forecasters.lesa.engine import LesaEngine
from comfyui_l2p.predictors.forecasters.lesa.train import LesaTrainConfig, train_lesa, training_schedules
from comfyui_l2p.predictors.files.predictor_file import PredictorFile, PredictorFileError
from comfyui_l2p.predictors.files.storage import load_predictor_file, save_predictor_file
from comfyui_l2p.predictors.schedules.placements import even_schedule
from comfyui_l2p.predictors.forecasters.taylorseer import TaylorSeer
from comfyui_l2p.predictors.calibration.trajectory_sample import TrajectorySample

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def shifted_grid(num_steps: int, shift: float = 3.0) -> StepGrid:
    t = np.linspace(1.0, 0.0, num_steps + 1)
    return StepGrid(tuple(shift * t / (1.0 + (shift - 1.0) * t)))


GRID = shifted_grid(20)
SMALL_TRAINING = LesaTrainConfig(phase1_iters=300, phase2_iters=100, batch=128, seed=0)


def tanh_trajectories(count: int, grid: StepGrid, seed: int, slope: float = 4.0) -> np.ndarray:
    """float32 [count, S]: F(sigma) = tanh(slope * sigma + b), b random per element: a saturating curve whose
    bend sits at a different sigma for every element. It solves dF/dsigma = slope * (1 - F^2), a non-linear
    recurrence a linear extrapolation overshoots wherever the curve bends."""
    rng = np.random.default_rng(seed)
    b = rng.uniform(-4.0, 2.0, (count, 1))
    return np.tanh(slope * grid.array[:-1][None] + b).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    values = tanh_trajectories(1024, GRID, seed=0)[:, None, :]
    sample = TrajectorySample(values, GRID.array, ("cond",), values.shape[0])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: extra threads only contend on a shared CI machine
    try:
        model, report = train_lesa(sample, config=SMALL_TRAINING)
    finally:
        torch.set_num_threads(threads)
    return sample, model, report


def run_schedule(engine, values: torch.Tensor, schedule) -> torch.Tensor:
    """[S, E] outputs of one run over elements ``values`` [E, S]: truths at computed steps, forecasts elsewhere
    (history only from computed steps, as RunState feeds it)."""
    outs = []
    for step in range(values.shape[1]):
        if step in schedule:
            engine.observe("x", step, values[:, step])
            outs.append(values[:, step])
        else:
            outs.append(engine.forecast("x", step))
    return torch.stack(outs)


# ---------------------------------------------------------------------------------------------- baseline
@pytest.mark.parametrize("baseline,reference", [(Baseline.LINEAR, TaylorSeer(order=1, axis=TimeAxis.SIGMA)),
                                                (Baseline.HOLD, Fora())])
def test_untrained_lesa_is_exactly_its_linear_baseline(baseline, reference):
    model = LesaModel.untrained(GRID.array, baseline=baseline, seed=3)
    lesa, linear = LesaEngine(model, GRID), ForecastEngine(reference, GRID)
    gen = torch.Generator().manual_seed(0)
    for step in (0, 2, 3, 7):
        out = torch.randn(2, 3, 5, generator=gen)
        if step > 0:  # from one computed output on (LINEAR then holds it), then from two and three
            for target in (step + 1, 12, 19):
                torch.testing.assert_close(lesa.forecast("s", target), linear.forecast("s", target),
                                           rtol=1e-5, atol=1e-5)
        lesa.observe("s", step, out)
        linear.observe("s", step, out)


# ---------------------------------------------------------------------------------------------- learning
def test_lesa_learns_a_nonlinear_curve_much_better_than_its_linear_baseline(trained):
    _, model, report = trained
    # the trainer's own held-out numbers
    assert report.forecast_error_lesa < 0.5 * report.forecast_error_baseline, report
    assert report.final_error_lesa < 0.5 * report.final_error_baseline, report
    # and through the runtime engine, on fresh elements and schedules of speedup 4 and 5
    held_out = torch.from_numpy(tanh_trajectories(2000, GRID, seed=99))
    truth = held_out.T  # [S, E]
    err = {"lesa": 0.0, "linear": 0.0}
    final = {"lesa": 0.0, "linear": 0.0}
    dsig = torch.as_tensor(GRID.dsigma(), dtype=torch.float32)[:, None]
    for schedule in [(0, 1, 5, 10, 15), (0, 1, 4, 8, 12, 16)]:
        for name, engine in (("lesa", LesaEngine(model, GRID, chunk_elements=512)),
                             ("linear", ForecastEngine(TaylorSeer(order=1, axis=TimeAxis.SIGMA), GRID))):
            outs = run_schedule(engine, held_out, schedule)
            err[name] += float(((outs - truth) ** 2).sum())
            final[name] += float((((outs - truth) * dsig).sum(0) ** 2).sum())
    print(f"held-out squared error lesa/linear: per step {err['lesa'] / err['linear']:.3f}, "
          f"final latent {final['lesa'] / final['linear']:.3f}; report {report}")
    assert err["lesa"] < 0.25 * err["linear"] and final["lesa"] < 0.25 * final["linear"]


def test_training_is_deterministic():
    values = tanh_trajectories(64, GRID, seed=1)[:, None, :]
    sample = TrajectorySample(values, GRID.array, ("cond",), 64)
    config = LesaTrainConfig(phase1_iters=5, phase2_iters=5, batch=16, seed=7)
    a, _ = train_lesa(sample, config=config)
    b, _ = train_lesa(sample, config=config)
    for pa, pb in zip(a.experts, b.experts):
        for name in pa:
            assert torch.equal(pa[name], pb[name])
    assert any(float(p.abs().max()) > 0 for p in (a.experts[0]["layer1.base"], a.experts[0]["layer1.spline"]))


def test_training_schedules_are_the_runtime_ones():
    schedules = training_schedules(20, (4, 5), warmup=2)
    expected = {even_schedule(20, k, warmup=2, compute_last=last) for k in (4, 5) for last in (False, True)}
    assert set(schedules) == expected and len(schedules) == 4


# ---------------------------------------------------------------------------------------------- stages
def constant_experts_model(grid: StepGrid) -> LesaModel:
    """Three single-layer experts; expert e outputs e + 1 wherever input 0 lies in the spline range.

    Input 0 is the last value / value_scale (standardisation is the identity): with zero history it is 0, and
    cubic B-splines sum to 1 inside their grid, so coefficients all equal to e + 1 give the constant e + 1."""
    base = LesaModel.untrained(grid.array, num_experts=3, hidden=0, baseline=Baseline.HOLD)
    experts = []
    for e, params in enumerate(base.experts):
        params = {k: torch.zeros_like(v) for k, v in params.items()}
        params["layer0.spline"][0, 0, :] = e + 1.0
        experts.append(params)
    return LesaModel(base.history, base.baseline, base.kan, base.stage_upper, tuple(experts), base.feature_shift,
                     base.feature_scale, 1.0, 1.0)


def test_the_expert_is_chosen_by_the_target_sigma():
    model = constant_experts_model(GRID)
    evals = GRID.array[:-1]
    assert model.stage_upper == stage_edges(GRID.array, 3)
    expected = [model.expert_of(float(s)) for s in evals]
    assert expected == [0] * 7 + [1] * 6 + [2] * 7  # round(20/3) = 7, round(40/3) = 13
    # between two grid sigmas the edge is the midpoint; outside the grid the end stages take over
    assert model.expert_of(float(evals[6] + 1e-6)) == 0 and model.expert_of(float(evals[7] - 1e-6)) == 1
    assert model.expert_of(10.0) == 0 and model.expert_of(-1.0) == 2
    engine = LesaEngine(model, GRID)
    engine.observe("s", 0, torch.zeros(4))
    for target in range(1, 20):
        forecast = engine.forecast("s", target)
        torch.testing.assert_close(forecast, torch.full((4,), float(expected[target] + 1)))


# ---------------------------------------------------------------------------------------------- the file
def test_the_file_round_trip_keeps_lesa_and_its_forecasts(trained, tmp_path):
    sample, model, _ = trained
    pf = PredictorFile(steps=GRID.num_steps, model_family="flux", sigmas=GRID.array, paper_matrix=np.eye(20))
    pf = with_lesa(pf, model, sample.to_arrays())
    path = save_predictor_file(tmp_path / "lesa.safetensors", pf)
    loaded = load_predictor_file(path)
    back = lesa_from_file(loaded, source=str(path))
    assert back.stage_upper == pytest.approx(model.stage_upper, rel=1e-6)
    assert TrajectorySample.from_arrays(loaded.lesa, loaded.roles).size == sample.size
    gen = torch.Generator().manual_seed(5)
    hist = [torch.randn(3, 7, generator=gen) for _ in range(3)]
    engines = [LesaEngine(model, GRID), LesaEngine(back, GRID)]
    for engine in engines:
        for step, out in zip((0, 1, 4), hist):
            engine.observe("s", step, out)
    for target in (5, 9, 15, 19):
        assert torch.equal(engines[0].forecast("s", target), engines[1].forecast("s", target))
    # the trained parameters matter (a round trip that dropped them would give the baseline)
    baseline = ForecastEngine(TaylorSeer(order=1, axis=TimeAxis.SIGMA), GRID)
    for step, out in zip((0, 1, 4), hist):
        baseline.observe("s", step, out)
    assert not torch.allclose(engines[1].forecast("s", 9), baseline.forecast("s", 9), atol=1e-3)


def test_the_loader_names_what_is_wrong(trained):
    _, model, _ = trained
    arrays = model.to_arrays()
    pf = PredictorFile(steps=GRID.num_steps, model_family="flux", paper_matrix=np.eye(20))
    with pytest.raises(PredictorFileError, match="holds no trained LESA model"):
        lesa_from_file(pf, source="'x.safetensors'")
    broken = dict(arrays)
    del broken["model.expert2.layer1.spline"]
    with pytest.raises(PredictorFileError, match=r"'lesa.model.expert2.layer1.spline' is missing"):
        LesaModel.from_arrays(broken, source="'x.safetensors'")
    broken = dict(arrays, **{"model.feature_scale": np.ones(5, np.float32)})
    with pytest.raises(PredictorFileError, match=r"feature_scale' must be \[7\], found \[5\]"):
        LesaModel.from_arrays(broken)
    config = arrays["model.config"].copy()
    config[0] = 9
    with pytest.raises(PredictorFileError, match="expected LESA format 1, found 9"):
        LesaModel.from_arrays(dict(arrays, **{"model.config": config}))


# ---------------------------------------------------------------------------------------------- engine contract
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_forecast_keeps_shape_dtype_device(trained, device, dtype):
    _, model, _ = trained
    engine = LesaEngine(model, GRID, chunk_elements=50)
    outs = [torch.randn(2, 4, 3, 5).to(device, dtype) for _ in range(3)]
    for step, out in zip((0, 1, 3), outs):
        engine.observe("s", step, out)
    pred = engine.forecast("s", 6)
    assert pred.shape == (2, 4, 3, 5) and pred.dtype == dtype and pred.device.type == device
    # chunking changes nothing
    whole = LesaEngine(model, GRID, chunk_elements=1 << 20)
    for step, out in zip((0, 1, 3), outs):
        whole.observe("s", step, out)
    torch.testing.assert_close(pred, whole.forecast("s", 6))


def test_streams_are_independent_and_history_is_pruned(trained):
    _, model, _ = trained
    engine, alone = LesaEngine(model, GRID), LesaEngine(model, GRID)
    for step in range(5):
        out = torch.full((6,), 0.1 * step)
        engine.observe("a", step, out)
        alone.observe("a", step, out)
        engine.observe("b", step, torch.randn(6))
    assert engine.computed_steps("a") == (2, 3, 4) and engine.predictor.history_limit == 3
    assert engine.predictor.name == "lesa"
    assert torch.equal(engine.forecast("a", 8), alone.forecast("a", 8))
    assert engine.history_bytes() == 2 * 3 * 6 * 4


def test_forecasting_before_observation_or_backwards_raises(trained):
    _, model, _ = trained
    engine = LesaEngine(model, GRID)
    with pytest.raises(ForecastError, match="before any step was computed"):
        engine.forecast("a", 3)
    engine.observe("a", 4, torch.zeros(3))
    with pytest.raises(ForecastError, match="only look ahead"):
        engine.forecast("a", 4)
    with pytest.raises(ForecastError, match="outside"):
        engine.forecast("a", 20)
    assert not engine.has_history("b") and engine.computed_steps("b") == ()


def test_reset_equals_fresh_and_residual_measures_the_forecast(trained):
    _, model, _ = trained
    used, fresh = LesaEngine(model, GRID), LesaEngine(model, GRID)
    for step in range(4):
        used.observe("a", step, torch.randn(5))
    used.reset()
    assert not used.has_history("a") and used.history_bytes() == 0
    truth = torch.linspace(-1, 1, 5)
    for engine in (used, fresh):
        assert engine.residual("a", 0, truth) is None
        engine.observe("a", 0, 0.5 * truth)
        engine.observe("a", 1, 0.6 * truth)
    assert torch.equal(used.forecast("a", 5), fresh.forecast("a", 5))
    pred = fresh.forecast("a", 2)
    expected = float(torch.linalg.vector_norm(pred - truth) / torch.linalg.vector_norm(truth))
    assert fresh.residual("a", 2, truth) == pytest.approx(expected)


def test_layout_change_resets_the_stream_and_offload_keeps_history_on_cpu(trained):
    _, model, _ = trained
    engine = LesaEngine(model, GRID, offload=True)
    engine.observe("a", 0, torch.zeros(4))
    engine.observe("a", 1, torch.zeros(2, 2))
    assert engine.computed_steps("a") == (1,)
    assert all(t.device.type == "cpu" for t in engine.streams["a"].outputs)
