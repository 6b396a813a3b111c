"""Node definitions as ComfyUI's frontend reads them, and what it makes of a saved node: the part of the UI workflow
format that depends on the host. Used by scripts/make_workflows.py (to write workflows) and tests/test_workflows.py
(to check them on every host).

The frontend (Comfy-Org/ComfyUI_frontend, read from its sources; no frontend runs here):
- builds a node's widgets from its definition in input order: one per INT / FLOAT / STRING / BOOLEAN / COMBO input
  (not ``forceInput``), a ``control_after_generate`` widget right after an INT that asks for one or is named seed /
  noise_seed and after a COMBO that asks (useIntWidget.ts, useComboWidget.ts), hidden inputs included (they get a
  widget with ``options.hidden``, litegraphService.ts);
- for a V3 DynamicCombo (``COMFY_DYNAMICCOMBO_V3``) a combo widget whose value setter inserts the selected option's
  inputs right after it, named ``<combo>.<input>`` and expanded the same way (dynamicWidgets.ts); so the widget
  list depends on the values;
- restores ``widgets_values`` by position (LGraphNode.configure: value i to the i-th serialised widget, stopping at
  the end of the list; widgets past it keep their defaults; values past the last widget are dropped) and restores
  the saved input and output slot lists as saved.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping

PACK_CNR_ID = "l2p-cache"  # our Comfy Registry id: pyproject.toml [project] name
CORE_CNR_ID = "comfy-core"
CONTROL_WIDGET = "control_after_generate"
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")  # the frontend's control combo
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO})
NO_DEFAULT = object()  # a widget whose definition gives no default: a workflow must state its value


class Kind(enum.Enum):
    """How the frontend shows an input: a socket (link) or a widget (a value stored in widgets_values)."""

    SOCKET = "socket"
    WIDGET = "widget"


@dataclasses.dataclass(frozen=True)
class InputDef:
    """One input of a node definition as /object_info reports it; a V1 option list is normalised to COMBO."""

    name: str
    type: str
    options: Mapping[str, Any]
    optional: bool

    @property
    def kind(self) -> Kind:
        return Kind.WIDGET if self.type in WIDGET_TYPES and not self.options.get("forceInput") else Kind.SOCKET

    @property
    def has_control(self) -> bool:
        """Whether the frontend adds a control_after_generate widget right after this one. Its rule
        (useIntWidget.ts / useComboWidget.ts): an INT asks with the option or, saying nothing, by being named
        seed / noise_seed; a COMBO only with the option."""
        declared = self.options.get(CONTROL_WIDGET)
        if self.type == "INT":
            return bool(declared) if declared is not None else self.name in ("seed", "noise_seed")
        return self.type == "COMBO" and bool(declared)

    @property
    def choices(self) -> list:
        """A COMBO's options, a DynamicCombo's option keys; [] for other types."""
        if self.type == DYNAMIC_COMBO:
            return [option["key"] for option in self.options.get("options", [])]
        return list(self.options.get("options", [])) if self.type == "COMBO" else []

    @property
    def default(self) -> Any:
        """The value a new widget holds: the declared default, else a combo's first choice; else NO_DEFAULT."""
        if "default" in self.options:
            return self.options["default"]
        return self.choices[0] if self.choices else NO_DEFAULT

    def children(self, selected: Any) -> tuple["InputDef", ...]:
        """A DynamicCombo's inputs for the ``selected`` option, named ``<name>.<input>``; () otherwise."""
        if self.type != DYNAMIC_COMBO:
            return ()
        for option in self.options.get("options", []):
            if option["key"] == selected:
                return tuple(dataclasses.replace(i, name=f"{self.name}.{i.name}")
                             for i in inputs_from_spec(option.get("inputs", {})))
        return ()


@dataclasses.dataclass(frozen=True)
class Slot:
    """One position of widgets_values: a widget input, or the control widget after ``of`` (input None)."""

    name: str
    input: InputDef | None
    of: str | None = None

    @property
    def default(self) -> Any:
        return self.input.default if self.input is not None else NO_DEFAULT


@dataclasses.dataclass(frozen=True)
class NodeDef:
    """What the UI format needs from a node type: its inputs in definition order and its output slots."""

    type: str
    inputs: tuple[InputDef, ...]
    outputs: tuple[tuple[str, str], ...]  # (name, type) per output slot
    cnr_id: str | None  # None for frontend-only nodes (notes)

    @property
    def sockets(self) -> tuple[InputDef, ...]:
        return tuple(i for i in self.inputs if i.kind is Kind.SOCKET)

    def widget_slots(self, values: Mapping[str, Any]) -> tuple[Slot, ...]:
        """widgets_values positions for a node holding ``values`` (by name; a DynamicCombo not in it holds its
        default): each widget, its control widget after it, a DynamicCombo's selected inputs right after it."""
        slots: list[Slot] = []

        def add(inputs: tuple[InputDef, ...]) -> None:
            for i in inputs:
                if i.kind is not Kind.WIDGET:
                    continue
                slots.append(Slot(i.name, i))
                if i.has_control:
                    slots.append(Slot(CONTROL_WIDGET, None, of=i.name))
                add(i.children(values.get(i.name, i.default)))

        add(self.inputs)
        return tuple(slots)

    def input(self, name: str) -> InputDef:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(f"{self.type} has no input '{name}'; its inputs are {[i.name for i in self.inputs]}")


# The frontend defines these itself (no Python class): one multiline text widget.
FRONTEND_ONLY = {
    t: NodeDef(t, (InputDef("text", "STRING", {"multiline": True}, False),), (), None) for t in ("Note", "MarkdownNote")
}


def _type_name(t: Any) -> str:
    return "COMBO" if isinstance(t, (list, tuple)) else str(t)  # IO enums are StrEnums: str() is the value


def inputs_from_spec(spec: Mapping[str, Any], order: Mapping[str, list] | None = None) -> tuple[InputDef, ...]:
    """InputDefs of a V1 input spec ({"required": {name: [type, options]}, "optional": {...}}) in ``order``
    (``input_order``; the spec's own order when None)."""
    inputs = []
    for section in ("required", "optional"):
        for name in (order or {}).get(section, list(spec.get(section, {}))):
            entry = spec[section][name]
            options = dict(entry[1]) if len(entry) > 1 and entry[1] else {}
            if isinstance(entry[0], (list, tuple)):
                options["options"] = list(entry[0])
            inputs.append(InputDef(name, _type_name(entry[0]), options, section == "optional"))
    return tuple(inputs)


def read_node_def(node_type: str, node_classes: Mapping[str, type], pack_node_ids: set[str]) -> NodeDef:
    """The definition ComfyUI's /object_info serves (server.py node_info): V3 nodes through GET_NODE_INFO_V1."""
    if node_type in FRONTEND_ONLY:
        return FRONTEND_ONLY[node_type]
    cls = node_classes.get(node_type)
    if cls is None:
        raise KeyError(f"node type '{node_type}' is not registered in this ComfyUI (nodes.NODE_CLASS_MAPPINGS)")
    if hasattr(cls, "GET_NODE_INFO_V1"):
        info = cls.GET_NODE_INFO_V1()
        spec, order, out_types, out_names = info["input"], info["input_order"], info["output"], info["output_name"]
    else:
        spec = cls.INPUT_TYPES()
        order = {section: list(entries) for section, entries in spec.items()}
        out_types = cls.RETURN_TYPES
        out_names = getattr(cls, "RETURN_NAMES", None) or out_types
    outputs = tuple((str(n), _type_name(t)) for n, t in zip(out_names, out_types))
    return NodeDef(node_type, inputs_from_spec(spec, order), outputs,
                   PACK_CNR_ID if node_type in pack_node_ids else CORE_CNR_ID)


# ------------------------------------------------------------------------------------- what the frontend loads


@dataclasses.dataclass(frozen=True)
class LoadedWidgets:
    values: dict[str, Any]  # slot name -> value the node holds after loading (controls as "<input>:control")
    dropped: tuple  # saved values past the last widget: the frontend ignores them


def loaded_widgets(definition: NodeDef, widgets_values: list) -> LoadedWidgets:
    """What a node saved with ``widgets_values`` holds once the frontend has loaded it on this host: value i goes
    to the i-th widget (a DynamicCombo's value decides which widgets follow it), the rest keep their defaults."""
    held: dict[str, Any] = {}
    position = 0
    while True:
        slots = definition.widget_slots(held)  # a slot's position depends only on the values before it
        if position >= len(slots):
            break
        slot = slots[position]
        key = f"{slot.of}:control" if slot.input is None else slot.name
        held[key] = widgets_values[position] if position < len(widgets_values) else slot.default
        position += 1
    return LoadedWidgets(held, tuple(widgets_values[position:]))


def load_differences(saved: dict, built_here: dict, definitions) -> list[str]:
    """How a workflow ``saved`` on another ComfyUI loads here differently from ``built_here`` (the generator's
    output on this host); [] when the frontend ends up with the same graph. Per node: the widgets it holds
    (loaded_widgets of both), the saved input and output slots as the start of this host's with the others
    unlinked, every other field equal but the layout (size and position: the generator sizes a node by its slot
    and widget counts, and the nodes below it in its column move with it)."""
    problems: list[str] = []
    for key in sorted(set(saved) | set(built_here)):
        if key != "nodes" and saved.get(key) != built_here.get(key):
            problems.append(f"'{key}' differs")
    if len(saved.get("nodes", [])) != len(built_here.get("nodes", [])):
        return problems + ["different numbers of nodes"]
    for old, new in zip(saved["nodes"], built_here["nodes"]):
        where = f"node {old.get('id')} ({old.get('type')})"
        if (old.get("id"), old.get("type")) != (new.get("id"), new.get("type")):
            problems.append(f"{where}: built here as node {new.get('id')} ({new.get('type')})")
            continue
        for key in sorted((set(old) | set(new)) - {"size", "pos", "inputs", "outputs", "widgets_values"}):
            if old.get(key) != new.get(key):
                problems.append(f"{where}: '{key}' differs")
        definition = definitions(old["type"])
        loaded, wanted = (loaded_widgets(definition, n.get("widgets_values", [])) for n in (old, new))
        if loaded.values != wanted.values or loaded.dropped:
            problems.append(f"{where}: loads widgets {loaded.values} (dropped {list(loaded.dropped)}), built here "
                            f"{wanted.values}")
        for key, link_field in (("inputs", "link"), ("outputs", "links")):
            kept, extra = new[key][:len(old[key])], new[key][len(old[key]):]
            if old[key] != kept or any(slot.get(link_field) for slot in extra):
                problems.append(f"{where}: saved {key} {old[key]} are not the start of this host's {new[key]} "
                                f"followed by unlinked slots")
    return problems
