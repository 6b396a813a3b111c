"""What the templates' notes say about the node beside them is what that node is set to: the warm-up steps they
name are its warmup_steps, the method they name is its method, the step counts they quote are the schedule's, and
a template they point to exists under that title. Read from the committed files (no ComfyUI needed)."""
from __future__ import annotations

import json
import re
import sys

import pytest

from conftest import ROOT

from comfyui_l2p.predictors.schedules.budget import computed_count

sys.path.insert(0, str(ROOT / "scripts"))
import workflow_catalog  # noqa: E402

FOLDER = ROOT / "example_workflows"
WORDS = {"one": 1, "two": 2, "three": 3}
# widgets_values position of warmup_steps (nodes/cache_nodes.py order; tests/test_workflows.py checks the layout)
WARMUP_INDEX = {"L2PCache": 3, "L2PForecastCache": 4}


def _templates():
    return [(stem, json.loads((FOLDER / f"{stem}.json").read_text())) for stem in workflow_catalog.FILE_STEMS.values()]


def _note(workflow) -> str:
    return " ".join(n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "MarkdownNote")


def warmups_said(note: str) -> list[int]:
    """The warm-up step counts a note states ('the 2 warm-up steps', 'the first two steps are always computed')."""
    said = (re.findall(r"the (\w+) warm-up steps?", note) + re.findall(r"the first (\w+) steps? \(warm-up\)", note)
            + re.findall(r"the first (\w+) steps? (?:are|is) always computed", note))
    return [WORDS[s] if s in WORDS else int(s) for s in said]


@pytest.mark.parametrize("stem,workflow", _templates(), ids=list(workflow_catalog.FILE_STEMS))
def test_notes_say_what_the_nodes_do(stem, workflow):
    note = " ".join(_note(workflow).split())
    ours = [n for n in workflow["nodes"] if n["type"] in WARMUP_INDEX]
    warmups = {n["widgets_values"][WARMUP_INDEX[n["type"]]] for n in ours}
    for said in warmups_said(note):
        assert said in warmups, (stem, said, warmups)
    if "the first step (warm-up)" in note:
        assert warmups == {1}, stem
    for method in re.findall(r"\*(TaylorSeer order \d|FORA \(reuse\)|Spectrum|FoCa)\* \(the node's default\)", note):
        assert {n["widgets_values"][0] for n in ours} == {method}, stem
    for k, steps, speedup in re.findall(r"runs (\d+) of the (\d+) steps for real \(speedup ([\d.]+)\)", note):
        assert computed_count(int(steps), float(speedup)) == int(k), stem
    for named in re.findall(r"\*(\d [^*]+)\*", note):
        assert named in workflow_catalog.FILE_STEMS.values(), (stem, named)


def test_the_forecast_note_names_its_warm_up():
    stem = workflow_catalog.file_stem("flux1-dev-forecast-cache")
    note = " ".join(_note(json.loads((FOLDER / f"{stem}.json").read_text())).split())
    assert re.search(r"after the \d+ warm-up steps", note)


def test_the_old_flux_note_is_caught():
    """The issue's case: the FLUX note said 2 steps are always computed beside warmup_steps 1."""
    assert warmups_said("the first 2 steps are always computed; the 2 warm-up steps") == [2, 2]
    assert warmups_said("the first step (warm-up) is always computed") == []  # checked against {1} above
