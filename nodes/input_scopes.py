"""Which inputs apply to which choice of another input, as data: the one source of the UI's "<choice> only:"
tooltips (nodes/tooltips.py) and of the frontend extension that hides the inputs a choice leaves unused
(web/input_scopes.js reads web/input_scopes.json, written from this table by scripts/make_input_scopes.py).

No ComfyUI import: tests check every name here against the node schemas. Hiding never removes or reorders a widget,
so saved workflows restore ``widgets_values`` by position as before and the queued prompt carries every input.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..predictors.forecasters.registry import ForecastMethod
from ..predictors.schedules.placements import Placement
from .learn_setup import AUTO_FILE
from .setups import CalibrationMode

WEB_FOLDER = "web"  # the pack's WEB_DIRECTORY (__init__.py), which ComfyUI serves at /extensions/<pack folder>/
JSON_NAME = "input_scopes.json"  # in it, next to the extension that fetches it


@dataclass(frozen=True)
class InputScope:
    """``inputs`` apply only while the combo ``controller`` holds one of ``choices``; ``label`` names those choices
    in the tooltips ("<label> only: ...")."""

    controller: str
    choices: tuple[str, ...]
    inputs: tuple[str, ...]
    label: str

    def __post_init__(self) -> None:
        if not self.choices or not self.inputs:
            raise ValueError(f"InputScope for {self.controller!r}: needs at least one choice and one input")
        if self.controller in self.inputs:
            raise ValueError(f"InputScope for {self.controller!r}: a combo cannot decide its own visibility")

    @property
    def only(self) -> str:
        """The tooltip's opening words for these inputs."""
        return f"{self.label} only"

    def as_json(self) -> dict:
        return {"controller": self.controller, "choices": list(self.choices), "inputs": list(self.inputs)}


SPECTRUM = InputScope("method", (ForecastMethod.SPECTRUM.value,),
                      ("spectrum_degree", "spectrum_lambda", "spectrum_blend"), "Spectrum")
ADAPTIVE = InputScope("placement", (Placement.ADAPTIVE.value,), ("residual_budget",), "adaptive placement")
LEARNING = InputScope("predictor_file", (AUTO_FILE,), ("learning", "learning_images"), AUTO_FILE)
ON_POLICY = InputScope("mode", (CalibrationMode.ON_POLICY.value,), ("on_policy_speedup",), "on-policy mode")

NODE_SCOPES: dict[str, tuple[InputScope, ...]] = {
    "L2PCache": (ADAPTIVE, LEARNING),
    "L2PForecastCache": (SPECTRUM, ADAPTIVE),
    "L2PCalibrate": (ON_POLICY,),
}


def scopes_json() -> str:
    """What web/input_scopes.json holds: node id -> its scopes (controller, choices, inputs)."""
    table = {node: [scope.as_json() for scope in scopes] for node, scopes in NODE_SCOPES.items()}
    return json.dumps(table, indent=1, sort_keys=True) + "\n"
