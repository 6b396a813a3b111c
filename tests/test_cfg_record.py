"""The CFG record of a calibration file (cfg_mode): written by L2P Calibrate, read by L2P Cache."""
import pytest

from comfyui_l2p.benchmark import harness
from comfyui_l2p.benchmark.__main__ import calibrate as calibrate_over
from comfyui_l2p.benchmark.harness import Batch, Scenario
from comfyui_l2p.nodes import l2p_setup
from comfyui_l2p.nodes.cfg_record import calibrated_cfg_scales, cfg_record
from comfyui_l2p.predictors import load_predictor_file


def test_cfg_record_lists_the_scales_and_reads_them_back():
    assert cfg_record(None, ("cond",), 1.0) == "none"
    assert cfg_record(None, ("cond", "uncond"), 3.0) == "cfg 3"
    assert cfg_record("cfg 3", ("cond", "uncond"), 1.5) == "cfg 1.5,3"
    assert cfg_record("cfg 1.5,3", ("cond", "uncond"), 3.0) == "cfg 1.5,3"
    assert cfg_record("cfg 3", ("cond", "uncond"), None) == "cfg 3,?"
    assert calibrated_cfg_scales("cfg 1.5,3") == ("1.5", "3")
    assert calibrated_cfg_scales("none") == () and calibrated_cfg_scales("cfg") == () and calibrated_cfg_scales("") == ()


@pytest.fixture(scope="module")
def model():
    return harness.load_model()


def calibrate(model, path, cfg_scale):
    calibrate_over(model, Scenario("t", cfg_scale, steps=12), Batch((1, 2), (0, 1)), path, speedup=4.0)


def cache_report(model, path, cfg_scale):
    holder = l2p_setup.l2p_cache_holder(
        str(path), speedup=3.0, placement="optimized", warmup=1, compute_last=False, residual_budget=0.05,
        history_device="model device", mode="direct", grid_policy="refuse")
    return harness.sample_with(model, Scenario("t", cfg_scale, steps=12), Batch((3,), (5,)), holder).report


def test_calibrate_records_its_scales_and_the_cache_reports_another_one(model, tmp_path):
    path = tmp_path / "cfg.safetensors"
    calibrate(model, path, 3.0)
    assert load_predictor_file(str(path)).cfg_mode == "cfg 3"
    calibrate(model, path, 5.0)
    assert load_predictor_file(str(path)).cfg_mode == "cfg 3,5"
    assert not any("calibrated at CFG" in n for n in cache_report(model, path, 5.0).notes)
    notes = cache_report(model, path, 4.0).notes
    assert any("calibrated at CFG 3, 5, sampling at CFG 4" in n for n in notes), notes


def test_a_file_without_cfg_records_none(model, tmp_path):
    path = tmp_path / "nocfg.safetensors"
    calibrate(model, path, 1.0)
    assert load_predictor_file(str(path)).cfg_mode == "none"
