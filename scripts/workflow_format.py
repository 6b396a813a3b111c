"""The UI format (LiteGraph workflow, version 0.4) of a workflow description: node ids, links by slot index,
widgets_values in the frontend's order, a column layout. Used by scripts/make_workflows.py; the frontend's reading
of a node definition is in workflow_defs.py. Nothing here needs ComfyUI (the definitions are passed in).
"""
from __future__ import annotations

import heapq
import json
import tomllib
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from workflow_defs import CONTROL_VALUES, CONTROL_WIDGET, CORE_CNR_ID, NO_DEFAULT, PACK_CNR_ID, NodeDef
from workflow_parts import Description, ModelFile, Out

ROOT = Path(__file__).resolve().parents[1]

SLOT_HEIGHT, WIDGET_HEIGHT, MULTILINE_HEIGHT = 20, 24, 110  # LiteGraph's row heights, roughly
DEFAULT_WIDTH, COLUMN_GAP, ROW_GAP = 320, 70, 60
HIGHLIGHT = {"color": "#223322", "bgcolor": "#335533"}  # our node in green, so the eye finds it


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def repository_url() -> str:
    """The pack's canonical repository (pyproject.toml [project.urls], the one source of the URL)."""
    return pyproject()["project"]["urls"]["Repository"]


def versions() -> dict[str | None, str]:
    """properties.ver per cnr_id: the pack's version; for core nodes the oldest ComfyUI the pack supports."""
    project = pyproject()
    core = project["tool"]["comfy"]["requires-comfyui"].lstrip(">=~^ ")
    return {PACK_CNR_ID: project["project"]["version"], CORE_CNR_ID: core}


def _height(definition: NodeDef, values: Mapping[str, Any]) -> int:
    rows = max(len(definition.sockets), len(definition.outputs))
    widgets = 0
    for slot in definition.widget_slots(values):
        multiline = slot.input is not None and slot.input.options.get("multiline")
        widgets += MULTILINE_HEIGHT if multiline else WIDGET_HEIGHT
    return 10 + SLOT_HEIGHT * rows + widgets


def _execution_order(ids: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """LiteGraph's node.order: a topological order, ties by id (Kahn)."""
    indegree = {i: 0 for i in ids}
    children: dict[int, list[int]] = {i: [] for i in ids}
    for a, b in edges:
        indegree[b] += 1
        children[a].append(b)
    ready = [i for i in ids if indegree[i] == 0]
    heapq.heapify(ready)
    order: dict[int, int] = {}
    while ready:
        i = heapq.heappop(ready)
        order[i] = len(order)
        for c in children[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != len(ids):
        raise ValueError("the workflow description has a cycle")
    return order


def build(description: Description, definitions: Callable[[str], NodeDef]) -> dict:
    """The UI-format workflow (version 0.4) of ``description``; raises on anything the frontend would load wrong."""
    node_versions = versions()
    ids = {id(n): index + 1 for index, n in enumerate(description.nodes)}
    defs = {id(n): definitions(n.type) for n in description.nodes}
    links: list[list] = []
    inputs: dict[int, list[dict]] = {}
    outputs: dict[int, list[dict]] = {}
    widgets: dict[int, list] = {}
    for n in description.nodes:
        d = defs[id(n)]
        where = f"{description.name}: {n.type}"
        outputs[id(n)] = [{"name": name, "type": t, "slot_index": slot, "links": []}
                          for slot, (name, t) in enumerate(d.outputs)]
        slot_names = {slot.name for slot in d.widget_slots(n.values)}
        unknown = set(n.values) - {i.name for i in d.inputs} - slot_names
        if unknown:
            raise KeyError(f"{where}: no input(s) {sorted(unknown)}; its inputs are {[i.name for i in d.inputs]}")
    for n in description.nodes:  # links after every node has its output list
        d = defs[id(n)]
        where = f"{description.name}: {n.type}"
        node_inputs = []
        for slot, socket in enumerate(d.sockets):
            entry: dict[str, Any] = {"name": socket.name, "type": socket.type, "link": None}
            if socket.optional:
                entry["shape"] = 7  # LiteGraph's hollow circle: the frontend marks optional sockets this way
            source = n.values.get(socket.name)
            if source is not None:
                if not isinstance(source, Out):
                    raise TypeError(f"{where}: socket '{socket.name}' needs a link (node.out(name)), got {source!r}")
                src_def = defs[id(source.node)]
                names = [name for name, _ in src_def.outputs]
                if source.output not in names:
                    raise KeyError(f"{where}: {source.node.type} has no output '{source.output}'; it has {names}")
                src_slot = names.index(source.output)
                link_type = src_def.outputs[src_slot][1]
                if link_type != socket.type and "*" not in (link_type, socket.type):
                    raise TypeError(f"{where}: '{socket.name}' takes {socket.type}, {source.node.type}."
                                    f"{source.output} gives {link_type}")
                link_id = len(links) + 1
                links.append([link_id, ids[id(source.node)], src_slot, ids[id(n)], slot, link_type])
                outputs[id(source.node)][src_slot]["links"].append(link_id)
                entry["link"] = link_id
            elif not socket.optional:
                raise KeyError(f"{where}: required input '{socket.name}' is not linked")
            node_inputs.append(entry)
        inputs[id(n)] = node_inputs
        slots = d.widget_slots(n.values)
        # a widget the description leaves out holds its default, as in a node the user adds: so a widget a newer
        # ComfyUI adds with a default needs no change here (CreateVideo's bit_depth, SaveVideo's format.codec)
        missing = [slot.name for slot in slots if slot.name not in n.values and slot.default is NO_DEFAULT]
        if missing:
            raise KeyError(f"{where}: widget value(s) {missing} not given and without a default (widgets in order:"
                           f" {[slot.name for slot in slots]})")
        values = []
        for slot in slots:
            value = n.values.get(slot.name, slot.default)
            if isinstance(value, Out):
                raise TypeError(f"{where}: '{slot.name}' is a widget in this ComfyUI, not a socket: give it a value")
            if slot.name == CONTROL_WIDGET and value not in CONTROL_VALUES:
                raise ValueError(f"{where}: {CONTROL_WIDGET} must be one of {CONTROL_VALUES}, got {value!r}")
            values.append(value.name if isinstance(value, ModelFile) else value)
        widgets[id(n)] = values

    order = _execution_order(list(ids.values()), [(link[1], link[3]) for link in links])
    columns = sorted({n.column for n in description.nodes})
    sizes = {id(n): [n.width or DEFAULT_WIDTH, n.height or _height(defs[id(n)], n.values)] for n in description.nodes}
    column_x, x = {}, 0
    for c in columns:
        column_x[c] = x
        x += max(sizes[id(n)][0] for n in description.nodes if n.column == c) + COLUMN_GAP
    column_y = {c: 0 for c in columns}
    nodes_json = []
    for n in description.nodes:
        d = defs[id(n)]
        nid = ids[id(n)]
        pos = [column_x[n.column], column_y[n.column]]
        column_y[n.column] += sizes[id(n)][1] + ROW_GAP
        entry: dict[str, Any] = {"id": nid, "type": n.type}
        if n.title:
            entry["title"] = n.title
        entry.update({"pos": pos, "size": sizes[id(n)], "flags": {}, "order": order[nid], "mode": 0,
                      "inputs": inputs[id(n)], "outputs": outputs[id(n)]})
        properties: dict[str, Any] = {}
        if d.cnr_id is not None:
            properties = {"Node name for S&R": n.type, "cnr_id": d.cnr_id, "ver": node_versions[d.cnr_id]}
            models = [{"name": v.name, "url": v.url, "directory": v.directory}
                      for v in n.values.values() if isinstance(v, ModelFile)]
            if models:
                properties["models"] = models
        entry["properties"] = properties
        entry["widgets_values"] = widgets[id(n)]
        if n.highlight:
            entry.update(HIGHLIGHT)
        nodes_json.append(entry)
    return {
        # a fixed id per template, so regenerating changes nothing
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{repository_url()}/{description.name}")),
        "revision": 0,
        "last_node_id": max(ids.values()),
        "last_link_id": len(links),
        "nodes": nodes_json,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.75, "offset": [600, 80]}},
        "version": 0.4,
    }


def render(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"
