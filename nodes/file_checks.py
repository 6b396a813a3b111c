"""Whether a predictor file belongs to the run about to sample: its model family and the sigma range it was
calibrated on. Each refusal names the file, what it was calibrated on, what the run is, and the fix. (The model
identity within a family -- weights, LoRA patches -- is ``model_identity.check_file_identity``; the step grid inside
the calibrated range is L2P Cache's ``step_grid_mismatch``.)"""
from __future__ import annotations

from ..predictors.engine.grid import StepGrid
from ..predictors.files.identity import ModelIdentity, compare, identity_of
from ..predictors.files.predictor_file import PredictorFile, PredictorFileError
from .architectures import display_name


def check_family(path: str, pf: PredictorFile, family: str) -> None:
    if pf.model_family != family:
        raise PredictorFileError(
            f"{path}: this predictor file was calibrated for model family '{pf.model_family}'"
            f" ({display_name(pf.model_family)}), but the model being sampled is '{family}' ({display_name(family)})."
            f" Choose a file calibrated for this model, or calibrate one with L2P Calibrate."
        )


def check_sigma_range(path: str, pf: PredictorFile, grid: StepGrid, family: str, model: ModelIdentity) -> None:
    """Refuse a run whose evaluation sigmas leave the file's calibrated range, whatever the grid policy: the file
    belongs to another part of the schedule, e.g. the other expert of a Wan 2.2 split (KSamplerAdvanced
    start_at_step / end_at_step gives each expert its own sub-range). Both models are named, with what differs."""
    calibrated = StepGrid.from_sigmas(pf.sigmas)
    low, high = float(calibrated.array[-1]), float(calibrated.array[0])
    evals = grid.array[:-1]
    tol = 1e-3 * max(high, 1e-6)
    if float(evals.min()) >= low - tol and float(evals.max()) <= high + tol:
        return
    recorded = identity_of(pf.extra, path)
    file_model = recorded.describe() if recorded is not None else pf.model_class or "?"
    relation = compare(recorded, model).text()
    raise PredictorFileError(
        f"{path}: calibrated on sigmas {high:.4g} .. {low:.4g} of model '{pf.model_family}' {file_model}, but this"
        f" run samples sigmas {float(evals.max()):.4g} .. {float(grid.array[-1]):.4g} with model '{family}'"
        f" {model.describe()} ({relation}), outside the calibrated range. A calibration belongs to the sigmas it was"
        f" recorded on: in a split run (Wan 2.2's high-noise and low-noise experts, KSamplerAdvanced start_at_step /"
        f" end_at_step) calibrate each part with its own L2P Calibrate and file, and give each part's L2P Cache its"
        f" own file."
    )
