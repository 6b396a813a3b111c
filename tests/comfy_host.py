"""A real ComfyUI, in-process, for integration tests: find the host, bootstrap it, load the pack, run a node.

Everything here drives ComfyUI's own code from a checkout named by ``COMFYUI_PATH`` (nothing of ComfyUI is
copied into the project). The rest of the harness builds on it, one module per job:
    tiny_specs.py      the tiny models as data (FLUX / Qwen-Image / HunyuanVideo, the hook-point models)
    tiny_models.py     building them from ComfyUI's own classes with seeded weights (TinyModel, as_tiny)
    hook_models.py     the hook-point models (SD3, PixArt, LTXV, LTX-2, a Nunchaku-like FLUX)
    family_specs.py / comfy_families.py   every other family's tiny model, as data / built and sampled
    comfy_sampling.py  the sampling driver (KSampler and SamplerCustom bodies, conditioning)
    pass_counter.py    counting model calls and real transformer passes

Import order matters (see ``bootstrap``): ComfyUI's top-level module is called ``nodes``, like this pack's
``nodes/`` subpackage; tests import the pack as ``comfyui_l2p`` so ``import nodes`` must resolve to ComfyUI's.

Public API (all functions bootstrap on first use):
    comfyui_path() -> Path | None
    comfyui_version(path) -> str / host_line() -> str  (which host the tests run on)
    bootstrap() -> ComfyModules
    load_pack_in_comfyui(pack_dir=ROOT) -> LoadedPack / pack_for_script() -> LoadedPack | None
    run_node(node_cls, **inputs) -> tuple of outputs
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import logging
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "COMFYUI_PATH"
SKIP_REASON = f"{ENV_VAR} is not set: real-ComfyUI tests skipped; set it to a ComfyUI checkout"


class ComfyHostError(RuntimeError):
    """The ComfyUI checkout cannot be used (wrong path, shadowed module, failed pack load)."""


# ----------------------------------------------------------------------------------------------- bootstrap


@dataclasses.dataclass(frozen=True)
class ComfyModules:
    """The ComfyUI modules the harness (and tests) use, imported in the order that works."""

    path: Path
    model_management: types.ModuleType
    sd: types.ModuleType
    samplers: types.ModuleType
    sample: types.ModuleType
    nodes: types.ModuleType
    folder_paths: types.ModuleType
    supported_models: types.ModuleType
    model_patcher: types.ModuleType
    patcher_extension: types.ModuleType


_MODULES: ComfyModules | None = None


def comfyui_path() -> Path | None:
    """The checkout named by ``COMFYUI_PATH``, or None when the variable is unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser().resolve() if value else None


def comfyui_version(path: Path) -> str:
    """The version in the checkout's ``comfyui_version.py`` (read, not imported: the header is written before
    ComfyUI is bootstrapped), or "unknown" when it has none."""
    try:
        text = (path / "comfyui_version.py").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    return match.group(1) if match else "unknown"


def host_line() -> str:
    """Which host the real-ComfyUI tests run on, in one line (the pytest header and summary print it)."""
    path = comfyui_path()
    if path is None:
        return f"real-ComfyUI host: none ({ENV_VAR} is not set)"
    return f"real-ComfyUI host: ComfyUI {comfyui_version(path)} at {path}"


def bootstrap(device: str = "cpu") -> ComfyModules:
    """Import ComfyUI from ``COMFYUI_PATH`` once and return its modules. ``device`` "cpu" (the tests) or "cuda"
    (scripts/gpu_timing.py): ComfyUI picks its device once, so a second call asking for another one is refused.

    Order (each step guards a failure seen on a CPU-only machine):
    1. checkout first on sys.path, so ``nodes`` / ``utils`` / ``comfy`` are ComfyUI's;
    2. ``comfy.options`` with args parsing left off, so pytest's argv is never parsed;
    3. ``args.cpu = True`` (unless "cuda") before ``comfy.model_management`` is imported (it asserts CUDA otherwise);
    4. ``utils.extra_config`` before ``nodes`` (``nodes.py`` puts ``comfy/`` on sys.path, after which ``utils``
       would resolve to ``comfy/utils.py``).
    """
    global _MODULES
    if device not in ("cpu", "cuda"):
        raise ValueError(f"bootstrap: device must be 'cpu' or 'cuda', got {device!r}")
    if _MODULES is not None:
        running = _MODULES.model_management.get_torch_device().type
        if running != device:
            raise ComfyHostError(f"ComfyUI is already bootstrapped on {running}; cannot switch to {device} in one "
                                 f"process")
        return _MODULES
    path = comfyui_path()
    if path is None:
        raise ComfyHostError(SKIP_REASON)
    if not (path / "nodes.py").is_file() or not (path / "comfy" / "model_base.py").is_file():
        raise ComfyHostError(
            f"{ENV_VAR}={path} is not a ComfyUI checkout: expected nodes.py and comfy/model_base.py there. "
            f"Set {ENV_VAR} to the directory that holds ComfyUI's main.py."
        )
    for name in ("nodes", "comfy", "utils", "folder_paths"):
        module = sys.modules.get(name)
        if module is None:
            continue
        # `comfy` is a namespace package: no __file__, its location is its __path__
        origins = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", []))
        origin = next((o for o in origins if o), "")
        if not origin or not Path(origin).resolve().is_relative_to(path):
            raise ComfyHostError(
                f"module '{name}' is already imported from {origin or module!r}, not from {path}: ComfyUI's "
                f"top-level '{name}' is shadowed. Import this pack as 'comfyui_l2p' (tests/conftest.py), never "
                f"as top-level 'nodes'."
            )
    if str(path) in sys.path:
        sys.path.remove(str(path))
    sys.path.insert(0, str(path))

    import comfy.options  # noqa: F401  (args parsing stays off: the default)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    import utils.extra_config  # noqa: F401  (before `nodes`, see docstring)
    import comfy.model_management
    import comfy.sd
    import comfy.samplers
    import comfy.sample
    import comfy.supported_models
    import comfy.model_patcher
    import comfy.patcher_extension
    import comfy.utils
    import nodes
    import folder_paths

    # The KSampler path reads this global for its tqdm bar; tests want quiet logs, sampling is unaffected.
    comfy.utils.set_progress_bar_enabled(False)
    _predictor_folder_outside_checkout(folder_paths)
    if not Path(nodes.__file__).resolve().is_relative_to(path):
        raise ComfyHostError(f"'import nodes' resolved to {nodes.__file__}, expected ComfyUI's {path / 'nodes.py'}")
    _MODULES = ComfyModules(
        path=path,
        model_management=comfy.model_management,
        sd=comfy.sd,
        samplers=comfy.samplers,
        sample=comfy.sample,
        nodes=nodes,
        folder_paths=folder_paths,
        supported_models=comfy.supported_models,
        model_patcher=comfy.model_patcher,
        patcher_extension=comfy.patcher_extension,
    )
    return _MODULES


def _predictor_folder_outside_checkout(folder_paths) -> None:
    """The pack creates ``models/l2p/`` when it registers the folder; the harness never writes into the checkout,
    so that folder is a temporary one for this process (tests redirect it further with the ``l2p_dir`` fixture)."""
    if "l2p" in folder_paths.folder_names_and_paths:
        return
    folder = tempfile.mkdtemp(prefix="l2p-models-")
    atexit.register(shutil.rmtree, folder, True)
    folder_paths.folder_names_and_paths["l2p"] = ([folder], {".safetensors", ".txt"})


@dataclasses.dataclass(frozen=True)
class LoadedPack:
    """What ``nodes.load_custom_node`` registered for one pack."""

    module: types.ModuleType
    nodes: dict[str, type]  # node_id -> class, only the entries this load added or replaced
    display_names: dict[str, str]


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_LOADED_PACKS: dict[Path, LoadedPack] = {}


def load_pack_in_comfyui(pack_dir: str | os.PathLike = ROOT) -> LoadedPack:
    """Load a node pack exactly as ComfyUI's startup does and return what it registered.

    ComfyUI only logs a failed load; here it raises, with ComfyUI's own log lines, so a test shows why.
    """
    comfy = bootstrap()
    pack_dir = Path(pack_dir).resolve()
    if pack_dir in _LOADED_PACKS:  # ComfyUI loads a pack once per process; a second load registers nothing new
        return _LOADED_PACKS[pack_dir]
    if not (pack_dir / "__init__.py").is_file():
        raise ComfyHostError(f"{pack_dir} is not a node pack: expected {pack_dir / '__init__.py'}")
    nodes = comfy.nodes
    before = dict(nodes.NODE_CLASS_MAPPINGS)
    display_before = dict(nodes.NODE_DISPLAY_NAME_MAPPINGS)
    capture = _LogCapture()
    root_logger = logging.getLogger()
    root_logger.addHandler(capture)
    try:
        ok = asyncio.run(nodes.load_custom_node(str(pack_dir), module_parent="custom_nodes"))
    finally:
        root_logger.removeHandler(capture)
    if not ok:
        log = "\n".join(capture.messages) or "(ComfyUI logged nothing)"
        raise ComfyHostError(f"ComfyUI did not load the pack {pack_dir}. ComfyUI's log:\n{log}")
    sys_module_name = str(pack_dir).replace(".", "_x_")  # what load_custom_node registers (nodes.py:2118)
    added = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if before.get(k) is not v}
    names = {k: v for k, v in nodes.NODE_DISPLAY_NAME_MAPPINGS.items() if display_before.get(k) != v or k in added}
    _LOADED_PACKS[pack_dir] = LoadedPack(module=sys.modules[sys_module_name], nodes=added, display_names=names)
    return _LOADED_PACKS[pack_dir]


def pack_for_script() -> LoadedPack | None:
    """What a measuring script (scripts/) does first: the pack loaded in the host at ``COMFYUI_PATH``, or None,
    with ``SKIP_REASON`` printed, when the variable is unset (the script then exits 2)."""
    if comfyui_path() is None:
        print(SKIP_REASON)
        return None
    return load_pack_in_comfyui()


def run_node(node_cls: type, **inputs: Any) -> tuple:
    """Execute one node (V1 class or V3 ``io.ComfyNode``) through ComfyUI's executor and return its outputs.

    Uses ``execution.get_output_data``, the function the prompt executor calls, so V3 nodes run on a sanitized
    class clone exactly as in a real graph. Each input is one value (no list inputs); returns one value per
    output slot.
    """
    bootstrap()
    import execution  # ComfyUI's executor, importable only after bootstrap
    from comfy_api.internal import _ComfyNodeInternal

    obj = node_cls if issubclass(node_cls, _ComfyNodeInternal) else node_cls()
    output, _ui, has_subgraph, pending = asyncio.run(
        execution.get_output_data("comfy_host", "1", obj, {k: [v] for k, v in inputs.items()})
    )
    if pending or has_subgraph:
        raise ComfyHostError(f"{node_cls.__name__} returned a pending task or a subgraph; run_node handles neither")
    return tuple(values[0] for values in output)
