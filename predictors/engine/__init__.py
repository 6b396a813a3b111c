"""The one linear engine: the run's step grid, the interface every linear forecaster implements, and the per-stream
history that turns a predictor's weights into one weighted sum of stored outputs."""
from .grid import StepGrid, TimeAxis
from .history import ForecastEngine, HistoryEngine, RoutedEngine
from .linear_predictor import ForecastError, LinearPredictor
