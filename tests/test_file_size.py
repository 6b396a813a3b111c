"""The file sizes the README states are what L2P Calibrate writes (nodes/calibrate_setup.py, the node's own recorder):
a 50-step calibration file without and with CFG, and with L2P Calibrate's lesa_sample on, its sample at capacity.
The numbers are read from the README, so the text and the code cannot drift apart."""
import re

import pytest
import torch

from comfyui_l2p.nodes.calibrate_setup import CalibrationRecorder
from comfyui_l2p.nodes.report import RunReport
from comfyui_l2p.nodes.setups import CalibrationMode
from comfyui_l2p.predictors import StepGrid
from conftest import ROOT


class Flux(torch.nn.Module):
    """Stands for ComfyUI's FLUX transformer: the family is read from the class name (nodes/architectures.py)."""


def readme_sizes() -> dict[str, float]:
    text = " ".join((ROOT / "README.md").read_text().split())
    small = re.search(r"\((\d+) KB for 50 steps, (\d+) KB with CFG", text)
    large = re.search(r"the file grows to ([\d.]+) MB \(([\d.]+) MB with CFG\) at 50 steps", text)
    assert small and large, "README: the calibration file sizes are no longer stated where this test reads them"
    return {"no CFG": float(small.group(1)) * 1e3, "CFG": float(small.group(2)) * 1e3,
            "no CFG, lesa_sample": float(large.group(1)) * 1e6, "CFG, lesa_sample": float(large.group(2)) * 1e6}


def calibration_file_size(tmp_path, cfg: bool, lesa_sample: bool) -> int:
    grid = StepGrid.uniform(50)
    path = tmp_path / f"cal-{cfg}-{lesa_sample}.safetensors"
    recorder = CalibrationRecorder(str(path), grid, Flux(), ridge=1e-6, mode=CalibrationMode.TEACHER_FORCED,
                                   cfg_scale=3.0 if cfg else 1.0, lesa_sample=lesa_sample)
    gen = torch.Generator().manual_seed(0)
    roles = ("cond", "uncond") if cfg else ("cond",)
    for step in range(grid.num_steps):  # 4 rows x 16384 elements: the sample's 4 x 4096 positions fill it
        recorder.record(step, {r: torch.randn(4, 16, 32, 32, generator=gen) for r in roles})
    recorder.finish(True, RunReport("L2P Calibrate", "teacher-forced", grid.num_steps))
    return path.stat().st_size


@pytest.mark.parametrize("cfg", [False, True], ids=["no CFG", "CFG"])
@pytest.mark.parametrize("lesa_sample", [False, True], ids=["default", "lesa_sample"])
def test_the_readme_states_the_calibration_file_sizes(tmp_path, cfg, lesa_sample):
    claimed = readme_sizes()[("CFG" if cfg else "no CFG") + (", lesa_sample" if lesa_sample else "")]
    size = calibration_file_size(tmp_path, cfg, lesa_sample)
    # the README rounds to whole KB and to 0.1 MB; metadata strings move a file by some bytes
    assert abs(size - claimed) <= (0.06e6 if lesa_sample else 1.5e3), (size, claimed)
