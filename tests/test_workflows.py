"""The example workflows ComfyUI serves as this pack's templates (example_workflows/*.json).

Against a real ComfyUI (COMFYUI_PATH; skipped, with the reason, without one), for every workflow file:
- structure: the JSON parses; every node type is registered once the pack is loaded; every link joins an output and
  an input of the same type and its id agrees with both ends; widgets_values loads, position by position as
  ComfyUI's frontend restores it (scripts/workflow_defs.py), onto this host's widgets with every value valid for
  its input and every widget it does not reach holding a default. The node definitions are ComfyUI's, as its
  /object_info serves them;
- our part runs on a tiny model with the workflow's settings: test_workflows_run.py;
- ComfyUI's own template route lists our workflows and serves them byte for byte, without its rename hint;
- the committed files are right on this host: generated on the oldest ComfyUI the pack supports (0.3.64) and
  equal to scripts/make_workflows.py's output there; on any other host they load as the generator builds them
  there (the rule is stated at test_committed_workflows_are_right_on_this_host).
"""
from __future__ import annotations

import asyncio
import logging

import pytest

from comfyui_l2p.nodes.learn_setup import AUTO_FILE, LEARNING_TRAJECTORIES
from comfyui_l2p.predictors.schedules.placements import computed_count
from workflow_graph import (DYNAMIC_COMBO, FILES, FOLDER, FRONTEND_ONLY, NO_DEFAULT, ROOT, Graph,
                            definition, load, make_workflows, workflow_defs)

from workflow_cases import CONTROL_VALUES, by_name, definitions, file_combos, registry, run_of  # noqa: F401

comfy_only = pytest.mark.comfy  # every test but the first three: they need no ComfyUI

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
    (cache_node,), (_calibrate_node,) = cache.of_type("L2PCache"), calibrate.of_type("L2PCalibrate")
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
