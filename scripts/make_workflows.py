"""Generate the pack's example workflows, ``example_workflows/*.json`` and a thumbnail ``*.jpg`` beside each: the
templates ComfyUI serves for this pack.

ComfyUI lists ``custom_nodes/<pack>/example_workflows/*.json`` under Workflow > Browse Templates
(``app/custom_node_manager.py``). It serves ``example``, ``examples``, ``workflow`` and ``workflows`` too, but logs
a hint to rename those to ``example_workflows``: that is the one folder name it serves without complaint. The card
of each template shows its file name as title and description and ``<name>.jpg`` as its thumbnail; the names and
their order are in workflow_catalog.py, the thumbnails are drawn by workflow_thumbnails.py from the benchmark's
images.

Each workflow is described compactly (workflows_flux_qwen_hunyuan.py, workflows_wan_sdxl.py): node types, widget
values by input NAME, and links written as ``model=unet.out("MODEL")`` (an input name receiving a node's output, by
output name). Everything positional that the UI format needs -- the order of ``widgets_values`` (with the
frontend-only ``control_after_generate`` value after a seed), the link slot indices, the socket lists -- is read from
the node definitions of a real ComfyUI, the same definitions its ``/object_info`` sends to the frontend
(workflow_format.py builds the file). So a description that names an unknown node or input, leaves out a widget that
has no default or links mismatched types fails here instead of producing a workflow that loads wrong (a widget left
out takes its default, as in a node the user adds).

The committed files are generated on the oldest ComfyUI the pack supports (``reference_host()``, 0.3.64) and are
checked on every other host by what ComfyUI's frontend makes of them there (``workflow_defs.load_differences``):
newer hosts add widgets with defaults (CreateVideo's bit_depth), turn a combo into a DynamicCombo (SaveVideo's
format) and add output slots (SaveImage, SaveVideo); a file saved on 0.3.64 loads on them as the generator builds
it there.

Usage (needs a ComfyUI checkout; nothing of it is modified):
    COMFYUI_PATH=/path/to/ComfyUI-0.3.64 python3 scripts/make_workflows.py   # (re)write example_workflows/
    COMFYUI_PATH=/path/to/ComfyUI python3 scripts/make_workflows.py --check  # exit 1 unless right on that host

Public API (used by tests/test_workflows.py):
    WORKFLOW_NAMES: tuple[str, ...]          file stems (the cards' titles), one per workflow, in the picker's order
    OUT_DIR: Path                            example_workflows/
    generate_all() -> dict[str, dict]        file stem -> UI-format workflow (bootstraps ComfyUI on first use)
    reference_host() -> str                  the ComfyUI version the committed files are generated on
    committed_problems(generated, definitions, host_version) -> name -> list of problems ([] = right here)
    load_comfyui() -> (nodes module, set of this pack's node ids)
    render(workflow: dict) -> str            the exact text written to disk
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "example_workflows"
sys.path.insert(0, str(ROOT / "tests"))  # comfy_host: the one place that knows how to bootstrap ComfyUI in-process
sys.path.insert(0, str(ROOT / "scripts"))  # the workflow modules, when this file is loaded by path (tests)
import conftest  # noqa: E402,F401  (makes the pack importable as comfyui_l2p, without ComfyUI)

import workflow_catalog  # noqa: E402
import workflow_parts  # noqa: E402,F401  (public: the templates' shared settings)
import workflow_thumbnails  # noqa: E402
import workflows_flux_qwen_hunyuan  # noqa: E402
import workflows_wan_sdxl  # noqa: E402
from workflow_defs import CORE_CNR_ID, NodeDef, load_differences, read_node_def  # noqa: E402
from workflow_format import build, render, versions  # noqa: E402,F401  (render: public API)
from workflow_parts import Description  # noqa: E402

_DESCRIBED: dict[str, Callable[[], Description]] = {  # key -> description function
    describe().name: describe
    for describe in (*workflows_flux_qwen_hunyuan.DESCRIPTIONS, *workflows_wan_sdxl.DESCRIPTIONS)}
if set(_DESCRIBED) != set(workflow_catalog.FILE_STEMS):
    raise RuntimeError(f"workflow_catalog.py and the descriptions disagree: catalog"
                       f" {sorted(workflow_catalog.FILE_STEMS)}, described {sorted(_DESCRIBED)}")
DESCRIPTIONS: tuple[Callable[[], Description], ...] = tuple(_DESCRIBED[key] for key, _ in workflow_catalog.TEMPLATES)
WORKFLOW_NAMES: tuple[str, ...] = tuple(stem for _, stem in workflow_catalog.TEMPLATES)  # no ComfyUI needed

# ------------------------------------------------------------------------------------------------ ComfyUI


def load_comfyui() -> tuple[Any, set[str]]:
    """ComfyUI's ``nodes`` module (COMFYUI_PATH) with its built-in extra nodes and this pack loaded, as at startup;
    and the node ids this pack registered."""
    import comfy_host

    comfy = comfy_host.bootstrap()
    extras = str(comfy.path / "comfy_extras")  # load_custom_node registers each extra under its path (nodes.py)
    if not any(name.startswith(extras) for name in sys.modules):
        asyncio.run(comfy.nodes.init_builtin_extra_nodes())
    return comfy.nodes, set(comfy_host.load_pack_in_comfyui().nodes)


def comfyui_definitions() -> Callable[[str], NodeDef]:
    """Node definitions as the ComfyUI at COMFYUI_PATH serves them, with this pack loaded."""
    nodes, pack_ids = load_comfyui()
    cache: dict[str, NodeDef] = {}

    def definition(node_type: str) -> NodeDef:
        if node_type not in cache:
            cache[node_type] = read_node_def(node_type, nodes.NODE_CLASS_MAPPINGS, pack_ids)
        return cache[node_type]

    return definition


def generate_all(definitions: Callable[[str], NodeDef] | None = None) -> dict[str, dict]:
    """File stem -> UI-format workflow, in the picker's order."""
    definitions = definitions or comfyui_definitions()
    workflows = {}
    for describe in DESCRIPTIONS:
        description = describe()
        workflows[workflow_catalog.file_stem(description.name)] = build(description, definitions)
    return workflows


def reference_host() -> str:
    """The ComfyUI version the committed files are generated on: the oldest the pack supports (pyproject.toml
    requires-comfyui). A workflow saved there loads right on every newer host that only adds defaulted widgets
    and unlinked slots, which is what ComfyUI's own compatibility promises; one generated on the newest host would
    carry values and output slots an older host does not have."""
    return versions()[CORE_CNR_ID]


def committed_problems(generated: Mapping[str, dict], definitions: Callable[[str], NodeDef],
                       host_version: str) -> dict[str, list[str]]:
    """Workflow name -> what is wrong with the committed file on this host ([]: nothing). On the reference host
    the file must be the generator's output byte for byte; on any other, it must load as the generator builds it
    there (workflow_defs.load_differences: what ComfyUI's frontend makes of a workflow saved on another version)."""
    problems = {}
    for name, workflow in generated.items():
        path = OUT_DIR / f"{name}.json"
        if not path.exists():
            problems[name] = [f"{path.relative_to(ROOT)} is missing"]
        elif host_version == reference_host():
            text_equal = path.read_text(encoding="utf-8") == render(workflow)
            problems[name] = [] if text_equal else [f"differs from the generator on ComfyUI {host_version}"]
        else:
            problems[name] = load_differences(json.loads(path.read_text(encoding="utf-8")), workflow, definitions)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    import comfy_host

    path = comfy_host.comfyui_path()
    if path is None:
        parser.error(comfy_host.SKIP_REASON)
    host = comfy_host.comfyui_version(path)
    if host != reference_host() and not args.check:
        parser.error(f"the committed workflows are generated on ComfyUI {reference_host()}, the oldest this pack "
                     f"supports (pyproject.toml requires-comfyui); {path} is ComfyUI {host}. Point COMFYUI_PATH at "
                     f"a {reference_host()} checkout to write them, or run with --check to test them on this one.")
    definitions = comfyui_definitions()
    workflows = generate_all(definitions)
    extra = sorted(p for p in OUT_DIR.glob("*.json") if p.stem not in workflows) if OUT_DIR.exists() else []
    for path_ in extra:
        print(f"not generated by this script (remove it or describe it here): {path_.relative_to(ROOT)}")
    if args.check:
        problems = {name: found for name, found in committed_problems(workflows, definitions, host).items() if found}
        for name, found in problems.items():
            print(f"{name}.json on ComfyUI {host}:\n  " + "\n  ".join(found))
        thumbnails = workflow_thumbnails.problems()
        for line in thumbnails:
            print(line)
        if not problems and not extra and not thumbnails:
            print(f"{len(workflows)} workflows and thumbnails right on ComfyUI {host} in {OUT_DIR.relative_to(ROOT)}/")
        return 1 if problems or extra or thumbnails else 0
    written = 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, workflow in workflows.items():
        target, text = OUT_DIR / f"{name}.json", render(workflow)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            print(f"wrote: {target.relative_to(ROOT)}")
            written += 1
    for path_ in workflow_thumbnails.write_all():
        print(f"wrote: {path_.relative_to(ROOT)}")
        written += 1
    if not written and not extra:
        print(f"{len(workflows)} workflows and thumbnails up to date in {OUT_DIR.relative_to(ROOT)}/")
    return 1 if extra else 0


if __name__ == "__main__":
    sys.exit(main())
