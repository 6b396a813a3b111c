"""The Python half of scripts/setup_comfyui_tests.sh: which of a ComfyUI checkout's requirements to install, the two
guards that make PyPI's CUDA builds of torchvision and torchaudio import on CPU-only torch, and the final check that
imports what the real-ComfyUI tests import.

    python3 scripts/comfyui_host_setup.py requirements /path/to/ComfyUI   # the requirement lines pip should install
    python3 scripts/comfyui_host_setup.py guard                           # patch the installed packages (idempotent)
    python3 scripts/comfyui_host_setup.py check /path/to/ComfyUI          # exit 1 unless the tests' imports work

Why the guards: the only torchvision and torchaudio on PyPI for torch 2.13 are CUDA builds. torchvision's fake-op
registrations for ``torchvision::nms`` / ``qnms`` fail at import when the C++ ops are absent; torchaudio's
``_load_lib`` raises the OSError of loading its CUDA library. ComfyUI needs only their pure-Python parts (torchvision
transforms; torchaudio at import since ComfyUI 0.33, whose ``comfy/sd.py`` imports the LTX-2 audio VAE). Each guard
is a text transformation of one installed file, marked so a second run recognises it (also when it was applied by
hand with the same marker) and changes nothing; when the file no longer has the text the guard was written for, it
stops with the package's version and what it looked for, instead of patching something else.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# torch, torchvision and torchaudio are pinned by the shell script (their CPU-compatible versions); the UI packages
# are what ComfyUI's server serves (frontend, templates, docs): the tests start no server, and two checkouts in one
# environment pin different versions of them, which would flip on every run instead of changing nothing.
PINNED_BY_SETUP = frozenset({"torch", "torchvision", "torchaudio"})
SERVER_UI_ONLY = frozenset({"comfyui-frontend-package", "comfyui-workflow-templates", "comfyui-embedded-docs"})
ALSO_NEEDED = ("requests",)  # imported by ComfyUI's server code, not listed by 0.3.64's requirements.txt


class GuardError(RuntimeError):
    """An installed file does not have the text a guard was written for."""


def requirement_name(line: str) -> str:
    """The normalised project name of a requirement line (PEP 503: lower case, runs of -_. as one -)."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", name.group(1)).lower() if name else ""


def host_requirements(text: str) -> list[str]:
    """The lines of a ComfyUI requirements.txt to install here, plus what it needs and does not list."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = requirement_name(line)
        if name in PINNED_BY_SETUP or name in SERVER_UI_ONLY:
            continue
        lines.append(line)
    listed = {requirement_name(line) for line in lines}
    return lines + [extra for extra in ALSO_NEEDED if extra not in listed]


@dataclass(frozen=True)
class Guard:
    """One text transformation of one file of an installed package: each ``anchor`` replaced by its replacement."""

    package: str
    relative_path: str
    marker: str  # present once guarded
    replacements: tuple[tuple[str, str], ...]  # (anchor, replacement); every anchor must occur

    def apply(self, source: str, where: str) -> str:
        """``source`` guarded; unchanged when already guarded; GuardError naming ``where`` when an anchor is absent."""
        if self.marker in source:
            return source
        for anchor, replacement in self.replacements:
            if anchor not in source:
                raise GuardError(
                    f"{where}: expected the text {anchor!r} to guard ({self.package} CPU guard), but this version "
                    f"of {self.package} does not have it. Install the version setup_comfyui_tests.sh pins, or update "
                    f"the guard in scripts/comfyui_host_setup.py for this one."
                )
            source = source.replace(anchor, replacement)
        if self.marker not in source:
            raise GuardError(f"{where}: guard applied but its marker {self.marker!r} is missing (a bug in the guard)")
        return source


TORCHVISION_FAKE_OPS = Guard(
    package="torchvision",
    relative_path="_meta_registrations.py",
    marker="_l2p_register_fake_if_op_exists",
    replacements=(
        ('@torch.library.register_fake("torchvision::', '@_l2p_register_fake_if_op_exists("torchvision::'),
        ("\n\n@functools.lru_cache(None)", '''

def _l2p_register_fake_if_op_exists(qualname):
    # CPU torch + PyPI torchvision: the C++ ops are absent, so registering fakes for them fails at import.
    ns, op = qualname.split("::")
    if not hasattr(getattr(torch.ops, ns), op):
        return lambda fn: fn
    return torch.library.register_fake(qualname)


@functools.lru_cache(None)'''),
    ),
)

TORCHAUDIO_CPU_LOAD = Guard(
    package="torchaudio",
    relative_path="_extension/utils.py",
    marker="_l2p_cpu_guard",
    replacements=(
        ("    torch.ops.load_library(paths[0])\n    return True\n", '''    try:
        torch.ops.load_library(paths[0])
    except OSError:  # _l2p_cpu_guard: a CUDA build on CPU-only torch
        return False
    return True
'''),
    ),
)

GUARDS = (TORCHVISION_FAKE_OPS, TORCHAUDIO_CPU_LOAD)


def installed_file(guard: Guard) -> Path:
    """The guarded file in the installed package (found without importing it: unguarded, it fails to import)."""
    spec = importlib.util.find_spec(guard.package)
    if spec is None or not spec.submodule_search_locations:
        raise GuardError(f"{guard.package} is not installed; setup_comfyui_tests.sh installs it before guarding")
    return Path(list(spec.submodule_search_locations)[0]) / guard.relative_path


def guard_installed(guard: Guard) -> str:
    """Guard the installed file; returns what happened, in a line. Writes only when the text changes."""
    path = installed_file(guard)
    version = importlib.metadata.version(guard.package)
    source = path.read_text(encoding="utf-8")
    guarded = guard.apply(source, f"{guard.package} {version} ({path})")
    if guarded == source:
        return f"{guard.package} {version}: already guarded ({path})"
    tmp = path.with_name(path.name + ".l2p-tmp")
    tmp.write_text(guarded, encoding="utf-8")
    os.replace(tmp, path)
    return f"{guard.package} {version}: guarded ({path})"


def check_host(comfy_path: Path) -> list[str]:
    """Import what the real-ComfyUI tests import, from ``comfy_path``, load its extra nodes and the pack as ComfyUI's
    startup does, and require every node type the example workflows use to be registered. Returns the report
    lines; raises on any failure."""
    os.environ["COMFYUI_PATH"] = str(comfy_path)
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "scripts"))
    import comfy_host  # noqa: E402  (tests/: the harness the tests use; bootstraps the way they do)
    import torchaudio  # noqa: F401  (ComfyUI 0.33 imports it at start; 0.3.64 for its audio nodes)
    import torchvision.transforms  # noqa: F401

    comfy = comfy_host.bootstrap()  # comfy.options, model_management on CPU, comfy.sd, samplers, nodes, ...
    import comfy_api.latest  # noqa: F401  (the pack's V3 node API)
    import execution  # noqa: F401  (run_node executes nodes through it)

    failed_extras = asyncio.run(comfy.nodes.init_builtin_extra_nodes()) or []
    pack = comfy_host.load_pack_in_comfyui()
    import make_workflows  # noqa: E402  (the node types tests/test_workflows.py reads definitions of)
    from workflow_defs import FRONTEND_ONLY  # noqa: E402

    used = {n.type for describe in make_workflows.DESCRIPTIONS for n in describe().nodes}
    missing = sorted(used - set(FRONTEND_ONLY) - set(comfy.nodes.NODE_CLASS_MAPPINGS))
    if missing:
        raise RuntimeError(f"node types the example workflows use are not registered: {missing} (failed extra "
                           f"node files: {sorted(failed_extras)}; ComfyUI logged why above)")
    lines = [
        f"{comfy_host.host_line()}: imports ok (comfy.sd, nodes, execution, comfy_api.latest, torchaudio, "
        f"torchvision.transforms); the pack registers {sorted(pack.nodes)}; the {len(used)} node types of the "
        f"example workflows are registered",
    ]
    if failed_extras:
        lines.append(f"  not loaded, used by no test: {sorted(failed_extras)} (ComfyUI logged why above)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("requirements").add_argument("comfyui", type=Path)
    sub.add_parser("guard")
    sub.add_parser("check").add_argument("comfyui", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "requirements":
            print("\n".join(host_requirements((args.comfyui / "requirements.txt").read_text(encoding="utf-8"))))
        elif args.command == "guard":
            for guard in GUARDS:
                print(guard_installed(guard))
        else:
            try:
                print("\n".join(check_host(args.comfyui.resolve())))
            except Exception:  # any failure of the tests' imports: show it all, then say what it means
                traceback.print_exc()
                print(f"setup_comfyui_tests: ComfyUI at {args.comfyui} is NOT ready for the real-ComfyUI tests: the "
                      f"imports above failed. Prepare it with: bash scripts/setup_comfyui_tests.sh {args.comfyui}",
                      file=sys.stderr)
                return 1
    except GuardError as error:
        print(f"setup_comfyui_tests: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
