"""The pack's own exception types: what a user reads in ComfyUI's error dialog.

ComfyUI shows an exception's type as ``module.QualName`` (``full_type_name`` in its execution.py, 0.3.64 and
0.33 alike), and it imports a custom node pack under a module name made from the pack's folder path, so a plain
class would read ``/home/me/ComfyUI/custom_nodes/ComfyUI-L2P.predictors.files.predictor_file.PredictorFileError``.
Every type below reports the module ``l2p`` instead: ``l2p.PredictorFileError``. Pickling still works: an instance
rebuilds itself by type name through this module's ``_rebuild`` (pickle would otherwise look for a module ``l2p``).

Each type also subclasses the builtin that such an error used to be (ValueError, RuntimeError, ...), so callers
that catch those keep working. Messages raised here and in ``predictors/`` never name a node: the node boundary
(``nodes/node_errors.py``) puts the node's name in front (``name_node``), e.g. "L2P Cache: ...".
"""
from __future__ import annotations

import re

#: the module name ComfyUI shows in front of our exception types
DISPLAY_MODULE = "l2p"

_TYPES: dict[str, type] = {}


def _rebuild(type_name: str, args: tuple) -> "L2PError":
    return _TYPES[type_name](*args)


class L2PError(Exception):
    """Base of every error the pack raises on purpose (bad input, unusable file, bad model output)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__module__ = DISPLAY_MODULE
        _TYPES[cls.__qualname__] = cls

    def __reduce__(self):
        return _rebuild, (type(self).__qualname__, self.args), self.__dict__ or None


L2PError.__module__ = DISPLAY_MODULE
_TYPES["L2PError"] = L2PError


class PredictorFileError(L2PError, ValueError):
    """A predictor file that cannot be used, with what was expected, what was found and how to fix it."""


class ScheduleError(L2PError, ValueError):
    """Schedule settings no schedule can satisfy (too few passes for the guards, a published list that does not
    exist for this step count)."""


class CalibrationError(L2PError, ValueError):
    """A sampling run that cannot be recorded as calibration (its conditionings changed, a step was skipped)."""


class ModelOutputError(L2PError, ArithmeticError):
    """The model's output holds NaN or infinite values (names the step and the stream)."""


class UnsupportedModelError(L2PError, ValueError):
    """A model whose transformer never calls ComfyUI's DIFFUSION_MODEL wrapper."""


class NodeInputError(L2PError, ValueError):
    """A node input outside what the node accepts (e.g. a file name outside models/l2p/)."""


class ForecastError(L2PError, RuntimeError):
    """A forecast was asked for that the available history cannot support."""


class HostUnsupported(L2PError, RuntimeError):
    """The ComfyUI running the pack lacks something the pack needs (``nodes/host_check.py`` names it)."""


_REDUNDANT_PREFIX = re.compile(r"^L2P:? (?=[a-z'])")


def node_message(node: str, message: str) -> str:
    """``message`` as the node ``node`` says it: "<node>: ..." (a leading generic "L2P"/"L2P:" is dropped)."""
    if message.startswith(f"{node}:"):
        return message
    return f"{node}: {_REDUNDANT_PREFIX.sub('', message, count=1)}"


def name_node(error: L2PError, node: str) -> L2PError:
    """Put ``node``'s name in front of ``error``'s message, in place (type and traceback are kept)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (node_message(node, error.args[0]), *error.args[1:])
    else:
        error.args = (node_message(node, str(error)),)
    return error
