"""A ComfyUI too old or too new for the pack: one clear error when the node runs (graph time), naming the version
found and what is needed (nodes/host_check.py). Stand-ins hide one capability at a time without ComfyUI; inside a
real ComfyUI the wrapper enum is swapped for one without DIFFUSION_MODEL and the node refuses before patching;
a ComfyUI without the V3 schema gets the message when it loads the pack."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
import types

import pytest

import comfy_host
import tiny_models
from comfy_fixtures import comfy, requires_comfyui  # noqa: F401  (pytest finds fixtures by name)
from conftest import ROOT

from comfyui_l2p.nodes.host_check import (CAPABILITIES, MINIMUM_COMFYUI, TESTED_COMFYUI, Host, HostUnsupported,
                                          check_host)


class Guider:
    def outer_sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                     disable_pbar=False, seed=None):
        pass


class Patcher:
    def clone(self):
        return self

    def add_wrapper_with_key(self, wrapper_type, key, wrapper):
        pass

    def remove_wrappers_with_key(self, wrapper_type, key):
        pass

    def add_callback_with_key(self, call_type, key, callback):
        pass

    def remove_callbacks_with_key(self, call_type, key):
        pass


CALLBACKS = types.SimpleNamespace(ON_CLONE="on_clone")


def complete_host() -> Host:
    wrappers = types.SimpleNamespace(OUTER_SAMPLE="outer_sample", DIFFUSION_MODEL="diffusion_model")
    return Host(types.SimpleNamespace(WrappersMP=wrappers, CallbacksMP=CALLBACKS),
                types.SimpleNamespace(CFGGuider=Guider), Patcher())


def without(host: Host, capability: str) -> Host:
    if capability == "DIFFUSION_MODEL":
        wrappers = types.SimpleNamespace(OUTER_SAMPLE="outer_sample")
        return Host(types.SimpleNamespace(WrappersMP=wrappers, CallbacksMP=CALLBACKS), host.samplers, host.model)
    if capability == "OUTER_SAMPLE":  # no WrappersMP nor CallbacksMP at all (before 0.3.2x)
        return Host(types.SimpleNamespace(), host.samplers, host.model)
    if capability == "add_wrapper_with_key":
        class OldPatcher:
            def clone(self):
                return self
        return Host(types.SimpleNamespace(WrappersMP=host.patcher_extension.WrappersMP), host.samplers, OldPatcher())
    if capability == "add_callback_with_key":
        class NoCallbacks(Patcher):
            add_callback_with_key = None
        return Host(host.patcher_extension, host.samplers, NoCallbacks())

    class MovedSigmas:  # a later ComfyUI that moved the sigmas argument
        def outer_sample(self, noise, latent_image, sigmas, sampler):
            pass
    return Host(host.patcher_extension, types.SimpleNamespace(CFGGuider=MovedSigmas), host.model)


def test_a_complete_host_passes():
    check_host(complete_host(), "0.33.0")


@pytest.mark.parametrize("capability, named", [
    ("OUTER_SAMPLE", "WrappersMP.OUTER_SAMPLE"), ("DIFFUSION_MODEL", "WrappersMP.DIFFUSION_MODEL"),
    ("add_wrapper_with_key", "add_wrapper_with_key"), ("sigmas", "outer_sample(noise, latent_image, sampler, sigmas"),
    ("add_callback_with_key", "add_callback_with_key"),
])
def test_each_missing_capability_is_named_with_the_version(capability, named):
    with pytest.raises(HostUnsupported) as caught:
        check_host(without(complete_host(), capability), "0.2.7")
    message = str(caught.value)
    assert message.startswith("L2P cannot run on ComfyUI 0.2.7: it lacks ")
    assert named in message and f"needs ComfyUI {MINIMUM_COMFYUI} or newer" in message
    missing = {"OUTER_SAMPLE": 3, "add_wrapper_with_key": 2}.get(capability, 1)  # what that old host also lacks
    assert sum(c.name in message for c in CAPABILITIES) == missing


def test_minimum_and_tested_versions_agree_with_pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f)["tool"]["comfy"]["requires-comfyui"]
    assert requires == f">={MINIMUM_COMFYUI}" and TESTED_COMFYUI[0] == MINIMUM_COMFYUI


def test_pack_refuses_to_load_in_a_comfyui_without_the_v3_schema(tmp_path):
    """A fake ComfyUI that has `comfy` and a comfyui_version.py but no comfy_api: importing the pack, as ComfyUI's
    loader does, raises the message (ComfyUI logs it); outside any ComfyUI the import registers nothing."""
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "__init__.py").write_text("")
    (tmp_path / "comfyui_version.py").write_text('__version__ = "0.2.3"\n')
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("l2p_pack", {str(ROOT / "__init__.py")!r},
                                                      submodule_search_locations=[{str(ROOT)!r}])
        module = importlib.util.module_from_spec(spec)
        sys.modules["l2p_pack"] = module
        try:
            spec.loader.exec_module(module)
            print("LOADED", module.ComfyExtension)
        except ImportError as error:
            print("REFUSED", error)
    """)
    inside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert "REFUSED L2P cannot run on ComfyUI 0.2.3: it lacks comfy_api.latest" in inside.stdout, inside.stderr
    outside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                             env={"PATH": "/usr/bin:/bin"})
    assert "LOADED None" in outside.stdout, outside.stderr


@requires_comfyui
def test_the_node_refuses_at_graph_time_on_a_host_without_diffusion_model(comfy, monkeypatch):
    """The real host, with WrappersMP swapped for a stand-in lacking DIFFUSION_MODEL (what a ComfyUI that renamed it
    would look like): the node raises the message, naming the running version, and patches nothing."""
    import comfy.patcher_extension
    import comfyui_version

    pack = comfy_host.load_pack_in_comfyui()
    tiny = tiny_models.tiny_flux(seed=0)
    stand_in = types.SimpleNamespace(OUTER_SAMPLE=comfy.patcher_extension.WrappersMP.OUTER_SAMPLE)
    monkeypatch.setattr(comfy.patcher_extension, "WrappersMP", stand_in)
    inputs = dict(method="FORA (reuse)", time_axis="step", speedup=2.0, placement="even", warmup_steps=2,
                  compute_last_step=False, residual_budget=0.05, history_device="model device", spectrum_degree=4,
                  spectrum_lambda=0.1, spectrum_blend=0.5)
    with pytest.raises(Exception) as caught:
        comfy_host.run_node(pack.nodes["L2PForecastCache"], model=tiny.patcher, **inputs)
    message = str(caught.value)
    shown = f"{type(caught.value).__module__}.{type(caught.value).__qualname__}"  # as ComfyUI's dialog shows it
    assert shown == "l2p.HostUnsupported"
    assert message.startswith(f"Forecast Cache: cannot run on ComfyUI {comfyui_version.__version__}")
    assert "WrappersMP.DIFFUSION_MODEL" in message and "WrappersMP.OUTER_SAMPLE" not in message
    assert "l2p" not in tiny.patcher.model_options.get("transformer_options", {})
    monkeypatch.undo()
    (patched,) = comfy_host.run_node(pack.nodes["L2PForecastCache"], model=tiny.patcher, **inputs)  # and with it
    assert "l2p" in patched.model_options["transformer_options"]
