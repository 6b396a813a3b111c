"""scripts/tiny_models_report.py (the per-family table of issue 14's note and docs/families/tiny-models.md) runs
in the host suite on a few models at a few steps, so the table's command cannot rot: a wrapped family, a model
reached through APPLY_MODEL and LTX-2's list latents where the host has it. Skipped when COMFYUI_PATH is unset."""
from __future__ import annotations

import math

import pytest

import hook_models
from script_modules import load_script
from tiny_specs import HookModel

pytestmark = pytest.mark.comfy

STEPS = 8  # at speedup 4: 2 real passes


def test_the_report_counts_real_passes_and_measures_both_nodes(comfy, capsys):
    report = load_script("tiny_models_report")
    rows_asked = ["sd3"] + (["ltx-2"] if hook_models.host_has(HookModel.LTXAV) else [])
    rows_asked.append("nunchaku-like flux")  # after FLUX in one run: each row calibrates its own file
    assert report.main(["--families", "flux", "--hook-models", *rows_asked, "--steps", str(STEPS), "--cfg", "1",
                        "--calibration-seeds", "1", "--eval-seeds", "1"]) == 0
    rows = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith(("| family", "|---"))]
    assert [row[0] for row in rows] == ["flux", *rows_asked]
    for key, _config, cfg, full, forecast, forecast_psnr, l2p, l2p_psnr in rows:
        assert (cfg, full, forecast, l2p) == ("1", str(STEPS), "2", "2"), key
        for cell in (forecast_psnr, l2p_psnr):  # "mean (worst)": finite, and the worst is the mean of one seed
            mean, worst = (float(v) for v in cell.replace("(", "").replace(")", "").split())
            assert math.isfinite(mean) and mean == worst, (key, cell)
