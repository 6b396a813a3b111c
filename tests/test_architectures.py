"""The family table (nodes/architectures.py) without ComfyUI: exact matching by config and class, the wrapper check
on the forward that runs, names for models the table does not list, and the refusal for models we cannot drive.
The real classes are checked against each host in test_comfy_families.py."""
from __future__ import annotations

import types

import pytest

from comfyui_l2p.nodes.architectures import (
    FAMILIES, Family, UnsupportedModelError, calls_diffusion_model_wrapper, family_of, family_of_run, find_family,
)


class Wrapped:  # a forward that goes through the DIFFUSION_MODEL wrapper, like comfy.ldm.flux.model.Flux
    def forward(self, x, transformer_options={}):
        return ("WrapperExecutor", "DIFFUSION_MODEL", x)


class HandsOver(Wrapped):  # Anima: preprocesses, then super().forward
    def forward(self, x, transformer_options={}):
        return super().forward(x, transformer_options)


class Bypasses(Wrapped):  # SD3's OpenAISignatureMMDITWrapper pattern: its own forward, never the wrapper
    def forward(self, x, transformer_options={}):
        return x


class Plain:
    def forward(self, x):
        return x


def named_class(module: str, name: str, base: type = Wrapped) -> type:
    return type(name, (base,), {"__module__": module})


def config(name: str):
    return type(name, (), {})()


def test_the_table_is_data_with_unique_names_and_keys():
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
    assert len({(f.config, f.model_class) for f in FAMILIES}) == len(FAMILIES)
    with pytest.raises(ValueError, match="lower_snake_case"):
        Family("FLUX", "x", "Flux", "comfy.ldm.flux.model.Flux")
    with pytest.raises(ValueError, match="module-qualified"):
        Family("flux", "x", "Flux", "Flux")


def test_one_class_many_models_is_told_apart_by_the_config():
    flux_cls = named_class("comfy.ldm.flux.model", "Flux")
    model = flux_cls()
    names = {family_of(model, config(c)) for c in ("Flux", "FluxSchnell", "FluxInpaint", "Flux2", "LongCatImage")}
    assert names == {"flux", "flux_schnell", "flux_fill", "flux2", "longcat_image"}
    nextdit = named_class("comfy.ldm.lumina.model", "NextDiT")()
    assert (family_of(nextdit, config("Lumina2")), family_of(nextdit, config("ZImage"))) == ("lumina", "z_image")


def test_a_subclass_or_a_namesake_is_not_its_parent():
    flux_cls = named_class("comfy.ldm.flux.model", "Flux")
    subclass = named_class("custom_nodes.pack.model", "Flux", base=flux_cls)  # same name, other module
    assert find_family(subclass(), config("Flux")) is None
    assert family_of(subclass(), config("Flux")) == "Flux/Flux"  # driven (inherits the wrapped forward), own name
    aura_named = named_class("comfy.ldm.modules.diffusionmodules.mmdit", "MMDiT", base=Bypasses)  # SD3's MMDiT
    with pytest.raises(UnsupportedModelError, match="mmdit.MMDiT: its forward does not call"):
        family_of(aura_named(), config("SD3"))


def test_unknown_driven_models_get_exact_names():
    krea = named_class("comfy.ldm.krea2.model", "SingleStreamDiT")
    assert family_of(krea(), config("Krea2")) == "Krea2/SingleStreamDiT"
    assert family_of(krea()) == "SingleStreamDiT"  # outside ComfyUI: no config to name


def test_without_a_config_only_an_unambiguous_class_decides():
    qwen = named_class("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel")()
    assert family_of(qwen) == "qwen_image"
    flux = named_class("comfy.ldm.flux.model", "Flux")()  # five families share it
    assert find_family(flux) is None and family_of(flux) == "Flux"


def test_the_wrapper_check_reads_the_forward_that_runs():
    assert calls_diffusion_model_wrapper(Wrapped) and calls_diffusion_model_wrapper(HandsOver)
    assert not calls_diffusion_model_wrapper(Bypasses) and not calls_diffusion_model_wrapper(Plain)


def test_refusal_names_the_class_and_what_is_supported():
    with pytest.raises(UnsupportedModelError) as err:
        family_of(named_class("comfy.ldm.pixart.pixartms", "PixArtMS", base=Plain)(), config("PixArtSigma"))
    text = str(err.value)
    assert "comfy.ldm.pixart.pixartms.PixArtMS" in text and "FLUX.2" in text and "Wan 2.2 TI2V 5B" in text


def test_the_run_family_is_the_callers_or_the_models():
    qwen = named_class("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel")()
    patcher = types.SimpleNamespace(model=types.SimpleNamespace(model_config=config("QwenImage")))
    context = types.SimpleNamespace(diffusion_model=qwen, model_patcher=patcher, family=None)
    assert family_of_run(context) == "qwen_image"
    assert family_of_run(types.SimpleNamespace(diffusion_model=Plain(), model_patcher=None, family="flux")) == "flux"
