"""Which inputs the pack's nodes show for each choice in ComfyUI's real frontend, and that saving keeps every value.

    python3 scripts/browser_widgets.py --comfyui /path/to/ComfyUI --site DIR --out DIR [--chromium chromium]

Same set-up as scripts/browser_templates.py (browser_check.comfyui_and_chromium: a copy of the host with this pack,
ComfyUI on 127.0.0.1 with --cpu, headless Chromium), plus one pinnable file in the copy's models/l2p/. Then, on
L2P Cache, Forecast Cache and L2P Calibrate as a user adds them:
1. ``widgets-1-defaults.png``: the defaults (TaylorSeer 2, even / optimized placement, the auto file, teacher-forced);
2. ``widgets-2-switched.png``: each controlling combo changed through its own callback, as a click does (Spectrum and
   adaptive on Forecast Cache, a pinned file and adaptive on L2P Cache, on-policy on L2P Calibrate);
3. the graph saved (``app.graph.serialize()``) and queued (``app.graphToPrompt()``), then loaded again
   (``app.loadGraphData``): ``widgets-3-reloaded.png``;
4. ``widgets-4-back.png``: the first choices again (FORA, the auto file, teacher-forced);
5. ``widgets-5-linked.png``: a PrimitiveInt node linked into Forecast Cache's spectrum_degree under FORA: a linked
   input stays visible (its link would otherwise end nowhere), and hides again once unlinked;
6. each of the pack's templates (example_workflows/*.json) loaded as saved: its L2P nodes' widgets must hold the
   file's widgets_values position by position, with the inputs its choices leave unused hidden.
``widgets.json`` holds each step's visible widgets, node sizes, saved widgets_values and queued inputs; the script
checks them against nodes/input_scopes.py (hidden exactly the inputs out of scope, with no gap left and the node
resized; every widget saved in its position; every input queued; values unchanged by a reload) and exits 1, naming
what failed, when one does not hold.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import ROOT, comfyui_and_chromium, comfyui_page, parse_args  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402,F401  (the pack as comfyui_l2p, without ComfyUI)
from comfyui_l2p.nodes.input_scopes import NODE_SCOPES  # noqa: E402

PINNED = "pinned-example.safetensors"  # listed by the combo; never loaded (nothing is queued for execution)
NODE_IDS = {"L2PCache": 1, "L2PForecastCache": 2, "L2PCalibrate": 3}
SWITCHED = {"L2PCache": {"predictor_file": PINNED, "placement": "adaptive"},
            "L2PForecastCache": {"method": "Spectrum", "placement": "adaptive"},
            "L2PCalibrate": {"mode": "on-policy"}}
BACK = {"L2PCache": {"predictor_file": "auto: learn from my runs", "placement": "optimized"},
        "L2PForecastCache": {"method": "FORA", "placement": "even"},
        "L2PCalibrate": {"mode": "teacher-forced"}}

ADD = ("window.app.graph.clear(); " + " ".join(
    f"{{ const n = LiteGraph.createNode('{t}'); n.id = {i}; n.pos = [{40 + 420 * (i - 1)}, 60];"
    f" window.app.graph.add(n); }}" for t, i in NODE_IDS.items())
    + " window.app.graph.setDirtyCanvas(true, true); true")
STATE = ("(() => Object.fromEntries([...window.app.graph._nodes].map(n => [n.type, {"
         " visible: n.widgets.filter(w => n.isWidgetVisible ? n.isWidgetVisible(w) : true).map(w => w.name),"
         " widgets: n.widgets.map(w => [w.name, w.value]), size: [...n.size],"
         " rows: n.widgets.filter(w => !n.isWidgetVisible || n.isWidgetVisible(w)).map(w => w.y),"
         " can_hide: typeof n.isWidgetVisible === 'function'}])))()")
FORECAST = "window.app.graph._nodes.find(n => n.type === 'L2PForecastCache')"
DEGREE_SLOT = f"{FORECAST}.inputs.findIndex(i => i.name === 'spectrum_degree')"
DEGREE_SHOWN = f"{FORECAST}.isWidgetVisible({FORECAST}.widgets.find(w => w.name === 'spectrum_degree'))"
LINK = (f"(() => {{ const p = LiteGraph.createNode('PrimitiveInt'); p.pos = [460, 520]; window.app.graph.add(p);"
        f" p.connect(0, {FORECAST}, {DEGREE_SLOT}); window.app.graph.setDirtyCanvas(true, true);"
        f" return {{linked: {FORECAST}.inputs[{DEGREE_SLOT}].link != null, shown: {DEGREE_SHOWN}}}; }})()")
UNLINK = (f"(() => {{ {FORECAST}.disconnectInput({DEGREE_SLOT}); window.app.graph.setDirtyCanvas(true, true);"
          f" return {{linked: {FORECAST}.inputs[{DEGREE_SLOT}].link != null, shown: {DEGREE_SHOWN}}}; }})()")
TEMPLATE_STATE = ("Object.fromEntries([...window.app.graph._nodes].map(n => [String(n.id), {"
                  " widgets: (n.widgets ?? []).map(w => [w.name, w.value]),"
                  " visible: (n.widgets ?? []).filter(w => n.isWidgetVisible(w)).map(w => w.name)}]))")
SAVE = ("(async () => { const graph = window.app.graph.serialize(); const prompt = await window.app.graphToPrompt();"
        " return {graph, saved: Object.fromEntries(graph.nodes.map(n => [n.type, n.widgets_values])),"
        " queued: Object.fromEntries(Object.values(prompt.output).map(n => [n.class_type, n.inputs]))}; })()")


def choose(choices: dict) -> str:
    """Set each combo as a click does: the value, then the widget's own callback (where the extension listens)."""
    steps = [f"{{ const n = window.app.graph._nodes.find(n => n.type === '{node}');"
             f" const w = n.widgets.find(w => w.name === '{name}'); w.value = {json.dumps(value)};"
             f" w.callback?.(w.value, window.app.canvas, n); }}"
             for node, pairs in choices.items() for name, value in pairs.items()]
    return " ".join(steps) + " window.app.graph.setDirtyCanvas(true, true); true"


def expected_hidden(node: str, widgets: list) -> set[str]:
    values = dict(widgets)
    return {name for scope in NODE_SCOPES[node] if values[scope.controller] not in scope.choices
            for name in scope.inputs}


async def drive(devtools: str, server: str, out: Path) -> dict:
    steps: dict = {}
    async with comfyui_page(devtools, server, 1600) as page:
        steps["extension_loaded"] = await page.js(
            "window.app.extensions.some(e => e.name === 'ComfyUI-L2P.InputScopes')")
        await page.js(ADD)
        await asyncio.sleep(1)
        steps["defaults"] = await page.js(STATE)
        await page.screenshot(out / "widgets-1-defaults.png")
        await page.js(choose(SWITCHED))
        await asyncio.sleep(1)
        steps["switched"] = await page.js(STATE)
        await page.screenshot(out / "widgets-2-switched.png")
        steps["save"] = await page.js(SAVE)
        await page.js(f"window.app.loadGraphData({json.dumps(steps['save']['graph'])})")
        await asyncio.sleep(2)
        steps["reloaded"] = await page.js(STATE)
        await page.screenshot(out / "widgets-3-reloaded.png")
        await page.js(choose(BACK))
        await asyncio.sleep(1)
        steps["back"] = await page.js(STATE)
        await page.screenshot(out / "widgets-4-back.png")
        steps["linked"] = await page.js(LINK)
        await asyncio.sleep(1)
        await page.screenshot(out / "widgets-5-linked.png")
        steps["unlinked"] = await page.js(UNLINK)
        steps["templates"] = {}
        for path in sorted((ROOT / "example_workflows").glob("*.json")):
            saved = json.loads(path.read_text())
            await page.js(f"window.app.loadGraphData({json.dumps(saved)}); true")
            await asyncio.sleep(1)
            loaded = await page.js(TEMPLATE_STATE)
            steps["templates"][path.name] = {str(n["id"]): {"type": n["type"], "saved": n.get("widgets_values"),
                                                            **loaded[str(n["id"])]}
                                             for n in saved["nodes"] if n["type"] in NODE_SCOPES}
    return steps


RESIZED = ("L2PForecastCache", "L2PCalibrate")  # fewer widgets shown by default than after the switch


def failures(steps: dict, resized: tuple[str, ...] = RESIZED) -> list[str]:
    """What does not hold in the recorded steps (empty: everything does); ``resized``: the nodes that must be shorter
    with their defaults than after the switch."""
    found = [] if steps["extension_loaded"] else ["the extension ComfyUI-L2P.InputScopes is not registered"]
    for step in ("defaults", "switched", "reloaded", "back"):
        for node, state in steps[step].items():
            names = [name for name, _ in state["widgets"]]
            hidden = set(names) - set(state["visible"])
            if hidden != expected_hidden(node, state["widgets"]):
                found.append(f"{step}: {node} hides {sorted(hidden)}, expected"
                             f" {sorted(expected_hidden(node, state['widgets']))}")
            steps_between = [b - a for a, b in zip(state["rows"], state["rows"][1:])]
            if steps_between and max(steps_between) - min(steps_between) > 1:  # a hidden widget left a gap
                found.append(f"{step}: {node}'s visible widgets are not evenly stacked: rows at {state['rows']}")
    for node in resized:
        if not steps["defaults"][node]["size"][1] < steps["switched"][node]["size"][1]:
            found.append(f"{node} did not resize: {steps['defaults'][node]['size']} with inputs hidden,"
                         f" {steps['switched'][node]['size']} with all shown")
    if steps["linked"] != {"linked": True, "shown": True}:
        found.append(f"spectrum_degree linked under FORA: {steps['linked']}, expected linked and shown")
    if steps["unlinked"] != {"linked": False, "shown": False}:
        found.append(f"spectrum_degree unlinked under FORA: {steps['unlinked']}, expected unlinked and hidden")
    for name, nodes in steps["templates"].items():
        for node_id, state in nodes.items():
            values = [value for _, value in state["widgets"]]
            if values != state["saved"]:
                found.append(f"template {name}, node {node_id}: loaded {values}, saved {state['saved']}")
            hidden = {n for n, _ in state["widgets"]} - set(state["visible"])
            if hidden != expected_hidden(state["type"], state["widgets"]):
                found.append(f"template {name}, node {node_id}: hides {sorted(hidden)}")
    before, save = steps["switched"], steps["save"]
    for node, state in before.items():
        values = [value for _, value in state["widgets"]]
        if save["saved"][node] != values:
            found.append(f"saved widgets_values of {node} {save['saved'][node]} != its widgets in order {values}")
        queued = save["queued"][node]
        for name, value in state["widgets"]:
            if queued.get(name) != value:
                found.append(f"queued prompt: {node}.{name} is {queued.get(name)!r}, the widget holds {value!r}")
        if steps["reloaded"][node]["widgets"] != state["widgets"]:
            found.append(f"reloaded {node}: {steps['reloaded'][node]['widgets']} != saved {state['widgets']}")
    return found


def main(argv=None) -> int:
    args = parse_args("python3 scripts/browser_widgets.py", __doc__, argv)
    with comfyui_and_chromium(args, "l2p-widgets-") as (url, devtools, copy):
        folder = copy / "models" / "l2p"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PINNED).write_bytes(b"")  # only its name is listed; the page reads /object_info after this
        steps = asyncio.run(drive(devtools, url, args.out))
    found = failures(steps)
    steps["failures"] = found
    (args.out / "widgets.json").write_text(json.dumps(steps, indent=1, ensure_ascii=False))
    for step in ("defaults", "switched", "reloaded", "back"):
        for node, state in steps[step].items():
            hidden = [name for name, _ in state["widgets"] if name not in state["visible"]]
            print(f"[browser_widgets] {step:9} {node:17} size {state['size']} hidden {hidden}")
    print(f"[browser_widgets] spectrum_degree under FORA, linked: {steps['linked']}, unlinked: {steps['unlinked']}")
    for name, nodes in steps["templates"].items():
        for node_id, state in nodes.items():
            hidden = [n for n, _ in state["widgets"] if n not in state["visible"]]
            print(f"[browser_widgets] template {name[:40]:40} {state['type']:17} hidden {hidden}")
    print("\n".join(f"[browser_widgets] FAILED: {f}" for f in found) or "[browser_widgets] every check holds")
    print(f"[browser_widgets] {args.out / 'widgets.json'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
