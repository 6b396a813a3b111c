"""Look at the pack in ComfyUI's real frontend: headless Chromium against a local ComfyUI server, screenshots.

    python3 scripts/browser_check.py --comfyui /path/to/ComfyUI --site DIR --out DIR [--chromium chromium]

What it does (nothing of the given ComfyUI checkout is modified; everything runs in a temporary copy, on
127.0.0.1, with --cpu):
1. copies the checkout, installs this pack in its custom_nodes/ with an empty models/l2p/, and adds a tiny helper
   pack (nodes that output a tiny FLUX built from ComfyUI's own classes, as tests/comfy_host.py builds it, and a
   conditioning for it: no model weights exist here);
2. starts ComfyUI's server (``--site``: a folder holding ComfyUI's frontend package, comfyui-frontend-package of the
   version the checkout's requirements.txt pins, installed with ``pip install --no-deps --target DIR``);
3. drives Chromium through the DevTools protocol: a new L2P Cache node on the canvas (its predictor_file widget on
   an empty models/l2p/), then a graph queued from the page as a user queues it: the default L2P Cache learning
   (runs 1 and 4 of 4) and forecasting (run 5), then L2P Calibrate; a screenshot after each into ``--out``.
The screenshots are for a person to look at; the real-ComfyUI tests assert the same messages
(tests/test_comfy_node_report.py).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import AsyncIterator, Iterator


ROOT = Path(__file__).resolve().parents[1]
HELPER = '''
"""Browser-check helper (scripts/browser_check.py): a tiny FLUX and a conditioning for it, without weights."""
import sys
from comfy_api.latest import ComfyExtension, io

_HARNESS = None


def harness():
    """The test harness's model builder and conditioning (tests/tiny_models.py, tests/comfy_sampling.py)."""
    global _HARNESS
    if _HARNESS is None:
        sys.path.insert(0, {tests!r})
        import comfy_host, comfy_sampling, tiny_models
        import comfy.utils

        comfy_host.bootstrap()  # the running server's modules; only re-enables the progress bar it turns off
        comfy.utils.set_progress_bar_enabled(True)
        _HARNESS = (tiny_models, comfy_sampling)
    return _HARNESS


class TinyFlux(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="L2PCheckTinyFlux", display_name="Tiny FLUX (browser check)", category="l2p_check",
                         inputs=[io.Int.Input("seed", default=0)], outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, seed):
        tiny_models, _sampling = harness()
        return io.NodeOutput(tiny_models.tiny_flux(seed=seed).patcher)


class TinyConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="L2PCheckConditioning", display_name="Tiny conditioning (browser check)",
                         category="l2p_check", inputs=[io.Model.Input("model"), io.Int.Input("seed", default=0)],
                         outputs=[io.Conditioning.Output()])

    @classmethod
    def execute(cls, model, seed):
        _tiny_models, sampling = harness()
        return io.NodeOutput(sampling.make_conditioning(model, seed=seed))


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [TinyFlux, TinyConditioning]


async def comfy_entrypoint():
    return Extension()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def prepare(comfyui: Path, work: Path) -> Path:
    copy = work / "ComfyUI"
    shutil.copytree(comfyui, copy, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    pack = copy / "custom_nodes" / "ComfyUI-L2P"
    shutil.copytree(ROOT, pack, ignore=shutil.ignore_patterns(".git", "__pycache__", "out", ".pytest_cache"))
    helper = copy / "custom_nodes" / "l2p_browser_check"
    helper.mkdir()
    (helper / "__init__.py").write_text(HELPER.replace("{tests!r}", repr(str(pack / "tests"))))
    return copy


def cache_prompt(seed: int, speedup: float = 2.5) -> dict:
    """An API-format graph: tiny FLUX -> L2P Cache (its defaults) -> KSampler (10 steps, ``seed``: a prompt equal
    to the last one would be all cached, nothing would run) -> SaveLatent."""
    return {
        "1": {"class_type": "L2PCheckTinyFlux", "inputs": {"seed": 0}},
        "2": {"class_type": "L2PCache", "inputs": {
            "model": ["1", 0], "predictor_file": "auto: learn from my runs", "speedup": speedup,
            "placement": "optimized", "warmup_steps": 1, "compute_last_step": False, "residual_budget": 0.05,
            "history_device": "model device", "predictor": "direct", "step_grid_mismatch": "refuse",
            "other_model": "refuse", "learning": "learn, then forecast", "learning_images": 4}},
        "3": {"class_type": "L2PCheckConditioning", "inputs": {"model": ["1", 0], "seed": 1}},
        "4": {"class_type": "L2PCheckConditioning", "inputs": {"model": ["1", 0], "seed": 2}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": seed,
            "steps": 10, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "l2p-check"}},
    }


def calibrate_prompt() -> dict:
    prompt = cache_prompt(seed=1000)
    prompt["2"] = {"class_type": "L2PCalibrate", "inputs": {
        "model": ["1", 0], "file_name": "my-calibration.safetensors", "ridge_lambda": 1e-6,
        "mode": "teacher-forced", "on_policy_speedup": 5.0}}
    return prompt


# what the page received for the L2P node since the last look, and the widgets that node has now
EVENTS = ("(() => { const got = window.__l2p.filter(e => e[1] === '2'); window.__l2p = [];"
          " const node = window.app.graph.getNodeById(2);"
          " return {received: got, widgets: node ? node.widgets.map(w => w.name) : null}; })()")


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=120)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not await self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(expression)
            await asyncio.sleep(0.5)

    async def screenshot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        print(f"[browser_check] {path}")


async def queue_and_wait(page: Page, server: str, prompt: dict) -> None:
    await page.js(f"window.app.loadApiJson({json.dumps(prompt)}, 'l2p-check')")
    await asyncio.sleep(1)
    await page.js("window.app.queuePrompt(0, 1)")
    await asyncio.sleep(2)
    deadline = time.monotonic() + 300
    while True:
        with urllib.request.urlopen(server + "/queue", timeout=10) as r:
            queue = json.load(r)
        if not queue["queue_running"] and not queue["queue_pending"]:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the prompt did not finish")
        await asyncio.sleep(1)
    await asyncio.sleep(2)  # the last messages and the preview image reach the page
    await page.js("window.app.graph.setDirtyCanvas(true, true)")
    await asyncio.sleep(1)


@contextlib.asynccontextmanager
async def comfyui_page(devtools: str, server: str, width: int) -> AsyncIterator[Page]:
    """A new Chromium tab on ComfyUI's page (``width`` x 1000 pixels), once its app and canvas exist."""
    import aiohttp  # ComfyUI's own requirement: here only when a browser is driven (tests load this module without)

    async with aiohttp.ClientSession() as session:
        async with session.put(devtools + "/json/new?about:blank") as r:
            target = await r.json()
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1,
                            mobile=False)
            async with session.post(server + "/settings/Comfy.TutorialCompleted", json=True):
                pass  # a fresh user directory opens the templates dialog over the canvas otherwise
            await page.call("Page.navigate", url=server + "/")
            await page.until("!!(window.app && window.app.graph && window.app.canvas)")
            await asyncio.sleep(3)
            yield page


async def drive(devtools: str, server: str, out: Path) -> None:
    async with comfyui_page(devtools, server, 1700) as page:
        await page.js("window.__l2p = []; for (const kind of ['progress_text', 'executed'])"
                      " window.comfyAPI.api.api.addEventListener(kind, e => window.__l2p.push("
                      "[kind, String(e.detail.nodeId ?? e.detail.node), e.detail.text ?? e.detail.output])); true")
        for kind in ("keyDown", "keyUp"):  # and any other first-run dialog
            await page.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape",
                            windowsVirtualKeyCode=27)
        await page.js("window.app.graph.clear(); const n = LiteGraph.createNode('L2PCache'); n.pos = [80, 80];"
                      " window.app.graph.add(n); window.app.graph.setDirtyCanvas(true, true); true")
        await asyncio.sleep(1)
        await page.screenshot(out / "1-new-l2p-cache-node.png")
        seen = {}
        for run in range(1, 6):
            await queue_and_wait(page, server, cache_prompt(seed=run))
            seen[f"cache run {run}"] = await page.js(EVENTS)
            if run in (1, 4, 5):
                await page.screenshot(out / f"2-l2p-cache-run-{run}.png")
        await queue_and_wait(page, server, calibrate_prompt())
        seen["calibrate"] = await page.js(EVENTS)
        await page.screenshot(out / "3-l2p-calibrate.png")
        (out / "events.json").write_text(json.dumps(seen, indent=1))


def parse_args(prog: str, doc: str, argv=None) -> argparse.Namespace:
    """The browser scripts' shared arguments: the host checkout to copy, the frontend package, the output folder."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comfyui", required=True, type=Path)
    p.add_argument("--site", required=True, type=Path, help="folder holding comfyui_frontend_package")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


@contextlib.contextmanager
def comfyui_and_chromium(args: argparse.Namespace, prefix: str) -> Iterator[tuple[str, str, Path]]:
    """A copy of the host with this pack (``prepare``) served on 127.0.0.1 with --cpu, and a headless Chromium
    with its DevTools port open; yields (ComfyUI's URL, DevTools' URL, the copy) once both answer; both are
    stopped afterwards, and the copy removed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        copy = prepare(args.comfyui.resolve(), work)
        port, debug = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(args.site.resolve()), "COMFYUI_PATH": str(copy)}
        with open(args.out / "server.log", "w") as log:
            server = subprocess.Popen([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port",
                                       str(port), "--disable-auto-launch"], cwd=copy, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
            browser = subprocess.Popen([args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                        f"--remote-debugging-port={debug}", f"--user-data-dir={work / 'chrome'}",
                                        "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_http(url + "/object_info/L2PCache", 300)
                wait_http(f"http://127.0.0.1:{debug}/json/version", 60)
                yield url, f"http://127.0.0.1:{debug}", copy
            finally:
                browser.terminate()
                server.terminate()
                browser.wait(30)
                server.wait(30)


def main(argv=None) -> int:
    args = parse_args("python3 scripts/browser_check.py", __doc__, argv)
    with comfyui_and_chromium(args, "l2p-browser-") as (url, devtools, copy):
        asyncio.run(drive(devtools, url, args.out))
        print("[browser_check] learned files:", sorted(os.listdir(copy / "models" / "l2p")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
