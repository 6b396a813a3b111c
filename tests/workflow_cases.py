"""What the workflow tests share: the node registry and definitions of the host (fixtures), the file combos,
the stand-in of each loader's model file, and the parametrisation over the committed workflows. Test modules import
the fixtures by name (pytest finds them in the module's namespace)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from tiny_specs import Family
from workflow_graph import FILES, Graph, definition, make_workflows

CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
PROBE_FILE = "l2p-test-probe.safetensors"
# the loader's model file says which tiny model stands in for it: comfy_host's Family or a comfy_families spec key
FAMILY_OF_MODEL_FILE = {
    "flux1-dev.safetensors": Family.FLUX,
    "qwen_image_fp8_e4m3fn.safetensors": Family.QWEN_IMAGE,
    "hunyuan_video_t2v_720p_bf16.safetensors": Family.HUNYUAN_VIDEO,
    "sd_xl_base_1.0.safetensors": "sdxl",
}
FILE_FAMILY = {Family.FLUX: "flux", Family.QWEN_IMAGE: "qwen_image", Family.HUNYUAN_VIDEO: "hunyuan_video"}
CALIBRATION_SEEDS = (11, 12)
TWO_SAMPLER = "KSamplerAdvanced"  # Wan 2.2's expert pair: checked in test_workflows_wan22.py


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def registry(comfy):
    """NODE_CLASS_MAPPINGS as at ComfyUI's startup (built-in extra nodes and this pack loaded)."""
    nodes, _pack_ids = make_workflows.load_comfyui()
    return nodes.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def definitions(registry):
    """node type -> NodeDef, as this ComfyUI's /object_info serves it to the frontend."""
    return make_workflows.comfyui_definitions()


@pytest.fixture(scope="module")
def file_combos(registry):
    """(node type, input) pairs whose options list model files: a probe file name added to every folder listing
    shows up in exactly these. Their options depend on what the user installed, so any file name is valid."""
    import folder_paths

    listed = folder_paths.get_filename_list
    found = set()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(folder_paths, "get_filename_list", lambda folder: [PROBE_FILE, *listed(folder)])
        for node_type in {n["type"] for path in FILES for n in json.loads(path.read_text())["nodes"]}:
            if node_type not in registry:  # FRONTEND_ONLY, or unknown: test_node_types_exist... reports it
                continue
            for i in definition(registry, node_type).inputs:
                if i.type == "COMBO" and PROBE_FILE in i.choices:
                    found.add((node_type, i.name))
    return found


by_name = pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])


@dataclasses.dataclass(frozen=True)
class Run:
    """What a workflow samples: the model chain between loader and sampler, and the sampler's settings."""

    family: Family | str  # comfy_host's Family, or a comfy_families spec key
    chain: tuple[dict, ...]  # nodes from the loader's output to the sampler's model input, in graph order
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    denoise: float
    guidance: float | None  # FluxGuidance on the positive conditioning, if any

    def settings(self) -> tuple:
        return self.steps, self.cfg, self.sampler_name, self.scheduler, self.denoise, self.guidance


def run_of(graph: Graph) -> Run:
    (sampler,) = graph.of_type("KSampler", "SamplerCustomAdvanced")
    if sampler["type"] == "KSampler":
        w = graph.widgets(sampler)
        model, positive, cfg = graph.source(sampler, "model"), graph.source(sampler, "positive"), w["cfg"]
        steps, sampler_name, scheduler, denoise = w["steps"], w["sampler_name"], w["scheduler"], w["denoise"]
    else:
        guider = graph.source(sampler, "guider")
        assert guider["type"] == "BasicGuider"  # no CFG
        model, positive, cfg = graph.source(guider, "model"), graph.source(guider, "conditioning"), 1.0
        sigmas = graph.source(sampler, "sigmas")
        assert sigmas["type"] == "BasicScheduler" and graph.source(sigmas, "model") is model  # one model for both
        w = graph.widgets(sigmas)
        steps, scheduler, denoise = w["steps"], w["scheduler"], w["denoise"]
        sampler_name = graph.widgets(graph.source(sampler, "sampler"))["sampler_name"]
    guidance = None
    while positive is not None:
        if positive["type"] == "FluxGuidance":
            guidance = graph.widgets(positive)["guidance"]
        positive = graph.source(positive, "conditioning")
    model_file, chain = graph.model_chain(model)
    family = FAMILY_OF_MODEL_FILE[model_file]
    return Run(family, chain, steps, float(cfg), sampler_name, scheduler, float(denoise), guidance)
