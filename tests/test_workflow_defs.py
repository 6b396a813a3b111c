"""scripts/workflow_defs.py without ComfyUI: the frontend's widget order (control widgets, DynamicCombos), what a
saved node loads as (by position, defaults past the end, values past the last widget dropped), and the rule a
workflow saved on another ComfyUI must meet (load_differences), on definitions written here."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from workflow_defs import (CONTROL_WIDGET, DYNAMIC_COMBO, NO_DEFAULT, InputDef, NodeDef,  # noqa: E402
                           load_differences, loaded_widgets)

PREFIX = InputDef("filename_prefix", "STRING", {"default": "video/ComfyUI"}, False)
SEED = InputDef("seed", "INT", {"default": 0, "min": 0}, False)  # the frontend adds a control widget after a seed
FORMAT = InputDef("format", DYNAMIC_COMBO, {"options": [
    {"key": "auto", "inputs": {"required": {"codec": [["auto", "h264"], {}]}}},
    {"key": "webm", "inputs": {"required": {}}},
]}, False)
BIT_DEPTH = InputDef("bit_depth", "INT", {"default": 8, "min": 8, "max": 10}, True)
VIDEO = InputDef("video", "VIDEO", {}, False)


def save_video(*widgets: InputDef, outputs=(("video", "VIDEO"),)) -> NodeDef:
    return NodeDef("SaveVideo", (VIDEO, *widgets), tuple(outputs), "comfy-core")


def test_widget_slots_follow_the_frontend():
    d = save_video(PREFIX, SEED, FORMAT, BIT_DEPTH)
    assert [s.name for s in d.widget_slots({})] == [
        "filename_prefix", "seed", CONTROL_WIDGET, "format", "format.codec", "bit_depth"]  # format's default: auto
    assert [s.name for s in d.widget_slots({"format": "webm"})] == [
        "filename_prefix", "seed", CONTROL_WIDGET, "format", "bit_depth"]
    assert FORMAT.default == "auto" and FORMAT.choices == ["auto", "webm"]
    assert d.widget_slots({})[4].input.choices == ["auto", "h264"] and d.widget_slots({})[2].default is NO_DEFAULT


def test_a_saved_node_loads_by_position_with_defaults_past_the_end():
    d = save_video(PREFIX, SEED, FORMAT, BIT_DEPTH)
    loaded = loaded_widgets(d, ["out/v", 7, "fixed", "auto", "h264"])
    assert loaded.values == {"filename_prefix": "out/v", "seed": 7, "seed:control": "fixed", "format": "auto",
                             "format.codec": "h264", "bit_depth": 8} and loaded.dropped == ()
    # the DynamicCombo's value decides what follows it: with webm the next value lands on bit_depth
    assert loaded_widgets(d, ["out/v", 7, "fixed", "webm", 10]).values["bit_depth"] == 10
    assert loaded_widgets(d, ["out/v", 7, "fixed", "webm", 10, "extra"]).dropped == ("extra",)


def _workflow(node: dict) -> dict:
    return {"id": "w", "nodes": [node], "links": [[1, 9, 0, 1, 0, "VIDEO"]], "version": 0.4}


def _node(values: list, outputs: list, size=(320, 100), pos=(0, 0)) -> dict:
    return {"id": 1, "type": "SaveVideo", "pos": list(pos), "size": list(size), "order": 0, "mode": 0,
            "inputs": [{"name": "video", "type": "VIDEO", "link": 1}], "outputs": outputs, "properties": {},
            "widgets_values": values}


def test_a_workflow_saved_on_an_older_host_is_accepted_when_it_loads_the_same():
    old = save_video(PREFIX, SEED)  # the older host: no format, no bit_depth, no output
    new = save_video(PREFIX, SEED, FORMAT, BIT_DEPTH)
    definitions = {"SaveVideo": new}.__getitem__
    saved = _workflow(_node(["out/v", 7, "fixed"], []))
    assert [s.name for s in old.widget_slots({})] == ["filename_prefix", "seed", CONTROL_WIDGET]
    built_here = _workflow(_node(["out/v", 7, "fixed", "auto", "auto", 8],
                                 [{"name": "video", "type": "VIDEO", "links": []}], size=(320, 180), pos=(0, 40)))
    assert load_differences(saved, built_here, definitions) == []  # defaults, an unlinked new output, layout


def test_what_would_load_differently_is_refused():
    new = save_video(PREFIX, SEED, FORMAT, BIT_DEPTH)
    definitions = {"SaveVideo": new}.__getitem__
    built_here = _workflow(_node(["out/v", 7, "fixed", "auto", "auto", 8], []))

    inserted_before = _workflow(_node(["out/v", "auto", 7, "fixed"], []))  # a widget added before the seed
    assert any("loads widgets" in p for p in load_differences(inserted_before, built_here, definitions))
    other_value = _workflow(_node(["out/v", 7, "fixed", "auto", "auto", 10], []))
    assert any("loads widgets" in p for p in load_differences(other_value, built_here, definitions))
    removed_widget = _workflow(_node(["out/v", 7, "fixed", "auto", "auto", 8, "gone"], []))
    assert any("dropped ['gone']" in p for p in load_differences(removed_widget, built_here, definitions))

    linked_output = copy.deepcopy(built_here)
    linked_output["nodes"][0]["outputs"] = [{"name": "video", "type": "VIDEO", "links": [2]}]
    saved = _workflow(_node(["out/v", 7, "fixed"], []))
    assert any("outputs" in p for p in load_differences(saved, linked_output, definitions))
    retitled = copy.deepcopy(saved)
    retitled["nodes"][0]["title"] = "Save"
    assert load_differences(retitled, built_here, definitions) == ["node 1 (SaveVideo): 'title' differs"]
    relinked = copy.deepcopy(saved)
    relinked["links"] = []
    assert load_differences(relinked, built_here, definitions) == ["'links' differs"]
