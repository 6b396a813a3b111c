"""The schedule search's error-growth model: the weights, what a calibration file records, and that L2P Cache
plans with the recorded power while a file made before (no record) keeps the dsigma-only schedule."""
import dataclasses

import numpy as np
import pytest

from comfyui_l2p.benchmark import harness
from comfyui_l2p.benchmark.__main__ import calibrate
from comfyui_l2p.benchmark.harness import Batch, Scenario
from comfyui_l2p.nodes import l2p_setup, setups
from comfyui_l2p.predictors import load_predictor_file, save_predictor_file, stats_from_file
from comfyui_l2p.predictors.files.update import extend_calibration_file
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError
from comfyui_l2p.predictors.schedules import error_growth
from comfyui_l2p.predictors.schedules.error_growth import ErrorGrowth
from comfyui_l2p.predictors.schedules.optimizer import default_step_weights
from comfyui_l2p.predictors.schedules.placements import optimized_schedule

from predictor_cases import shifted_grid

STEPS = 24
SPEEDUP = 4.0


def test_weights_are_a_power_of_dsigma():
    grid = shifted_grid(20)
    np.testing.assert_array_equal(error_growth.LEGACY.step_weights(grid), default_step_weights(grid))
    d = np.abs(grid.dsigma())
    np.testing.assert_allclose(ErrorGrowth(0.25).step_weights(grid), d ** 0.25, rtol=1e-15)
    np.testing.assert_array_equal(ErrorGrowth(0).step_weights(grid), np.ones(20))
    for bad in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="power must be a number in"):
            ErrorGrowth(bad)


def test_the_recorded_power_per_guidance_and_the_legacy_default():
    meta = error_growth.to_metadata(ErrorGrowth(0.3), ErrorGrowth(0.6))
    assert error_growth.for_guidance(False, meta) == ErrorGrowth(0.3)
    assert error_growth.for_guidance(True, meta) == ErrorGrowth(0.6)
    assert error_growth.for_guidance(True, {}) is error_growth.LEGACY
    with pytest.raises(ValueError, match="my.safetensors: metadata 'schedule_dsigma_power' must be a number"):
        error_growth.for_guidance(False, {error_growth.POWER_KEY: "steep"}, "my.safetensors")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    model = harness.load_model()
    path = tmp_path_factory.mktemp("growth") / "cal.safetensors"
    calibrate(model, Scenario("t", 1.0, steps=STEPS), Batch((1, 2, 3), (0, 1, 2)), path, speedup=4.0)
    return model, path


def planned(model, path, options=setups.FitOptions()):
    holder = l2p_setup.l2p_cache_holder(
        str(path), speedup=SPEEDUP, placement="optimized", warmup=1, compute_last=False, residual_budget=0.05,
        history_device="model device", mode="direct", grid_policy="refuse", options=options)
    return harness.sample_with(model, Scenario("t", 1.0, steps=STEPS), Batch((4,), (7,)), holder).report.planned_computed


def test_calibration_records_the_default_and_the_cache_plans_with_it(calibrated, tmp_path):
    model, path = calibrated
    pf = load_predictor_file(str(path))
    assert error_growth.for_guidance(False, pf.extra) == error_growth.DEFAULT
    assert error_growth.for_guidance(True, pf.extra) == error_growth.DEFAULT_CFG
    stats = stats_from_file(pf, str(path))
    k = round(STEPS / SPEEDUP)
    search = lambda growth: optimized_schedule(stats.gram, stats.grid, k, warmup=1, ridge=pf.ridge_lambda,  # noqa: E731
                                               step_weights=growth.step_weights(stats.grid))
    new, legacy = search(error_growth.DEFAULT), search(error_growth.LEGACY)
    assert new != legacy  # the case tells the two error models apart
    assert planned(model, path) == new
    # the same statistics without the record: a file made before the growth model keeps its schedule
    old = tmp_path / "old.safetensors"
    save_predictor_file(str(old), dataclasses.replace(pf, extra={}))
    assert planned(model, old) == legacy
    assert planned(model, old, setups.FitOptions(growth=error_growth.DEFAULT)) == new  # the option overrides
    # a refit (L2P Calibrate adds a run) adopts the current model, other extra metadata kept
    save_predictor_file(str(old), dataclasses.replace(pf, extra={"note": "kept"}))
    extend_calibration_file(str(old), stats, model_family="flux", model_class="Flux", latent_channels=16,
                            ridge=1e-6, fit_mode="teacher-forced", created_by="test",
                            extra=error_growth.to_metadata())
    refit = load_predictor_file(str(old))
    assert refit.extra["note"] == "kept" and error_growth.for_guidance(False, refit.extra) == error_growth.DEFAULT


def test_a_bad_record_is_refused_naming_the_file(calibrated, tmp_path):
    model, path = calibrated
    bad = tmp_path / "bad.safetensors"
    pf = load_predictor_file(str(path))
    save_predictor_file(str(bad), dataclasses.replace(pf, extra={error_growth.POWER_KEY: "2"}))
    with pytest.raises(PredictorFileError, match="bad.safetensors: metadata 'schedule_dsigma_power'"):
        planned(model, bad)
