"""scripts/gpu_timing.py, so it cannot rot without a GPU: its CPU-sized preset runs the same code (ComfyUI's classes,
KSampler, L2P Calibrate then L2P Cache at 4.55 / 5.56 / 7.14x, one forecast through ForecastEngine) on tiny models,
and its full-size configs are checked to be FLUX.1-dev's and HunyuanVideo's shapes on this host (built on the meta
device: no memory, no time). No timing is asserted: the numbers depend on the machine."""
from __future__ import annotations

import math

import pytest
import torch

import tiny_models
import tiny_specs
from script_modules import load_script

gpu_timing = load_script("gpu_timing")

from comfyui_l2p.predictors.schedules.placements import computed_count  # noqa: E402


@pytest.fixture(scope="module")
def measured(comfy):
    return gpu_timing.measure("tiny", "cpu", repeats=3)


def test_every_run_computes_what_its_schedule_says(measured):
    runs, forecasts = measured
    for subject in gpu_timing.PRESETS["tiny"]:
        rows = {r.run: r for r in runs if r.subject == subject.name}
        assert list(rows) == ["full", "L2P Calibrate (every step)", "L2P Cache 4.55x", "L2P Cache 5.56x",
                              "L2P Cache 7.14x"]
        assert rows["full"].passes == rows["L2P Calibrate (every step)"].passes == gpu_timing.STEPS
        assert [rows[f"L2P Cache {s}x"].passes for s in gpu_timing.SPEEDUPS] == [11, 9, 7] == [
            computed_count(gpu_timing.STEPS, s) for s in gpu_timing.SPEEDUPS]
        assert all(r.seconds > 0 and r.peak_bytes is None for r in rows.values())  # no device memory on a CPU
    for subject, forecast in zip(gpu_timing.PRESETS["tiny"], forecasts):
        assert forecast.subject == subject.name and forecast.outputs == 7 and forecast.milliseconds > 0
        assert forecast.history_bytes == 7 * math.prod(subject.latent) * 4  # seven float32 outputs, one stream


def test_the_table_has_a_row_per_run_and_per_forecast(measured):
    runs, forecasts = measured
    text = gpu_timing.table(runs, forecasts, "cpu")
    rows = [line for line in text.splitlines() if line.startswith("| tiny")]
    assert len(rows) == len(runs) + len(forecasts) == 12
    assert "| tiny FLUX, 64x64 | full | 50 |" in text and "| 1.00x | 1.00x | 1.00 | n/a | n/a |" in text
    assert "| tiny HunyuanVideo, 64x64x9 | L2P Cache 7.14x | 7 |" in text


@pytest.mark.parametrize("subject", gpu_timing.PRESETS["full"], ids=lambda s: s.family.name)
def test_full_size_models_have_the_released_shapes(comfy, subject):
    """FLUX.1-dev: 19 double + 38 single blocks, hidden 3072, 11.9 B parameters; HunyuanVideo: 20 + 40 blocks,
    12.8 B; latents of 1024x1024 (128 x 128) and 848x480x25 (7 x 60 x 106)."""
    model = tiny_models.model_skeleton(subject.family, dtype=torch.bfloat16, device=torch.device("meta"),
                                       **subject.unet)
    dm = model.diffusion_model
    billions = sum(p.numel() for p in dm.parameters()) / 1e9
    blocks = (len(dm.double_blocks), len(dm.single_blocks), dm.hidden_size)
    if subject.family is tiny_specs.Family.FLUX:
        assert blocks == (19, 38, 3072) and round(billions, 1) == 11.9 and subject.latent == (1, 16, 128, 128)
    else:
        assert blocks == (20, 40, 3072) and round(billions, 1) == 12.8 and subject.latent == (1, 16, 7, 60, 106)
