"""What the nodes' inputs say (nodes/tooltips.py) is true for each node: a node's placement tooltip describes only
the placements it offers, inputs that apply to one choice say so first, every option has a text, and the Forecast
Cache default is the method the benchmark output in docs/ ranks first."""
from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from conftest import ROOT

from comfyui_l2p.nodes import learn_setup, setups, tooltips
from comfyui_l2p.predictors.forecasters.registry import ForecastMethod
from comfyui_l2p.predictors.schedules.placements import Placement


@pytest.mark.parametrize("offered", [setups.L2P_PLACEMENTS, setups.FORECAST_PLACEMENTS], ids=["L2P", "Forecast"])
def test_placement_tooltip_describes_exactly_the_offered_placements(offered):
    text = tooltips.placement_tooltip(offered)
    for placement in Placement:
        assert (f"{placement.value}: " in text) == (placement.value in offered), placement


def test_forecast_cache_does_not_offer_optimized():
    assert Placement.OPTIMIZED.value not in setups.FORECAST_PLACEMENTS
    assert "optimized" not in tooltips.placement_tooltip(setups.FORECAST_PLACEMENTS)


def test_every_method_and_placement_has_a_text():
    assert set(tooltips.METHOD_TEXTS) == set(ForecastMethod)
    assert set(tooltips.PLACEMENT_TEXTS) == set(Placement)
    for method in ForecastMethod:
        assert tooltips.METHOD_TEXTS[method].startswith(method.value.split(" (")[0])
    assert "(default)" in tooltips.METHOD_TEXTS[tooltips.DEFAULT_FORECAST_METHOD]
    assert sum("(default)" in text for text in tooltips.METHOD_TEXTS.values()) == 1


@pytest.mark.parametrize("text,scope", [
    (tooltips.SPECTRUM_DEGREE, "Spectrum only"), (tooltips.SPECTRUM_LAMBDA, "Spectrum only"),
    (tooltips.SPECTRUM_BLEND, "Spectrum only"), (tooltips.RESIDUAL_BUDGET, "adaptive placement only"),
    (tooltips.LEARNING, f"{learn_setup.AUTO_FILE} only"), (tooltips.LEARNING_IMAGES, f"{learn_setup.AUTO_FILE} only"),
    (tooltips.ON_POLICY_SPEEDUP, "on-policy mode only"),
])
def test_inputs_for_one_choice_say_so_first(text, scope):
    assert text.startswith(scope + ":") or text.startswith(scope + " ")


def test_speedup_tooltip_says_the_count_is_rounded():
    assert "round(steps / speedup)" in tooltips.SPEEDUP
    assert "30 steps at 5.56 compute 5 (6.00x)" in tooltips.SPEEDUP


def test_learning_tooltip_quotes_the_codes_numbers():
    assert f"one run in {learn_setup.KEEP_LEARNING_EVERY}" in tooltips.LEARNING
    assert f"holds {learn_setup.TOP_UP_TRAJECTORIES} images" in tooltips.LEARNING


def _readme_numbers():
    spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "scripts" / "readme_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("readme_numbers", module)
    spec.loader.exec_module(module)
    return sys.modules["readme_numbers"]


TRAINING_FREE = {"FORA": ForecastMethod.FORA, "TaylorSeer-1": ForecastMethod.TAYLOR1,
                 "TaylorSeer-2": ForecastMethod.TAYLOR2, "Spectrum": ForecastMethod.SPECTRUM,
                 "FoCa": ForecastMethod.FOCA}


@pytest.mark.parametrize("folder", ["benchmark", "benchmark-qwen"])
def test_forecast_default_has_the_best_training_free_mean_at_4_55_and_5_56(folder):
    """The claim of the method tooltip, the README and the Forecast Cache template, read from the benchmark output."""
    numbers = _readme_numbers()
    data = numbers.benchmark_psnr(folder)
    for scenario in numbers.SCENARIOS:
        for column in (0, 1):  # 4.55x, 5.56x
            best = max(TRAINING_FREE, key=lambda v: data[scenario][v][column].mean)
            assert TRAINING_FREE[best] is tooltips.DEFAULT_FORECAST_METHOD, (folder, scenario, column, best)


@pytest.mark.comfy
def test_a_dynamic_combo_for_spectrum_would_load_saved_workflows_wrong(comfy):
    """Why Forecast Cache's Spectrum inputs are hidden by the pack's extension (web/input_scopes.js, which keeps every
    widget in place) and not made a DynamicCombo's (README, 'Not calibrated'): a saved
    node restores widgets_values by position, and a DynamicCombo inserts its option's inputs right after itself
    (scripts/workflow_defs.py models the frontend). A node saved with method Spectrum today would load its
    time_axis, speedup, ... into the Spectrum inputs."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_workflows
    from workflow_defs import DYNAMIC_COMBO, loaded_widgets

    nodes, pack_ids = make_workflows.load_comfyui()
    from workflow_defs import read_node_def

    today = read_node_def("L2PForecastCache", nodes.NODE_CLASS_MAPPINGS, pack_ids)
    spectrum = [i for i in today.inputs if i.name.startswith("spectrum_")]
    assert len(spectrum) == 3
    spec_of = {i.name: [i.type, dict(i.options)] for i in spectrum}
    method = today.input("method")
    as_dynamic = dataclasses.replace(method, type=DYNAMIC_COMBO, options={"default": method.default, "options": [
        {"key": key, "inputs": {"required": spec_of} if key == ForecastMethod.SPECTRUM.value else {}}
        for key in method.choices]})
    dynamic = dataclasses.replace(today, inputs=tuple(as_dynamic if i.name == "method" else i for i in today.inputs
                                                      if not i.name.startswith("spectrum_")))
    saved = [ForecastMethod.SPECTRUM.value, "step", 4.55, "even", 2, False, 0.05, "model device", 4, 0.1, 0.5]
    assert [s.name for s in today.widget_slots({})][:len(saved)] == [
        "method", "time_axis", "speedup", "placement", "warmup_steps", "compute_last_step", "residual_budget",
        "history_device", "spectrum_degree", "spectrum_lambda", "spectrum_blend"]
    assert loaded_widgets(today, saved).values["time_axis"] == "step"
    moved = loaded_widgets(dynamic, saved).values
    assert moved["method.spectrum_degree"] == "step" and moved["method.spectrum_blend"] == "even"
    assert moved["time_axis"] == 2 and moved["speedup"] is False  # every later value three widgets off


def test_lesa_gap_quoted_is_the_benchmarks():
    """The predictor tooltip's 'behind direct ... (0.3-7.4 dB, mostly 4-7)': L2P direct (optimized) against the
    better of LESA's placements in each of the 12 cells of docs/benchmark*/benchmark.md."""
    numbers = _readme_numbers()
    gaps = []
    for folder in ("benchmark", "benchmark-qwen"):
        data = numbers.benchmark_psnr(folder)
        for scenario in numbers.SCENARIOS:
            for column in range(len(numbers.SPEEDUPS)):
                lesa = max(data[scenario][v][column].mean for v in ("LESA (even)", "LESA (optimized)"))
                gaps.append(data[scenario][numbers.DEFAULT_VARIANT][column].mean - lesa)
    assert f"({min(gaps):.1f}-{max(gaps):.1f} dB, mostly 4-7)" in setups.L2P_MODE_TOOLTIP
    assert sum(4 <= g <= 7.5 for g in gaps) >= len(gaps) * 2 // 3
