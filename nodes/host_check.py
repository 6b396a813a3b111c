"""What the pack needs from its ComfyUI host, feature-detected when a node runs, and one clear error when it is
missing: a host too old (before the wrapper API) or too new (a later ComfyUI that renamed or dropped something)
stops at graph time with the version found and what is needed, never with a traceback from inside sampling.

The capabilities are the whole of what the glue touches (cache_nodes.install, run_state's two wrappers):
- ``comfy.patcher_extension.WrappersMP.OUTER_SAMPLE``: brackets each sampling run (per-run state, the report);
- ``comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL``: wraps the transformer, skipped on a forecast step;
- the MODEL's ``clone``, ``add_wrapper_with_key`` and ``remove_wrappers_with_key``: keyed wrappers on a clone;
- ``CallbacksMP.ON_CLONE`` and the MODEL's ``add_callback_with_key`` / ``remove_callbacks_with_key``: every clone
  keeps its own report log (``holder.CLONE_CALLBACKS``);
- ``CFGGuider.outer_sample(noise, latent_image, sampler, sigmas, ...)``: the run's step grid is its 4th argument;
- ``comfy_api.latest.io`` (the V3 node schema) is needed to register the nodes at all: ``__init__.py`` checks it
  when ComfyUI loads the pack.
Whether the model's own transformer calls DIFFUSION_MODEL is checked per model by ``architectures.family_of``.
ComfyUI's version (``comfyui_version.py``) is read only for the message.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

# pyproject.toml requires-comfyui, and the hosts the test suite runs on (tests/test_host_check.py keeps them agreed)
MINIMUM_COMFYUI = "0.3.64"
TESTED_COMFYUI = ("0.3.64", "0.33.0")


class HostUnsupported(RuntimeError):
    """The ComfyUI running the pack lacks something the pack needs."""


@dataclass(frozen=True)
class Host:
    """The parts of the host the capabilities are probed on (stand-ins in tests)."""

    patcher_extension: Any  # comfy.patcher_extension
    samplers: Any  # comfy.samplers
    model: Any  # the MODEL (ModelPatcher) the node patches


@dataclass(frozen=True)
class Capability:
    name: str  # as ComfyUI names it
    used_for: str
    present: Callable[[Host], bool]


def _wrapper_type(name: str) -> Callable[[Host], bool]:
    return lambda host: hasattr(getattr(host.patcher_extension, "WrappersMP", None), name)


def _keyed_wrappers(host: Host) -> bool:
    return all(callable(getattr(host.model, name, None))
               for name in ("clone", "add_wrapper_with_key", "remove_wrappers_with_key"))


def _clone_callbacks(host: Host) -> bool:
    on_clone = getattr(getattr(host.patcher_extension, "CallbacksMP", None), "ON_CLONE", None)
    return on_clone == "on_clone" and all(callable(getattr(host.model, name, None))
                                          for name in ("add_callback_with_key", "remove_callbacks_with_key"))


def _outer_sample_takes_sigmas_fourth(host: Host) -> bool:
    outer_sample = getattr(getattr(host.samplers, "CFGGuider", None), "outer_sample", None)
    if outer_sample is None:
        return False
    try:
        names = [p for p in inspect.signature(outer_sample).parameters if p != "self"]
    except (TypeError, ValueError):
        return False
    return names[3:4] == ["sigmas"]


CAPABILITIES: tuple[Capability, ...] = (
    Capability("comfy.patcher_extension.WrappersMP.OUTER_SAMPLE", "to bracket each sampling run",
               _wrapper_type("OUTER_SAMPLE")),
    Capability("comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL", "to skip the transformer on forecast steps",
               _wrapper_type("DIFFUSION_MODEL")),
    Capability("MODEL.clone / add_wrapper_with_key / remove_wrappers_with_key", "to patch a clone with keyed wrappers",
               _keyed_wrappers),
    Capability("CallbacksMP.ON_CLONE and MODEL.add_callback_with_key / remove_callbacks_with_key",
               "to keep each clone's reports its own", _clone_callbacks),
    Capability("comfy.samplers.CFGGuider.outer_sample(noise, latent_image, sampler, sigmas, ...)",
               "to read the run's sigmas", _outer_sample_takes_sigmas_fourth),
)


def comfyui_version() -> str:
    """The running ComfyUI's version, for messages only."""
    try:
        import comfyui_version as module  # ComfyUI's own top-level module, next to its main.py
    except ImportError:
        return "(version unknown: no comfyui_version.py)"
    return str(getattr(module, "__version__", "(version unknown)"))


def unsupported_message(missing: list[str], version: str) -> str:
    return (f"L2P cannot run on ComfyUI {version}: it lacks {'; '.join(missing)}. L2P needs ComfyUI "
            f"{MINIMUM_COMFYUI} or newer with these (tested on {', '.join(TESTED_COMFYUI)}). Update ComfyUI; if this "
            f"ComfyUI is newer than those, update L2P or report it. Remove the L2P node to sample without it.")


def check_host(host: Host, version: str) -> None:
    """Raise HostUnsupported naming every missing capability and ``version``; return when all are present."""
    missing = [f"{c.name} ({c.used_for})" for c in CAPABILITIES if not c.present(host)]
    if missing:
        raise HostUnsupported(unsupported_message(missing, version))


def require_host(model: Any) -> None:
    """The check on the running ComfyUI, for the MODEL a node is about to patch."""
    import comfy.patcher_extension
    import comfy.samplers

    check_host(Host(comfy.patcher_extension, comfy.samplers, model), comfyui_version())
