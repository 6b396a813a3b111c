"""Where predictor files live: ComfyUI's ``models/l2p/`` (a folder type the pack registers, created then, so users
can copy files in before their first calibration) plus the pack's own ``weights/`` folder, both listed in one
dropdown. A folder that cannot be created (read-only disk) is logged, never fatal: only calibration needs it."""
from __future__ import annotations

import functools
import logging
import os

import folder_paths

from ..predictors.errors import NodeInputError, PredictorFileError

logger = logging.getLogger("comfyui_l2p")

FOLDER_TYPE = "l2p"
EXTENSIONS = {".safetensors", ".txt"}  # .txt: the official L2P release's weight.txt
PACK_WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")


def register_folder() -> None:
    """Idempotent: models/l2p first (Calibrate writes there), the pack's weights/ second."""
    user_dir = os.path.join(folder_paths.models_dir, FOLDER_TYPE)
    if FOLDER_TYPE not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FOLDER_TYPE] = ([user_dir], set(EXTENSIONS))
    paths, exts = folder_paths.folder_names_and_paths[FOLDER_TYPE]
    if isinstance(exts, set):
        exts.update(EXTENSIONS)
    for path in (user_dir, PACK_WEIGHTS_DIR):
        if path not in paths:
            paths.append(path)
    _create_folder(paths[0])


@functools.lru_cache(maxsize=8)  # once per folder and process: startup and every dropdown refresh call this
def _create_folder(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        return True
    except OSError as err:
        logger.warning("[L2P] cannot create the predictor folder %s (%s): L2P Calibrate will not be able to save"
                       " calibrations there until it exists and is writable", path, err.strerror or err)
        return False


def list_predictor_files() -> list[str]:
    register_folder()
    return sorted(folder_paths.get_filename_list(FOLDER_TYPE))


def resolve_existing(name: str) -> str:
    """Full path of a listed file; a clear error naming the folders when it is missing."""
    register_folder()
    path = folder_paths.get_full_path(FOLDER_TYPE, name)
    if path is None:
        where = ", ".join(folder_paths.get_folder_paths(FOLDER_TYPE))
        raise PredictorFileError(
            f"predictor file '{name}' was not found in {where}. Calibrate one with L2P Calibrate, or copy a"
            f" .safetensors predictor file into models/{FOLDER_TYPE}/ and refresh the page."
        )
    return path


def calibration_target(name: str) -> str:
    """Where L2P Calibrate writes ``name``: under models/l2p/, never outside it."""
    register_folder()
    base = folder_paths.get_folder_paths(FOLDER_TYPE)[0]
    if not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise NodeInputError(
            f"file_name must be a relative name inside models/{FOLDER_TYPE}/, got {name!r}."
            f" Use e.g. 'flux-dev-50steps.safetensors'."
        )
    if not name.endswith(".safetensors"):
        name += ".safetensors"
    path = os.path.join(base, name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        pass  # a read-only folder: the run still samples, and its report says the recording could not be saved
    return path


def learning_folder() -> str:
    """Where L2P Cache's learning mode keeps its files: models/l2p/ (created when missing and possible; a folder
    that cannot be created only loses the recordings, and each run's report says so)."""
    register_folder()
    return folder_paths.get_folder_paths(FOLDER_TYPE)[0]
