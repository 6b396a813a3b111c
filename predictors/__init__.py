"""Host-independent core of ComfyUI-L2P: pure torch / numpy / safetensors. Nothing here imports ComfyUI."""
from .base import ForecastError, LinearPredictor
from .engine import ForecastEngine
from .fora import Fora
from .grid import StepGrid, TimeAxis
from .taylorseer import TaylorSeer

__all__ = ["ForecastEngine", "ForecastError", "Fora", "LinearPredictor", "StepGrid", "TaylorSeer", "TimeAxis"]
