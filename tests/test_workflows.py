"""The example workflows ComfyUI serves as this pack's templates (example_workflows/*.json).

Against a real ComfyUI (COMFYUI_PATH; skipped, with the reason, without one), for every workflow file:
- structure: the JSON parses; every node type is registered once the pack is loaded; every link joins an output and
  an input of the same type and its id agrees with both ends; widgets_values loads, position by position as
  ComfyUI's frontend restores it (scripts/workflow_defs.py), onto this host's widgets with every value valid for
  its input and every widget it does not reach holding a default. The node definitions are ComfyUI's, as its
  /object_info serves them;
- our part runs: the model chain between the loader and the sampler (ModelSampling*, then the L2P node) is applied
  with the workflow's own widget values to a tiny model of the workflow's family and sampled with the workflow's
  steps, cfg, sampler, scheduler and guidance. L2P Cache first gets the predictor file its widget names, written
  by the calibration workflow that names it or, where there is none, by L2P Calibrate in its place (as the notes
  tell the user);
- ComfyUI's own template route lists our workflows and serves them byte for byte, without its rename hint;
- the committed files are right on this host: generated on the oldest ComfyUI the pack supports (0.3.64) and
  equal to scripts/make_workflows.py's output there; on any other host they load as the generator builds them
  there (the rule is stated at test_committed_workflows_are_right_on_this_host).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os

import pytest
import torch

import comfy_families
import comfy_host
import comfy_sampling
import pass_counter
import tiny_models
from tiny_specs import Family
from comfyui_l2p.nodes.learn_setup import AUTO_FILE, LEARNING_TRAJECTORIES
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_graph import (DYNAMIC_COMBO, FILES, FOLDER, FRONTEND_ONLY, NO_DEFAULT, ROOT, Graph, NodeDef,
                            definition, load, make_workflows, workflow_defs)

comfy_only = pytest.mark.comfy  # every test but the first: that one needs no ComfyUI

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
def pack(comfy):
    return comfy_host.load_pack_in_comfyui()


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


# ---------------------------------------------------------------------------------------- no ComfyUI needed


def test_the_folder_holds_exactly_the_generated_workflows():
    assert [p.stem for p in FILES] == sorted(make_workflows.WORKFLOW_NAMES) and len(FILES) == 8
    for path in FILES:
        assert load(path)["version"] == 0.4


def test_the_picker_cards_read_as_titles_in_a_new_users_order():
    """ComfyUI's frontend shows a custom pack's template by its file name (title; with - and _ as spaces, the
    description) and its thumbnail as <name>.jpg: the names say what each does, numbered in the order to try them."""
    catalog = make_workflows.workflow_catalog
    assert catalog.problems() == []
    names = make_workflows.WORKFLOW_NAMES
    assert names == tuple(sorted(names, key=lambda n: int(n.split(" ")[0])))
    assert "L2P Cache" in names[0] and "learns" in names[0]  # the default, learning cache comes first
    assert names.index(catalog.file_stem("flux1-dev-l2p-calibrate")) > names.index(catalog.file_stem(
        "hunyuan-video-l2p-cache"))  # calibration (full control) after every cache that learns by itself
    parts = make_workflows.workflow_parts
    k = computed_count(parts.FLUX_STEPS, parts.FLUX_SPEEDUP)
    assert f"computes {k} of {parts.FLUX_STEPS} steps" in names[0]
    assert f"first {LEARNING_TRAJECTORIES} images" in names[0]
    for name in names:  # what the frontend shows as the description is the title itself
        assert name.replace("-", " ").replace("_", " ") == name


def test_every_template_has_the_thumbnail_the_script_draws():
    assert make_workflows.workflow_thumbnails.problems() == []
    for name in make_workflows.WORKFLOW_NAMES:
        assert (FOLDER / f"{name}.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG: the frontend asks for .jpg


# ------------------------------------------------------------------------------------------------ structure


@comfy_only
@by_name
def test_node_types_exist_and_links_are_consistent_and_typed(path, registry):
    wf = load(path)
    assert wf["version"] == 0.4
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]) and wf["last_node_id"] == max(nodes)
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])
    unknown = {n["type"] for n in wf["nodes"]} - set(registry) - FRONTEND_ONLY
    assert not unknown, f"{path.name}: node types not registered in ComfyUI: {unknown}"
    defs = {n["type"]: definition(registry, n["type"]) for n in wf["nodes"] if n["type"] not in FRONTEND_ONLY}

    link_ids = [link[0] for link in wf["links"]]
    assert len(set(link_ids)) == len(link_ids)
    for link_id, src, src_slot, dst, dst_slot, link_type in wf["links"]:
        out_type = defs[nodes[src]["type"]].outputs[src_slot][1]
        socket = nodes[dst]["inputs"][dst_slot]
        declared = {i.name: i for i in defs[nodes[dst]["type"]].inputs}[socket["name"]].type
        assert link_type == out_type and socket["type"] == declared, (path.name, link_id)
        assert out_type == declared or "*" in (out_type, declared), (path.name, link_id, out_type, declared)
        assert socket["link"] == link_id
        assert link_id in nodes[src]["outputs"][src_slot]["links"]
        assert nodes[src]["outputs"][src_slot]["type"] == out_type

    for n in wf["nodes"]:
        if n["type"] in FRONTEND_ONLY:
            assert n["inputs"] == [] and n["outputs"] == []
            continue
        d = defs[n["type"]]
        # inputs list the node's sockets in definition order, as the frontend saves them; every required one linked.
        # The frontend restores saved slot lists as saved, so a socket or output a newer host added after them is
        # simply absent (and unlinked): the saved lists must be the start of this host's.
        saved_sockets = [s["name"] for s in n["inputs"]]
        assert saved_sockets == [s.name for s in d.sockets][:len(saved_sockets)], (path.name, n["type"])
        assert all(s.optional for s in d.sockets[len(saved_sockets):]), (path.name, n["type"])
        for socket, entry in zip(d.sockets, n["inputs"]):
            assert entry["link"] is not None or socket.optional, (path.name, n["type"], socket.name)
            if entry["link"] is not None:
                assert wf["links"][link_ids.index(entry["link"])][3:5] == [n["id"], n["inputs"].index(entry)]
        saved_outputs = [(o["name"], o["type"]) for o in n["outputs"]]
        assert saved_outputs == list(d.outputs[:len(saved_outputs)]), (path.name, n["type"])
        for slot, output in enumerate(n["outputs"]):
            for link_id in output["links"] or []:
                assert wf["links"][link_ids.index(link_id)][1:3] == [n["id"], slot]


@comfy_only
@by_name
def test_widget_values_match_the_definitions(path, registry, file_combos):
    for n in load(path)["nodes"]:
        values = n["widgets_values"]
        if n["type"] in FRONTEND_ONLY:
            assert len(values) == 1 and isinstance(values[0], str) and values[0].strip()
            continue
        d = definition(registry, n["type"])
        where = f"{path.name}: {n['type']} #{n['id']}"
        loaded = workflow_defs.loaded_widgets(d, values)  # position by position, as the frontend restores them
        assert not loaded.dropped, f"{where}: values {list(loaded.dropped)} reach no widget of this host"
        slots = d.widget_slots(loaded.values)
        for position, slot in enumerate(slots):
            if position >= len(values):  # a widget the saved list does not reach keeps its default
                assert slot.default is not NO_DEFAULT, f"{where}: widget {slot.name} gets no value and has no default"
                continue
            value = values[position]
            if slot.input is None:
                assert value in CONTROL_VALUES, where
                continue
            what = f"{where}.{slot.name} = {value!r}"
            if slot.input.type in ("COMBO", DYNAMIC_COMBO):
                if (n["type"], slot.name) in file_combos:  # any model file (what is installed varies), or an
                    # option the combo always has (L2P Cache's "auto: learn from my runs")
                    assert value in slot.input.choices or (isinstance(value, str) and value.endswith(".safetensors")), what
                else:
                    assert value in slot.input.choices, what
            elif slot.input.type == "BOOLEAN":
                assert isinstance(value, bool), what
            elif slot.input.type == "STRING":
                assert isinstance(value, str), what
            else:
                number_types = (int,) if slot.input.type == "INT" else (int, float)
                assert isinstance(value, number_types) and not isinstance(value, bool), what
                low, high = slot.input.options.get("min", value), slot.input.options.get("max", value)
                assert low <= value <= high, what


@comfy_only
def test_file_combos_are_the_loaders_and_the_predictor_file(file_combos):
    """Guards the probe: if it found nothing, every file combo would be checked against today's (empty) folders."""
    assert {("UNETLoader", "unet_name"), ("VAELoader", "vae_name"), ("DualCLIPLoader", "clip_name2"),
            ("CLIPLoader", "clip_name"), ("L2PCache", "predictor_file")} <= file_combos
    assert not {t for t, _ in file_combos} & {"KSampler", "L2PCalibrate", "L2PForecastCache"}


# ------------------------------------------------------------------------------------- the graph, as run


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


def tiny_for(run: Run):
    if isinstance(run.family, Family):
        return tiny_models.tiny_model(run.family, seed=5)
    return comfy_families.build(comfy_families.spec(run.family), seed=5)


def sample(model, tiny, run: Run, seed: int) -> torch.Tensor:
    if isinstance(tiny, comfy_families.FamilyModel):
        assert run.denoise == 1.0 and run.guidance is None
        return comfy_families.sample(tiny, patched=model, steps=run.steps, cfg=run.cfg, seed=seed,
                                     sampler_name=run.sampler_name, scheduler=run.scheduler)
    positive = comfy_sampling.make_conditioning(tiny, seed=seed + 1, guidance=run.guidance)
    shape = tiny.latent_shape(1, frames=3) if tiny.family is Family.HUNYUAN_VIDEO else None
    return comfy_sampling.sample(model, steps=run.steps, cfg=run.cfg, seed=seed, sampler_name=run.sampler_name,
                             scheduler=run.scheduler, denoise=run.denoise, positive=positive, latent_shape=shape)


def our_node(graph: Graph, run: Run, pack) -> dict:
    ours = [n for n in run.chain if n["type"] in pack.nodes]
    assert len(ours) == 1 and ours[0] is run.chain[-1], "our node must be the last model patch before the sampler"
    return ours[0]


def writer_of(predictor_file: str, registry) -> Graph | None:
    """The calibration workflow whose L2P Calibrate writes ``predictor_file``, if one ships."""
    for path in FILES:
        graph = Graph(load(path), registry)
        if any(graph.widgets(n)["file_name"] == predictor_file for n in graph.of_type("L2PCalibrate")):
            return graph
    return None


@comfy_only
@by_name
def test_our_node_runs_on_a_tiny_model_with_the_workflows_settings(path, registry, pack, l2p_dir):
    graph = Graph(load(path), registry)
    if graph.of_type(TWO_SAMPLER):
        pytest.skip("two experts, two samplers: test_workflows_wan22.py runs this workflow")
    run = run_of(graph)
    ours = our_node(graph, run, pack)
    values = graph.widgets(ours)
    tiny = tiny_for(run)
    load_file = pack.module.predictors.load_predictor_file

    patched = graph.apply_chain(run.chain, tiny.patcher)
    if ours["type"] == "L2PCache" and values["predictor_file"] == AUTO_FILE:  # queued as the note says: it learns
        for seed in range(values.get("learning_images", LEARNING_TRAJECTORIES)):
            with pass_counter.count_passes(tiny) as counter:
                sample(patched, tiny, run, seed=10 + seed)
            assert counter.forwards == run.steps
        (learned,) = l2p_dir.glob("auto-*.safetensors")
        assert load_file(str(learned)).sample_count == values.get("learning_images", LEARNING_TRAJECTORIES)
    elif ours["type"] == "L2PCache":
        writer = writer_of(values["predictor_file"], registry)
        if writer is not None:  # the shipped calibration workflow, run as the user runs it
            writer_run = run_of(writer)
            assert writer_run.settings() == run.settings() and writer_run.family == run.family
            calibrating = writer.apply_chain(writer_run.chain, tiny.patcher)
        else:
            calibrating = graph.apply_chain(run.chain, tiny.patcher, replace_cache_by_calibrate=True)
        for seed in CALIBRATION_SEEDS:
            sample(calibrating, tiny, run, seed)
        assert (l2p_dir / values["predictor_file"]).is_file()

    with pass_counter.count_passes(tiny) as counter:
        out = sample(patched, tiny, run, seed=3)
    report = patched.model_options["transformer_options"]["l2p"].reports[-1]
    assert torch.isfinite(out).all() and report.status == "finished" and report.num_steps == run.steps
    rows = 2 if run.cfg != 1.0 else 1  # cfg 1 drops the uncond; otherwise cond and uncond share one call
    if ours["type"] == "L2PCalibrate":
        pf = load_file(os.path.join(l2p_dir, values["file_name"]))
        assert counter.forwards == run.steps and pf.steps == run.steps and pf.sample_count == 1
        assert pf.model_family == FILE_FAMILY[run.family]
    else:
        k = computed_count(run.steps, values["speedup"])
        assert len(report.planned_computed) == k == counter.forwards and counter.forward_rows == rows * k
        assert report.forecast_calls == run.steps - k


# --------------------------------------------------------------------------------------- notes, pairing


@comfy_only
@by_name
def test_the_note_names_every_file_and_the_step_setting(path, registry):
    graph = Graph(load(path), registry)
    (note,) = graph.of_type("MarkdownNote", "Note")
    text = note["widgets_values"][0]
    files = [v for n in graph.nodes.values() for v in n.get("widgets_values", [])
             if isinstance(v, str) and v.endswith(".safetensors")]
    assert files and all(f in text for f in files), [f for f in files if f not in text]
    steps = {graph.widgets(n)["steps"] for n in graph.nodes.values()
             if n["type"] not in FRONTEND_ONLY and "steps" in graph.widgets(n)}
    assert len(steps) == 1 and f"{steps.pop()} steps" in text
    for n in graph.nodes.values():  # the loaders' download links name the same files their widgets do
        for model in n["properties"].get("models", []):
            assert model["name"] in n["widgets_values"] and model["url"].endswith("/" + model["name"])


@comfy_only
def test_flux_workflows_calibrate_and_cache_on_one_step_grid(registry):
    cache, calibrate = (Graph(load(FOLDER / f"{make_workflows.workflow_catalog.file_stem('flux1-dev-l2p-' + k)}.json"),
                              registry) for k in ("cache", "calibrate"))
    (cache_node,), (calibrate_node,) = cache.of_type("L2PCache"), calibrate.of_type("L2PCalibrate")
    assert cache.widgets(cache_node)["predictor_file"] == AUTO_FILE  # it learns; the calibrated file is pinnable
    (note,) = calibrate.of_type("MarkdownNote")
    cache_title = make_workflows.workflow_catalog.file_stem("flux1-dev-l2p-cache")
    assert cache_title in note["widgets_values"][0] and "pin this file" in note["widgets_values"][0]
    assert run_of(cache).settings() == run_of(calibrate).settings() and run_of(cache).steps == 50
    # the paper's 9-of-50 setting, chosen by the schedule (not the paper's list)
    assert computed_count(50, cache.widgets(cache_node)["speedup"]) == 9
    assert cache.widgets(cache_node)["placement"] == "optimized"
    (sampler,) = calibrate.of_type("KSampler")
    assert sampler["widgets_values"][1] == "randomize"  # each queued calibration run gets a new seed


# --------------------------------------------------------------------------------------- served by ComfyUI


@comfy_only
def test_comfyui_lists_and_serves_our_workflows(comfy, tmp_path, caplog):
    """ComfyUI's own routes (app/custom_node_manager.py) on a custom_nodes folder holding a link to this pack."""
    import folder_paths
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from app.custom_node_manager import CustomNodeManager

    pack_name = "ComfyUI-L2P"
    (tmp_path / pack_name).symlink_to(ROOT, target_is_directory=True)
    saved = folder_paths.folder_names_and_paths["custom_nodes"]
    folder_paths.folder_names_and_paths["custom_nodes"] = ([str(tmp_path)], set())

    async def fetch():
        app, routes = web.Application(), web.RouteTableDef()
        with caplog.at_level(logging.DEBUG):
            CustomNodeManager().add_routes(routes, app, [(pack_name, str(tmp_path / pack_name))])
        app.add_routes(routes)
        async with TestClient(TestServer(app)) as client:
            listing = await (await client.get("/workflow_templates")).json()
            served = {}
            for name in listing.get(pack_name, []):
                for suffix in ("json", "jpg"):  # the workflow, and the thumbnail the frontend asks for
                    response = await client.get(f"/api/workflow_templates/{pack_name}/{name}.{suffix}")
                    served[name, suffix] = (response.status, await response.read())
            return listing, served

    try:
        listing, served = asyncio.run(fetch())
    finally:
        folder_paths.folder_names_and_paths["custom_nodes"] = saved
    assert sorted(listing[pack_name]) == sorted(make_workflows.WORKFLOW_NAMES)
    assert len(served) == 2 * len(make_workflows.WORKFLOW_NAMES)
    for (name, suffix), (status, body) in served.items():
        assert status == 200 and body == (FOLDER / f"{name}.{suffix}").read_bytes()
    assert not [r for r in caplog.records if "consider renaming" in r.getMessage()]


# -------------------------------------------------------------------------------------------- no drift


@comfy_only
def test_committed_workflows_are_right_on_this_host(definitions):
    """The rule: the committed files are generated on ComfyUI 0.3.64, the oldest host the pack supports (pyproject
    requires-comfyui), and on that host they equal the generator's output byte for byte. On any other host they
    must load as the generator builds them there. ComfyUI's frontend restores a saved node's widgets_values by
    position (a DynamicCombo's value deciding which widgets follow it) and leaves the widgets past the end of the
    list at their defaults, and it restores the saved input and output slots as saved (LGraphNode.configure,
    dynamicWidgets.ts). So each node must end up holding the widget values the generator gives it here, no saved
    value may be left over, its saved slots must be the start of this host's with the others unlinked, and all but
    the layout must be equal. This accepts what ComfyUI's own compatibility promises (widgets and outputs added
    with defaults: CreateVideo's bit_depth, SaveImage's and SaveVideo's outputs in 0.33) and refuses a widget
    inserted before others, a changed value or a removed widget."""
    import comfy_host

    host = comfy_host.comfyui_version(comfy_host.comfyui_path())
    problems = make_workflows.committed_problems(make_workflows.generate_all(definitions), definitions, host)
    assert set(problems) == set(make_workflows.WORKFLOW_NAMES)
    wrong = {name: found for name, found in problems.items() if found}
    assert not wrong, (f"{wrong}: regenerate with COMFYUI_PATH at a ComfyUI {make_workflows.reference_host()} "
                       f"checkout (python3 scripts/make_workflows.py) and commit the result")
