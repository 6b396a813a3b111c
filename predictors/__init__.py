"""Host-independent core of ComfyUI-L2P: pure torch / numpy / safetensors. Nothing here imports ComfyUI."""
from .base import ForecastError, LinearPredictor
from .calibration import GramStats, TrajectoryRecorder, empty_stats, gram_from_pieces
from .calibration_file import extend_calibration_file, file_from_stats, stats_from_file
from .engine import ForecastEngine
from .fit import direct_weights, fit_paper_adam, fit_paper_matrix, rollout_error
from .foca import FoCa
from .fora import Fora
from .grid import StepGrid, TimeAxis
from .l2p import L2PDirect, L2PRollout, unroll_schedule
from .lesa import Baseline, LesaModel, lesa_from_file, with_lesa
from .lesa_engine import LesaEngine
from .lesa_train import LesaTrainConfig, LesaTrainReport, train_lesa
from .predictor_file import (
    PredictorFile, PredictorFileError, import_official_weight_txt, load_predictor_file, official_predictor_file,
    save_predictor_file,
)
from .registry import METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor
from .schedules import (
    AdaptiveController, Placement, ScheduleConfig, adaptive_controller, computed_count, even_schedule,
    expected_final_error, optimized_schedule, plan_schedule, progressive_schedule, published_schedule,
)
from .spectrum import Spectrum
from .taylorseer import TaylorSeer
from .trajectory_sample import TrajectorySample, TrajectorySampler
from .transfer import resample_gram

__all__ = [name for name in dir() if not name.startswith("_")]
