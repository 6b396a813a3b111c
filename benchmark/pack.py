"""Import the repository as the package ``comfyui_l2p`` (as ComfyUI and the tests do), without running its
``__init__`` (which registers nodes and needs ComfyUI). Scripts call ``comfyui_l2p()`` before importing from it."""
from __future__ import annotations

import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_l2p"


def comfyui_l2p() -> types.ModuleType:
    pkg = sys.modules.get(PACKAGE)
    if pkg is None:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = [str(ROOT)]
        pkg.__file__ = str(ROOT / "__init__.py")
        sys.modules[PACKAGE] = pkg
    return pkg
