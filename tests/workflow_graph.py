"""The example workflows as graphs, for the tests that check them (test_workflows.py, test_workflows_wan22.py):
the files, the generator (scripts/make_workflows.py, loaded without ComfyUI), ComfyUI's node definitions as its
frontend reads them, widget values by input name, and the model chain between a loader and a sampler applied
through ComfyUI's executor."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import comfy_host

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "example_workflows"  # the folder name ComfyUI serves without asking to rename it
FILES = sorted(FOLDER.glob("*.json"))
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute"}  # defined by the frontend, never registered in Python
LOADERS = {"UNETLoader": "unet_name", "CheckpointLoaderSimple": "ckpt_name"}  # model loader -> its file widget


def _load_generator():
    """scripts/make_workflows.py as a module (scripts/ is not a package); importing it needs no ComfyUI."""
    if "make_workflows" in sys.modules:
        return sys.modules["make_workflows"]
    spec = importlib.util.spec_from_file_location("make_workflows", ROOT / "scripts" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


make_workflows = _load_generator()
import workflow_defs  # noqa: E402  (scripts/, put on sys.path by make_workflows)
from workflow_defs import DYNAMIC_COMBO, NO_DEFAULT, Kind, NodeDef  # noqa: E402,F401  (re-exported)


def definition(registry, node_type: str) -> NodeDef:
    return workflow_defs.read_node_def(node_type, registry, set())


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


class Graph:
    """A UI-format workflow with widget values by input name (from ComfyUI's definitions)."""

    def __init__(self, wf: dict, registry) -> None:
        self.nodes = {n["id"]: n for n in wf["nodes"]}
        self.links = {link[0]: link for link in wf["links"]}
        self.registry = registry

    def of_type(self, *types: str) -> list[dict]:
        return [n for n in self.nodes.values() if n["type"] in types]

    def source(self, node: dict, input_name: str) -> dict | None:
        for entry in node["inputs"]:
            if entry["name"] == input_name and entry["link"] is not None:
                return self.nodes[self.links[entry["link"]][1]]
        return None

    def widgets(self, node: dict) -> dict[str, Any]:
        loaded = workflow_defs.loaded_widgets(definition(self.registry, node["type"]), node["widgets_values"])
        return {name: value for name, value in loaded.values.items() if not name.endswith(":control")}

    def model_chain(self, model: dict) -> tuple[str, tuple[dict, ...]]:
        """(the loader's model file, the nodes from the loader's output to ``model`` in graph order)."""
        chain = []
        while model["type"] not in LOADERS:
            chain.append(model)
            model = self.source(model, "model")
        return self.widgets(model)[LOADERS[model["type"]]], tuple(reversed(chain))

    def apply_chain(self, chain: tuple[dict, ...], model, replace_cache_by_calibrate: bool = False):
        """Each chain node through ComfyUI's executor with the workflow's widget values; returns the patched MODEL.
        ``replace_cache_by_calibrate``: L2P Calibrate (its defaults) where L2P Cache is, writing the file L2P Cache
        names -- what the notes of workflows without a calibration template tell the user to do."""
        for n in chain:
            node_type, values = n["type"], self.widgets(n)
            if replace_cache_by_calibrate and node_type == "L2PCache":
                defaults = {i.name: i.default for i in definition(self.registry, "L2PCalibrate").inputs
                            if i.kind is Kind.WIDGET}
                node_type, values = "L2PCalibrate", {**defaults, "file_name": values["predictor_file"]}
            (model,) = comfy_host.run_node(self.registry[node_type], model=model, **values)
        return model
