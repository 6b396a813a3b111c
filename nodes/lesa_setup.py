"""L2P Cache's LESA predictor: the experts stored in the predictor file, or trained once from the file's trajectory
sample and stored back into it.

Training happens when the L2P Cache node runs (graph time), so ComfyUI shows its progress bar on that node (the
node passes a ``progress`` callback; nothing here imports ComfyUI), and it is logged when it starts, every
quarter, and when it ends. The trained experts are written into the file with what they were trained from
(``predictors/forecasters/lesa/stored.py``): later runs, nodes and sessions load them instead of training, until a
calibration run changes the sample. Files inside the pack's own folder are never rewritten; a file that cannot be
written keeps working (trained again next time, with a warning saying so).
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from ..predictors.errors import PredictorFileError
from ..predictors.files.storage import load_predictor_file, save_predictor_file
from ..predictors.forecasters.lesa.model import LesaModel
from ..predictors.forecasters.lesa.stored import file_sample, stored_model, training_identity, with_trained
from ..predictors.forecasters.lesa.train import LesaTrainConfig, train_lesa
from ..predictors.files.predictor_file import PredictorFile
from .node_errors import L2P_CACHE
from .report import LOG_PREFIX, logger

#: the recipe L2P Cache trains with (part of a stored model's identity: changing it retrains every file)
LESA_TRAINING = LesaTrainConfig()
PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ProgressCallback = Callable[[int, int], None]


def lesa_model(path: str, pf: PredictorFile, progress: ProgressCallback | None = None,
               device: torch.device | str = "cpu") -> LesaModel:
    """The file's LESA model: stored and current, or trained now (on ``device``) and stored."""
    name = os.path.basename(path)
    model = stored_model(pf, LESA_TRAINING, path)
    if model is not None:
        logger.info("%s %s: using the LESA experts stored in %s", LOG_PREFIX, L2P_CACHE, name)
        return model
    sample = file_sample(pf)
    if sample is None or sample.size < 2:
        raise PredictorFileError(
            f"{path}: LESA trains on element trajectories that L2P Calibrate records when its lesa_sample input is"
            f" on, and this file holds none. Run L2P Calibrate into this file with lesa_sample on (a few prompts),"
            f" or choose the direct predictor (the default, and better on every model measured)")
    total = LESA_TRAINING.phase1_iters + LESA_TRAINING.phase2_iters
    logger.info("%s %s: training LESA on %d sampled trajectories of %s (%d iterations on %s; once per file: the"
                " experts are stored in it)", LOG_PREFIX, L2P_CACHE, sample.size, name, total, device)
    threads = torch.get_num_threads()
    try:
        # One thread: the KAN's ops are small, so a second thread gains little on free cores, and on busy ones its
        # spinning made training 7-10x slower (python3 -m benchmark.lesa_cost on a loaded 2-core machine).
        torch.set_num_threads(1)
        # ComfyUI executes graphs under inference_mode (execution.py); training needs autograd back
        with torch.inference_mode(False), torch.enable_grad():
            model, report = train_lesa(sample, config=LESA_TRAINING, progress=_logged(progress, name),
                                       device=device)
    finally:
        torch.set_num_threads(threads)
    logger.info("%s %s: LESA trained in %.0f s; held-out forecast error %.3f (its linear baseline %.3f)",
                LOG_PREFIX, L2P_CACHE, report.seconds, report.forecast_error_lesa, report.forecast_error_baseline)
    _store(path, model, training_identity(sample, LESA_TRAINING))
    return model


def _logged(progress: ProgressCallback | None, name: str) -> ProgressCallback:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if done < total and done * 4 // total != (done - 1) * 4 // total:
            logger.info("%s %s: training LESA for %s: %d / %d iterations", LOG_PREFIX, L2P_CACHE, name, done, total)
    return report


def _store(path: str, model: LesaModel, identity: np.ndarray) -> None:
    """Write the experts into the file, unless it lies in the pack's folder or changed since it was read."""
    if os.path.commonpath([os.path.abspath(path), PACK_ROOT]) == PACK_ROOT:
        return  # a file shipped with the pack: never rewritten (the next session trains again)
    try:
        current = load_predictor_file(path)
        sample = file_sample(current)
        if sample is None or not np.array_equal(training_identity(sample, LESA_TRAINING), identity):
            logger.info("%s %s: %s changed while LESA trained; the experts are not stored", LOG_PREFIX, L2P_CACHE,
                        os.path.basename(path))
            return
        save_predictor_file(path, with_trained(current, model, identity))
    except (OSError, PredictorFileError) as error:
        logger.warning(
            "%s %s: could not store the trained LESA experts in %s (%s); they work for this run and will be trained"
            " again next time. Put the file where it can be written (models/l2p/)", LOG_PREFIX, L2P_CACHE, path,
            error)
