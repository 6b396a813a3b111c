"""The scripts in scripts/ as modules, for their tests (scripts/ is not a package)."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> types.ModuleType:
    """scripts/<name>.py, executed once per process as the module ``name`` (registered in sys.modules before it
    runs: dataclasses look their module up while the file executes)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
