"""The pack's exception types (predictors/errors.py) and where the node's name enters their messages.

What ComfyUI shows for them inside a real graph is checked in test_comfy_errors.py; here: the type string built
the way ComfyUI builds it, pickling, the builtins they still are, and the node boundary with stand-ins."""
import pickle
import types

import pytest
import torch

from comfyui_l2p.nodes.node_errors import L2P_CACHE, L2P_CALIBRATE, raised_by
from comfyui_l2p.nodes.plans import EveryStepPlan
from comfyui_l2p.nodes.run_state import HOLDER_KEY, L2PHolder, RunPieces, l2p_outer_sample_wrapper
from comfyui_l2p.predictors import Fora, StepGrid, errors
from comfyui_l2p.predictors.files.predictor_file import PredictorFileError as FileErrorFromFormat
from comfyui_l2p.predictors.files.storage import load_predictor_file
from comfyui_l2p.predictors.schedules.placements import even_schedule

TYPES = [errors.L2PError, errors.PredictorFileError, errors.ScheduleError, errors.CalibrationError,
         errors.ModelOutputError, errors.UnsupportedModelError, errors.NodeInputError, errors.ForecastError,
         errors.HostUnsupported]


def shown_type(klass: type) -> str:
    """How ComfyUI's execution.py (full_type_name, 0.3.64 and 0.33) writes an exception type."""
    return klass.__qualname__ if klass.__module__ == "builtins" else f"{klass.__module__}.{klass.__qualname__}"


@pytest.mark.parametrize("klass", TYPES, ids=lambda k: k.__name__)
def test_every_type_reads_l2p_dot_its_name_and_survives_pickling(klass):
    assert shown_type(klass) == f"l2p.{klass.__name__}"
    error = klass("predictor file 'x': broken. Recalibrate")
    error.detail = 3  # instance state travels too
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is klass and back.args == error.args and back.detail == 3


def test_the_types_are_still_the_builtins_callers_catch():
    assert issubclass(errors.PredictorFileError, ValueError) and issubclass(errors.ForecastError, RuntimeError)
    assert issubclass(errors.ScheduleError, ValueError) and issubclass(errors.CalibrationError, ValueError)
    assert FileErrorFromFormat is errors.PredictorFileError  # one type, wherever it is imported from


def test_errors_raised_in_predictors_are_l2p_types(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a predictor file")
    with pytest.raises(errors.PredictorFileError):
        load_predictor_file(bad)
    with pytest.raises(errors.ScheduleError, match="cannot cover the guards"):
        even_schedule(50, 2, warmup=3)


@pytest.mark.parametrize("message,expected", [
    ("L2P predictor file 'a.safetensors': broken", "L2P Cache: predictor file 'a.safetensors': broken"),
    ("L2P: predictor file 'a' was not found", "L2P Cache: predictor file 'a' was not found"),
    ("L2P cannot drive the model class X", "L2P Cache: cannot drive the model class X"),
    ("L2P Cache: already named", "L2P Cache: already named"),
    ("/models/l2p/a.safetensors: calibrated on 10 steps",
     "L2P Cache: /models/l2p/a.safetensors: calibrated on 10 steps"),
    ("L2PDirect: weights", "L2P Cache: L2PDirect: weights"),
])
def test_node_message_puts_the_node_first_once(message, expected):
    assert errors.node_message(L2P_CACHE, message) == expected


def test_raised_by_renames_l2p_errors_only_and_keeps_type_and_traceback():
    with pytest.raises(errors.CalibrationError) as info:
        with raised_by(L2P_CALIBRATE):
            raise errors.CalibrationError("step 3 has two 'cond' conditionings")
    assert str(info.value) == "L2P Calibrate: step 3 has two 'cond' conditionings"
    assert info.traceback[-1].name == "test_raised_by_renames_l2p_errors_only_and_keeps_type_and_traceback"
    with pytest.raises(KeyError) as other:  # not ours: untouched
        with raised_by(L2P_CALIBRATE):
            raise KeyError("x")
    assert other.value.args == ("x",)


def _guider(holder: L2PHolder):
    model = types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=torch.nn.Identity()))
    return types.SimpleNamespace(model_options={"transformer_options": {HOLDER_KEY: holder}}, model_patcher=model,
                                 cfg=1.0)


def test_an_error_at_sampling_start_names_the_node_not_the_sampler():
    def start_run(context, report):
        raise errors.PredictorFileError("/m/a.safetensors: calibrated on a 10-step grid, but this run samples 6")

    holder = L2PHolder(L2P_CACHE, "direct", start_run)
    executor = types.SimpleNamespace(class_obj=_guider(holder))
    sigmas = torch.linspace(1, 0, 7)
    with pytest.raises(errors.PredictorFileError, match=r"^L2P Cache: /m/a.safetensors: calibrated on a 10-step"):
        l2p_outer_sample_wrapper(executor, None, None, None, sigmas)
    assert len(holder.reports) == 0  # refused before the run started: no run to report


def test_an_error_during_the_run_names_the_node():
    grid = StepGrid.from_sigmas(torch.linspace(1, 0, 5))

    def start_run(context, report):
        return RunPieces(Fora(), EveryStepPlan(grid.num_steps))

    holder = L2PHolder(L2P_CACHE, "direct", start_run)
    guider = _guider(holder)

    class Executor:
        class_obj = guider

        def __call__(self, *args, **kwargs):
            raise errors.ForecastError("lesa: cannot forecast step 3")

    with pytest.raises(errors.ForecastError, match=r"^L2P Cache: lesa: cannot forecast step 3"):
        l2p_outer_sample_wrapper(Executor(), None, None, None, grid.array)
    assert holder.reports[-1].status.startswith("failed: ForecastError")
