"""Test bootstrap.

The repository root is the ComfyUI pack itself (ComfyUI imports its ``__init__.py``). Tests import it as the
package ``comfyui_l2p`` without running that ``__init__`` (which registers nodes and needs ComfyUI), so
``comfyui_l2p.predictors`` works on a machine without ComfyUI, while ``comfyui_l2p.nodes`` keeps its relative
imports. Tests that need a real ComfyUI checkout read it from ``COMFYUI_PATH`` (see ``comfy_host.py``).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_l2p"

if PACKAGE not in sys.modules:
    pkg = types.ModuleType(PACKAGE)
    pkg.__path__ = [str(ROOT)]
    pkg.__file__ = str(ROOT / "__init__.py")
    sys.modules[PACKAGE] = pkg
pytest_plugins = ["comfy_fixtures"]
