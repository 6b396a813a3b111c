"""Which inputs apply to which choice (nodes/input_scopes.py) is true of the node schemas, is what the frontend
extension reads (web/input_scopes.json, generated), and the extension is registered where ComfyUI serves a pack's
web directory. The browser side (hidden widgets, saved widgets_values, queued inputs) is scripts/browser_widgets.py."""
from __future__ import annotations

import glob
import json
import copy
import os
import re

import pytest

from conftest import ROOT
from comfy_fixtures import comfy, pack, requires_comfyui  # noqa: F401  (fixtures used by name)

from comfyui_l2p.nodes import input_scopes, tooltips
from script_modules import load_script

make_input_scopes = load_script("make_input_scopes")

WEB = ROOT / input_scopes.WEB_FOLDER
SCOPED = [(node, scope) for node, scopes in input_scopes.NODE_SCOPES.items() for scope in scopes]


def test_the_served_rules_are_the_table():
    assert make_input_scopes.main(["--check"]) == 0, "web/input_scopes.json is stale"
    served = json.loads((WEB / input_scopes.JSON_NAME).read_text())
    assert set(served) == set(input_scopes.NODE_SCOPES)
    assert served["L2PForecastCache"][0] == {"controller": "method", "choices": ["Spectrum"],
                                             "inputs": ["spectrum_degree", "spectrum_lambda", "spectrum_blend"]}


def test_a_stale_rules_file_is_reported(tmp_path, monkeypatch, capsys):
    stale = tmp_path / input_scopes.JSON_NAME
    stale.write_text("{}\n")
    monkeypatch.setattr(make_input_scopes, "TARGET", stale)
    assert make_input_scopes.main(["--check"]) == 1
    assert "run python3 scripts/make_input_scopes.py" in capsys.readouterr().out
    assert make_input_scopes.main([]) == 0 and stale.read_text() == input_scopes.scopes_json()


def test_a_scope_is_validated_at_construction():
    with pytest.raises(ValueError, match="at least one choice"):
        input_scopes.InputScope("method", (), ("spectrum_degree",), "Spectrum")
    with pytest.raises(ValueError, match="its own visibility"):
        input_scopes.InputScope("method", ("Spectrum",), ("method",), "Spectrum")


def test_the_scoped_tooltips_open_with_their_scope():
    for text, scope in [(tooltips.SPECTRUM_DEGREE, input_scopes.SPECTRUM),
                        (tooltips.RESIDUAL_BUDGET, input_scopes.ADAPTIVE),
                        (tooltips.LEARNING_IMAGES, input_scopes.LEARNING),
                        (tooltips.ON_POLICY_SPEEDUP, input_scopes.ON_POLICY)]:
        assert text.startswith(scope.only), (text, scope)


def test_the_extension_reads_the_rules_and_writes_none():
    """No second copy of the rules in JS: the extension names no input or choice of the table."""
    script = (WEB / "input_scopes.js").read_text()
    assert f'"./{input_scopes.JSON_NAME}"' in script
    for _node, scope in SCOPED:
        for name in (*scope.inputs, *scope.choices):
            assert f'"{name}"' not in script and f"'{name}'" not in script, name


def _inputs(node_cls) -> dict:
    return {i.id: i for i in node_cls.define_schema().inputs}


@requires_comfyui
@pytest.mark.parametrize("node,scope", SCOPED, ids=[f"{n}.{s.controller}" for n, s in SCOPED])
def test_the_rules_name_real_inputs_and_choices(pack, node, scope):
    inputs = _inputs(pack.nodes[node])
    controller = inputs[scope.controller]
    assert set(scope.choices) <= set(controller.options), (node, scope.controller, controller.options)
    names = list(inputs)
    for name in scope.inputs:
        assert name in inputs, (node, name)
        assert inputs[name].tooltip.startswith(scope.only + ":") or inputs[name].tooltip.startswith(scope.only + " ")
        assert names.index(name) > names.index(scope.controller)  # the choice is made above what it shows


@requires_comfyui
@pytest.mark.parametrize("node", sorted(input_scopes.NODE_SCOPES))
def test_every_input_that_says_it_applies_to_one_choice_is_in_the_table(pack, node):
    scoped = {name for scope in input_scopes.NODE_SCOPES[node] for name in scope.inputs}
    says_only = {name for name, i in _inputs(pack.nodes[node]).items()
                 if i.tooltip and re.match(r"[^.]*? only[:( ]", i.tooltip)}  # "<choice> only" in the first sentence
    assert says_only == scoped


@requires_comfyui
def test_comfyui_registers_and_lists_the_extension(comfy, pack):
    """Both hosts' server.py serve each EXTENSION_WEB_DIRS entry at /extensions/<name>/ (web.static) and list its
    .js files, found with this same glob, in GET /extensions, which the frontend imports."""
    name = ROOT.name  # load_custom_node registers WEB_DIRECTORY under the pack's folder name
    registered = comfy.nodes.EXTENSION_WEB_DIRS.get(name)
    assert registered is not None, (name, comfy.nodes.EXTENSION_WEB_DIRS)
    assert os.path.samefile(registered, WEB)
    found = glob.glob(os.path.join(glob.escape(registered), "**/*.js"), recursive=True)
    listed = sorted(os.path.relpath(f, registered) for f in found)
    assert listed == ["input_scopes.js"]
    assert (WEB / input_scopes.JSON_NAME).is_file()


def _page_state(forecast_method: str, hidden: list[str]) -> dict:
    names = ["method", "time_axis", "speedup", "placement", "warmup_steps", "compute_last_step", "residual_budget",
             "history_device", "spectrum_degree", "spectrum_lambda", "spectrum_blend"]
    values = [forecast_method, "step", 5.0, "even", 2, False, 0.05, "model device", 4, 0.1, 0.5]
    visible = [n for n in names if n not in hidden]
    return {"L2PForecastCache": {"widgets": [list(p) for p in zip(names, values)], "visible": visible,
                                 "size": [300, 20 * len(visible)], "rows": [20 * i for i in range(len(visible))]}}


def test_the_browser_check_reports_what_does_not_hold():
    """scripts/browser_widgets.py's verdict on recorded page states: silent when they hold, naming the node and
    inputs when a widget is hidden out of turn, a row leaves a gap, or a saved or queued value moved."""
    check = load_script("browser_widgets")
    spectrum_off = ["residual_budget", "spectrum_degree", "spectrum_lambda", "spectrum_blend"]
    good = {"extension_loaded": True, "defaults": _page_state("FORA", spectrum_off),
            "switched": _page_state("Spectrum", ["residual_budget"]), "templates": {},
            "linked": {"linked": True, "shown": True}, "unlinked": {"linked": False, "shown": False}}
    good["reloaded"], good["back"] = copy.deepcopy(good["switched"]), copy.deepcopy(good["defaults"])
    state = good["switched"]["L2PForecastCache"]
    values = [v for _, v in state["widgets"]]
    good["save"] = {"saved": {"L2PForecastCache": values}, "queued": {"L2PForecastCache": dict(state["widgets"])}}
    assert check.failures(good, resized=("L2PForecastCache",)) == []

    wrong = copy.deepcopy(good)
    wrong["switched"]["L2PForecastCache"]["visible"].remove("spectrum_lambda")
    assert any("switched: L2PForecastCache hides ['residual_budget', 'spectrum_lambda']" in f
               for f in check.failures(wrong, resized=("L2PForecastCache",)))
    gap = copy.deepcopy(good)
    gap["defaults"]["L2PForecastCache"]["rows"][-1] += 20
    assert any("not evenly stacked" in f for f in check.failures(gap, resized=("L2PForecastCache",)))
    moved = copy.deepcopy(good)
    moved["save"]["saved"]["L2PForecastCache"] = values[1:] + values[:1]
    assert any("saved widgets_values of L2PForecastCache" in f
               for f in check.failures(moved, resized=("L2PForecastCache",)))
    hidden_link = copy.deepcopy(good)
    hidden_link["linked"]["shown"] = False
    assert any("spectrum_degree linked under FORA" in f
               for f in check.failures(hidden_link, resized=("L2PForecastCache",)))
    dropped = copy.deepcopy(good)
    del dropped["save"]["queued"]["L2PForecastCache"]["spectrum_blend"]
    assert any("L2PForecastCache.spectrum_blend is None" in f
               for f in check.failures(dropped, resized=("L2PForecastCache",)))
