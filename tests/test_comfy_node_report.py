"""Each L2P node shows its run's report in the UI: whole graphs run by ComfyUI's own executor, with the messages
captured where ComfyUI's server queues them for the browser (comfy_ui.py: the host's own send_progress_text runs).

Skipped, with the reason printed, when COMFYUI_PATH is unset."""
from __future__ import annotations

import importlib
import os
import re

import pytest
from PIL import Image

import tiny_models
import comfy_prompt
import comfy_ui

pytestmark = pytest.mark.comfy

CALIBRATE = {"class_type": "L2PCalibrate", "inputs": {"file_name": "ui.safetensors", "ridge_lambda": 1e-3,
                                                      "mode": "teacher-forced", "on_policy_speedup": 2.5}}
CACHE_INPUTS = {"speedup": 2.5, "placement": "optimized", "warmup_steps": 1, "compute_last_step": False,
                "residual_budget": 0.05, "history_device": "model device", "predictor": "direct",
                "step_grid_mismatch": "refuse"}


def module(pack, name):
    return importlib.import_module(f"{pack.module.__name__}.{name}")


def queue(ui, tiny, node, steps=10, cfg=1.0):
    graph = comfy_prompt.sampler_graph(node, steps=steps, cfg=cfg)
    result = comfy_prompt.run_graph(graph, comfy_prompt.sampler_sources(tiny), server=ui, client_id=ui.client_id)
    assert result.succeeded, result.error
    return result


def test_calibrate_shows_its_report_and_quality_plot_on_the_node(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=70)
    with comfy_ui.ui_server("client-1") as ui:
        queue(ui, tiny, CALIBRATE)
        (text, sid, index), = ui.texts("l2p")
        assert sid == "client-1" and re.match(r"L2P Calibrate: 1 image recorded\nexpected [\d.]+x -?\d+ dB\n", text)
        assert "\n10 real passes, 0 forecast, 10 steps\n" in text and "1 trajectories (cond), 10 steps" in text
        assert re.search(r"expected quality with optimized schedules \(teacher-forced\): 2\.00x: [\d.]+ dB", text)
        assert ui.executing_at(index) == "sampler"  # sent by the sampler's run, to the Calibrate node
        (data, sid), = ui.executed("l2p")
        prompt_id = next(d["prompt_id"] for e, d, _ in ui.sent if e == "execution_start")
        assert sid == "client-1" and data["prompt_id"] == prompt_id and data["display_node"] == "l2p"
        (image,) = data["output"]["images"]
        assert image == {"filename": "l2p-report-l2p.png", "subfolder": "", "type": "temp"}
        import folder_paths

        png = os.path.join(folder_paths.get_temp_directory(), image["filename"])
        assert Image.open(png).size == module(pack, "nodes.report_plot").SIZE


def test_l2p_cache_learning_and_forecasting_and_forecast_cache_show_their_reports(pack, l2p_dir):
    tiny = tiny_models.tiny_flux(seed=71)
    auto = {"class_type": "L2PCache", "inputs": {"predictor_file": module(pack, "nodes.learn_setup").AUTO_FILE,
                                                 **CACHE_INPUTS, "learning_images": 1}}
    with comfy_ui.ui_server("client-2") as ui:
        queue(ui, tiny, auto)
        ((text, _, _),) = ui.texts("l2p")
        assert text.startswith("L2P Cache: learning 1 of 1 image\nforecasting from the next run\n")
        assert re.search(r"\nlearning: 1 of 1 image in auto-flux-10steps-simple-cfg1-[0-9a-f]{8}\.safetensors;"
                         r" forecasting from the next run\n", text)
        assert len(ui.executed("l2p")) == 1  # the run extended a calibration: the plot too
    with comfy_ui.ui_server("client-2") as ui:
        queue(ui, tiny, auto)
        ((text, _, _),) = ui.texts("l2p")
        assert re.match(r"L2P Cache: 2\.50x \(4/10 passes\)\nworst residual [\d.]+ \(step \d\)\n4 real passes, 6"
                        r" forecast, 10 steps\n", text)
        assert re.search(r"\nworst forecast residual [\d.]+ \(step \d, cond\)\nforced 1x: warm-up guard\nlearned from"
                         r" 1 image \(auto-flux", text)
        assert ui.executed("l2p") == []  # nothing new to plot
    forecast = {"class_type": "L2PForecastCache", "inputs": {
        "method": module(pack, "nodes.setups").FORECAST_METHODS[0], "time_axis": "step",
        **{k: CACHE_INPUTS[k] for k in ("speedup", "compute_last_step", "residual_budget", "history_device")},
        "placement": "even", "warmup_steps": 2, "spectrum_degree": 4, "spectrum_lambda": 0.1, "spectrum_blend": 0.5}}
    with comfy_ui.ui_server(None) as ui:  # a prompt without a client (API use): the text is broadcast
        queue(ui, tiny, forecast)
        ((text, sid, _),) = ui.texts("l2p")
        assert sid is None and text.startswith("Forecast Cache: 2.50x (4/10 passes)\n")


def test_a_failing_report_never_fails_the_run(pack, l2p_dir, monkeypatch):
    tiny = tiny_models.tiny_flux(seed=72)
    with comfy_ui.ui_server("client-3") as ui:
        def broken(*args, **kwargs):
            raise ConnectionError("the browser went away")

        monkeypatch.setattr(ui, "send_progress_text", broken)
        queue(ui, tiny, CALIBRATE)  # succeeded
    assert module(pack, "predictors").load_predictor_file(str(l2p_dir / "ui.safetensors")).sample_count == 1
