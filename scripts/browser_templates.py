"""What a new user sees of the pack's templates and nodes in ComfyUI's real frontend: headless screenshots.

    python3 scripts/browser_templates.py --comfyui /path/to/ComfyUI --site DIR --out DIR [--chromium chromium]

Same set-up as scripts/browser_check.py (a temporary copy of the checkout with this pack in custom_nodes/, ComfyUI on
127.0.0.1 with --cpu, ``--site`` holding the frontend package the checkout pins, Chromium over the DevTools
protocol). Then:
1. ``templates.png``: Workflow > Browse Templates, the pack's category (its cards: thumbnails and titles);
2. ``nodes.png``: L2P Cache, Forecast Cache and L2P Calibrate as a user adds them (defaults, widgets in order);
3. ``template-1.png``: the first template loaded from the picker's card, as a user opens it;
4. ``page.json``: the cards' titles in the picker's order, the first template's nodes once opened, each
   thumbnail as the server sends it, the new nodes' widgets, and every widget's tooltip as /object_info serves it.
The screenshots are for a person to look at; tests/test_workflows.py checks the names and files the picker reads.
"""
from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import comfyui_and_chromium, comfyui_page, parse_args  # noqa: E402

PACK = "ComfyUI-L2P"
NODES = ("L2PCache", "L2PForecastCache", "L2PCalibrate")
OPEN_TEMPLATES = ("window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
# click the pack's entry in the dialog's category list (the frontend names a custom pack's category by its folder)
PICK_PACK = ("(() => { const hits = [...document.querySelectorAll('button, li, a, span, div')].filter(e =>"
             f" e.children.length === 0 && e.textContent.trim() === '{PACK}');"
             " if (!hits.length) return false; hits[hits.length - 1].click(); return true; })()")
TITLES = ("(() => [...document.querySelectorAll('*')].filter(e => e.children.length === 0 &&"
          " /^[1-8] [A-Z]/.test(e.textContent.trim())).map(e => e.textContent.trim()))()")
OPEN_FIRST = ("(() => { const e = [...document.querySelectorAll('*')].find(e => e.children.length === 0 &&"
              " e.textContent.trim().startsWith('1 FLUX.1 dev')); if (!e) return false; e.click(); return true;"
              " })()")
ADD_NODES = ("window.app.graph.clear(); " + " ".join(
    f"{{ const n = LiteGraph.createNode('{t}'); n.pos = [{40 + 420 * i}, 60]; window.app.graph.add(n); }}"
    for i, t in enumerate(NODES))
    + " window.app.graph.setDirtyCanvas(true, true);"
    " [...window.app.graph._nodes].map(n => ({type: n.type, widgets: n.widgets.map(w => [w.name, w.value])}))")


async def drive(devtools: str, server: str, out: Path) -> dict:
    page_state: dict = {}
    async with comfyui_page(devtools, server, 1500) as page:
        page_state["nodes"] = await page.js(ADD_NODES)
        await asyncio.sleep(1)
        await page.screenshot(out / "nodes.png")
        await page.js(OPEN_TEMPLATES)
        await asyncio.sleep(3)
        page_state["picked_pack"] = await page.js(PICK_PACK)
        await asyncio.sleep(4)  # the thumbnails load
        page_state["card_titles"] = await page.js(TITLES)
        await page.screenshot(out / "templates.png")
        page_state["opened_first_template"] = await page.js(OPEN_FIRST)
        await asyncio.sleep(4)
        page_state["loaded_nodes"] = await page.js("[...window.app.graph._nodes].map(n => n.type)")
        await page.screenshot(out / "template-1.png")
    return page_state


def served_thumbnails(server: str) -> dict:
    """Each listed template's thumbnail as the frontend asks for it: status, content type, bytes."""
    with urllib.request.urlopen(f"{server}/workflow_templates", timeout=30) as r:
        names = json.load(r).get(PACK, [])
    found = {}
    for name in names:
        with urllib.request.urlopen(f"{server}/api/workflow_templates/{PACK}/{urllib.parse.quote(name)}.jpg",
                                    timeout=30) as r:
            found[name] = [r.status, r.headers.get("Content-Type"), len(r.read())]
    return found


def tooltips(server: str) -> dict:
    found = {}
    for node in NODES:
        with urllib.request.urlopen(f"{server}/object_info/{node}", timeout=30) as r:
            info = json.load(r)[node]
        for group in ("required", "optional"):
            for name, spec in info["input"].get(group, {}).items():
                if len(spec) > 1 and isinstance(spec[1], dict) and "tooltip" in spec[1]:
                    found[f"{node}.{name}"] = spec[1]["tooltip"]
    return found


def main(argv=None) -> int:
    args = parse_args("python3 scripts/browser_templates.py", __doc__, argv)
    with comfyui_and_chromium(args, "l2p-templates-") as (url, devtools, _copy):
        state = asyncio.run(drive(devtools, url, args.out))
        state["thumbnails_served"] = served_thumbnails(url)
        state["tooltips"] = tooltips(url)
        (args.out / "page.json").write_text(json.dumps(state, indent=1, ensure_ascii=False))
        print(f"[browser_templates] {args.out / 'page.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
