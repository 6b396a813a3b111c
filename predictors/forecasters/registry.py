"""The registry of forecasting methods: one enum member and one factory per method.

The enum values are the strings the node dropdown shows. Saved workflows store them, so a value is permanent once
released: add new members, never rename one. To add a method: a member here, a factory in ``FACTORIES`` (the
import-time check below refuses a member without one) and, when it needs a new knob, a field of
``ForecastSettings``. Learned predictors (L2P) that load a file can add their members the same way, with a factory
that reads what it needs from the settings.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

from ..engine.linear_predictor import LinearPredictor
from .foca import FoCa
from .fora import Fora
from ..engine.grid import TimeAxis
from .spectrum import Spectrum
from .taylorseer import TaylorSeer


class ForecastMethod(enum.Enum):
    """A forecasting method; the value is its display name in the node dropdown."""

    FORA = "FORA (reuse)"
    TAYLOR1 = "TaylorSeer order 1"
    TAYLOR2 = "TaylorSeer order 2"
    SPECTRUM = "Spectrum"
    FOCA = "FoCa"

    @property
    def display_name(self) -> str:
        return self.value

    @classmethod
    def from_display_name(cls, name: str) -> "ForecastMethod":
        """The member shown as ``name`` in the dropdown; a clear error for anything else (e.g. an old workflow)."""
        for member in cls:
            if member.value == name:
                return member
        raise ValueError(f"unknown forecast method {name!r}; expected one of {[m.value for m in cls]}")


@dataclass(frozen=True)
class ForecastSettings:
    """Every knob a method's factory may read. Each predictor validates its own values when it is built."""

    axis: TimeAxis = TimeAxis.STEP
    spectrum_degree: int = 4
    spectrum_ridge: float = 0.1
    spectrum_blend: float = 0.5
    spectrum_penalize_constant: bool = True  # the published ridge; False keeps constant outputs exact

    def __post_init__(self) -> None:
        if not isinstance(self.axis, TimeAxis):
            raise ValueError(f"ForecastSettings.axis must be a TimeAxis, got {self.axis!r}")


PredictorFactory = Callable[[ForecastSettings], LinearPredictor]

FACTORIES: Mapping[ForecastMethod, PredictorFactory] = MappingProxyType({
    ForecastMethod.FORA: lambda s: Fora(),
    ForecastMethod.TAYLOR1: lambda s: TaylorSeer(order=1, axis=s.axis),
    ForecastMethod.TAYLOR2: lambda s: TaylorSeer(order=2, axis=s.axis),
    ForecastMethod.SPECTRUM: lambda s: Spectrum(
        degree=s.spectrum_degree, ridge=s.spectrum_ridge, blend=s.spectrum_blend, axis=s.axis,
        penalize_constant=s.spectrum_penalize_constant,
    ),
    ForecastMethod.FOCA: lambda s: FoCa(axis=s.axis),
})

_missing = [m.name for m in ForecastMethod if m not in FACTORIES]
if _missing:
    raise ImportError(f"predictors/forecasters/registry.py: ForecastMethod members without a factory: {_missing}")

#: the dropdown's options, in enum order (the first is the default)
METHOD_DISPLAY_NAMES: tuple[str, ...] = tuple(m.value for m in ForecastMethod)


def build_predictor(method: ForecastMethod, settings: ForecastSettings = ForecastSettings()) -> LinearPredictor:
    """The predictor for ``method`` configured by ``settings``."""
    if not isinstance(method, ForecastMethod):
        raise ValueError(f"build_predictor needs a ForecastMethod, got {method!r}; use"
                         f" ForecastMethod.from_display_name for a dropdown string")
    return FACTORIES[method](settings)
