"""Host-independent core of ComfyUI-L2P: pure torch / numpy / safetensors. Nothing here imports ComfyUI."""
from .engine.linear_predictor import ForecastError, LinearPredictor
from .calibration.gram import GramStats, empty_stats
from .calibration.inner_products import gram_from_pieces
from .calibration.recorder import TrajectoryRecorder
from .files.calibration_file import file_from_stats, stats_from_file
from .files.update import extend_calibration_file, update_predictor_file
from .files.merge import MergeRefused, merge_predictor_files
from .engine.history import ForecastEngine
from .calibration.fit import direct_weights, fit_paper_adam, fit_paper_matrix, rollout_error
from .forecasters.foca import FoCa
from .forecasters.fora import Fora
from .engine.grid import StepGrid, TimeAxis
from .forecasters.l2p import L2PDirect, L2PRollout, unroll_schedule
from .forecasters.lesa.model import Baseline, LesaModel, lesa_from_file, with_lesa
from .forecasters.lesa.engine import LesaEngine
from .forecasters.lesa.train import LesaTrainConfig, LesaTrainReport, train_lesa
from .files.official import import_official_weight_txt, official_predictor_file
from .files.predictor_file import PredictorFile, PredictorFileError
from .files.storage import load_predictor_file, save_predictor_file
from .forecasters.registry import METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor
from .schedules.placements import (
    AdaptiveController, Placement, ScheduleConfig, adaptive_controller, computed_count, even_schedule,
    expected_final_error, optimized_schedule, plan_schedule, progressive_schedule, published_schedule,
)
from .forecasters.spectrum import Spectrum
from .forecasters.taylorseer import TaylorSeer
from .calibration.trajectory_sample import TrajectorySample, TrajectorySampler
from .calibration.transfer import resample_gram

__all__ = [name for name in dir() if not name.startswith("_")]
