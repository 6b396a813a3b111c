"""The README's test command installs everything the tests import, found by parsing imports (ast), not listed.

Every third-party module that the test modules import, directly or through the repository's own modules they
import (predictors/, nodes/, reference/, benchmark/, scripts/ loaded by path, ...), must come from a distribution
named in requirements-test.txt (or a file it includes with -r), or be torch, which the README command and .ci/run
install pinned. Imports that are optional in the code (inside ``try`` with an ``except ImportError`` that does not
re-raise) and ComfyUI's own modules (from the checkout in COMFYUI_PATH) are not requirements.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from comfy_fixtures import requires_comfyui
from conftest import PACKAGE, ROOT

TESTS = ROOT / "tests"
TEST_REQUIREMENTS = ROOT / "requirements-test.txt"
# ComfyUI's top-level modules: they come from the checkout named by COMFYUI_PATH, never from pip
HOST_MODULES = frozenset({"app", "comfy", "comfy_api", "comfy_execution", "comfy_extras", "comfyui_version",
                          "execution", "folder_paths", "nodes", "protocol", "server", "utils"})
# Modules only the real-ComfyUI side imports (to drive ComfyUI's server; the host check of
# scripts/comfyui_host_setup.py): ComfyUI's own requirements, which the README says to install with the checkout
# (scripts/setup_comfyui_tests.sh), not ours. Each is checked against the checkout's requirements.txt below.
HOST_REQUIREMENTS = frozenset({"aiohttp", "torchaudio", "torchvision"})
PINNED_SEPARATELY = {"torch"}  # `python3 -m pip install torch==... -r requirements-test.txt` (README, .ci/run)


@dataclass(frozen=True)
class Import:
    module: str  # dotted name as written, without the leading dots of a relative import
    level: int  # 0 absolute, n: relative, n dots
    names: tuple[str, ...]  # the names of ``from module import names``
    optional: bool


def _is_optional(handlers: list[ast.ExceptHandler]) -> bool:
    """An ``except ImportError`` (or ModuleNotFoundError) whose body does not raise: the code works without it."""
    for handler in handlers:
        caught = handler.type
        names = {n.id for n in ast.walk(caught) if isinstance(n, ast.Name)} if caught is not None else set()
        if names & {"ImportError", "ModuleNotFoundError"}:
            return not any(isinstance(node, ast.Raise) for node in ast.walk(handler))
    return False


def imports_of(path: Path) -> tuple[list[Import], list[Path]]:
    """The module's imports, and the repository scripts it loads from a file name (importlib's
    spec_from_file_location with a "<name>.py" string): one parse, one walk."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []
    strings: set[str] = set()

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try):
            guarded = optional or _is_optional(node.handlers)
            for child in node.body:
                visit(child, guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, 0, (), optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append(Import(node.module or "", node.level, tuple(a.name for a in node.names), optional))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytest_plugins"
                                                  for t in node.targets):
            found.extend(Import(c.value, 0, (), optional) for c in ast.walk(node.value)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            strings.add(node.value)
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found, [p for p in (ROOT / "scripts").glob("*.py") if p.name in strings]


def _module_file(base: Path, parts: list[str]) -> Path | None:
    target = base.joinpath(*parts) if parts else base
    if target.with_suffix(".py").is_file() and parts:
        return target.with_suffix(".py")
    if (target / "__init__.py").is_file():
        return target / "__init__.py"
    return None


def resolve(imp: Import, importer: Path) -> tuple[list[Path], str | None]:
    """(repository files the import executes, the top-level name of a module from outside the repository)."""
    if imp.level:
        base = importer.parent
        for _ in range(imp.level - 1):
            base = base.parent
        parts = imp.module.split(".") if imp.module else []
    else:
        parts = imp.module.split(".")
        top = parts[0]
        if top == PACKAGE:
            base, parts = ROOT, parts[1:]
        elif (TESTS / f"{top}.py").is_file():
            base = TESTS
        elif top not in HOST_MODULES and _module_file(ROOT, [top]) is not None:
            base = ROOT  # benchmark, reference, ... (scripts put the repository root on sys.path)
        elif (ROOT / "scripts" / f"{top}.py").is_file():
            base = ROOT / "scripts"  # scripts importing each other (they put scripts/ on sys.path)
        else:
            return [], top
    files = []
    for depth in range(1, len(parts) + 1):  # a package's __init__ runs before its submodules
        found = _module_file(base, parts[:depth])
        if found is not None:
            files.append(found)
    if not parts and _module_file(base, []) is not None:
        files.append(_module_file(base, []))
    for name in imp.names:  # ``from package import submodule``
        found = _module_file(base, [*parts, name])
        if found is not None:
            files.append(found)
    return files, None


def third_party_imports() -> dict[str, list[str]]:
    """Top-level names of required outside modules -> the import chain that reaches each (first found)."""
    chains: dict[Path, list[str]] = {p: [p.name] for p in sorted(TESTS.glob("*.py"))}
    queue = list(chains)
    needed: dict[str, list[str]] = {}
    while queue:
        path = queue.pop()
        imports, scripts = imports_of(path)
        targets = list(scripts)
        for imp in imports:
            files, outside = resolve(imp, path)
            targets.extend(files)
            if outside and not imp.optional and outside not in sys.stdlib_module_names \
                    and outside not in HOST_MODULES | HOST_REQUIREMENTS:
                needed.setdefault(outside, chains[path] + [imp.module])
        for target in targets:
            if target not in chains:
                chains[target] = chains[path] + [str(target.relative_to(ROOT))]
                queue.append(target)
    return needed


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(path: Path, seen: set[Path] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    seen.add(path)
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            included = path.parent / line.split(None, 1)[1]
            if included not in seen:
                names |= requirement_names(included, seen)
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match:
            names.add(_normalise(match.group(0)))
    return names


def test_the_walk_finds_imports_through_the_repository():
    """The walk itself: the known indirect needs are found with their chains (a broken walk finds nothing)."""
    needed = third_party_imports()
    # Pillow is imported by reference/ and nodes/ (the report's plot), never by a test file itself
    assert "PIL" in needed and any(part.startswith(("reference/", "nodes/")) for part in needed["PIL"])
    assert "sklearn" in needed  # imported in a function, re-raised when missing: required
    assert "safetensors" in needed and "numpy" in needed and "torch" in needed
    assert "matplotlib" not in needed  # optional: benchmark/outputs.py plots only when it is there


def test_every_third_party_import_of_the_tests_is_in_the_test_requirements():
    required = requirement_names(TEST_REQUIREMENTS) | PINNED_SEPARATELY
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, chain in sorted(third_party_imports().items()):
        dists = {_normalise(d) for d in distributions.get(module, [])}
        if not dists:
            missing.append(f"{module} (not installed here; imported via {' -> '.join(chain)})")
        elif not dists & required:
            missing.append(f"{module} from {sorted(dists)} (imported via {' -> '.join(chain)})")
    assert not missing, (f"{TEST_REQUIREMENTS.name} (with its -r files) does not install: " + "; ".join(missing)
                         + ". Add the distribution to requirements-test.txt")


def test_the_readme_and_ci_install_torch_pinned_with_the_test_requirements():
    command = "python3 -m pip install torch==2.13.0 -r requirements-test.txt && python3 -m pytest -q"
    assert command in (ROOT / "README.md").read_text()
    assert re.search(r"pip install .*torch==2\.13\.0 -r requirements-test\.txt", (ROOT / ".ci" / "run").read_text())


@requires_comfyui
def test_the_host_requirements_are_comfyuis_own():
    import comfy_host

    assert HOST_REQUIREMENTS <= requirement_names(comfy_host.comfyui_path() / "requirements.txt")


@requires_comfyui
@pytest.mark.parametrize("module", sorted(HOST_MODULES))
def test_every_host_module_name_is_a_comfyui_top_level_module(module):
    import comfy_host

    checkout = comfy_host.comfyui_path()
    assert (checkout / f"{module}.py").is_file() or (checkout / module / "__init__.py").is_file() \
        or (checkout / module).is_dir(), f"{module} is not a top-level module of {checkout}"
