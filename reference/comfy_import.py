"""Import ComfyUI's own modules from the checkout named by the environment variable COMFYUI_PATH.

The Qwen-Image reference model is ComfyUI's `comfy.ldm.qwen_image.model.QwenImageTransformer2DModel` itself, and
the FLUX reference loads into ComfyUI's `Flux` (nothing of ComfyUI is copied into this project), so training,
loading and benchmarking them against ComfyUI need a checkout. Only model code is imported: no `nodes`, no server.
ComfyUI is told to run on the CPU before `comfy.model_management` is imported (it would look for a GPU otherwise),
which is also what tests/comfy_host.py does, so both can live in one process.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

ENV_VAR = "COMFYUI_PATH"


class ComfyUINotFound(RuntimeError):
    """COMFYUI_PATH is unset or does not name a usable ComfyUI checkout."""


def comfyui_path() -> Path:
    """The checkout named by COMFYUI_PATH; raises ComfyUINotFound saying what to set when unusable."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        raise ComfyUINotFound(
            f"{ENV_VAR} is not set: the Qwen-Image reference model is ComfyUI's own QwenImageTransformer2DModel, "
            f"imported from a ComfyUI checkout. Set {ENV_VAR}=/path/to/ComfyUI (the folder holding main.py)."
        )
    path = Path(value).expanduser().resolve()
    expected = path / "comfy" / "ldm" / "qwen_image" / "model.py"
    if not expected.is_file():
        raise ComfyUINotFound(
            f"{ENV_VAR}={path} is not a ComfyUI checkout with Qwen-Image support: expected {expected}. "
            f"Set {ENV_VAR} to the folder holding ComfyUI's main.py (ComfyUI 0.3.50 or newer)."
        )
    return path


def comfy_modules(*names: str) -> tuple[types.ModuleType, ...]:
    """ComfyUI's modules by dotted name (e.g. "comfy.ldm.flux.model") from COMFYUI_PATH, CPU only."""
    path = comfyui_path()
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import comfy.options  # noqa: F401  (importing it leaves ComfyUI's argv parsing off)
    import comfy.cli_args

    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = True  # must precede model_management's import, which probes devices
    modules = tuple(importlib.import_module(name) for name in names)
    for module in modules:
        origin = Path(module.__file__).resolve()
        if not origin.is_relative_to(path):
            raise ComfyUINotFound(
                f"'{module.__name__}' is already imported from {origin}, not from {ENV_VAR}={path}; run in a fresh "
                f"process or point {ENV_VAR} at that checkout."
            )
    return modules


def comfyui_version() -> str:
    """The version of the checkout at COMFYUI_PATH (its comfyui_version.py), or "unknown" when it has none."""
    try:
        (module,) = comfy_modules("comfyui_version")
    except ImportError:
        return "unknown"
    return str(getattr(module, "__version__", "unknown"))

