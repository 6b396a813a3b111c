"""Host-independent core of ComfyUI-L2P: pure torch / numpy / safetensors. Nothing here imports ComfyUI."""
from .base import ForecastError, LinearPredictor
from .engine import ForecastEngine
from .foca import FoCa
from .fora import Fora
from .grid import StepGrid, TimeAxis
from .registry import METHOD_DISPLAY_NAMES, ForecastMethod, ForecastSettings, build_predictor
from .spectrum import Spectrum
from .taylorseer import TaylorSeer

__all__ = [
    "FoCa", "Fora", "ForecastEngine", "ForecastError", "ForecastMethod", "ForecastSettings", "LinearPredictor",
    "METHOD_DISPLAY_NAMES", "Spectrum", "StepGrid", "TaylorSeer", "TimeAxis", "build_predictor",
]
