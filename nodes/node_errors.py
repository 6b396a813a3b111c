"""Where the pack's errors get the node's name: every user-facing message starts with it ("L2P Cache: ...").

Errors are raised as the types of ``predictors/errors.py`` (shown by ComfyUI as ``l2p.<Type>``) with messages that
do not name a node; ``raised_by`` puts the node's name in front when they leave a node's code, at graph time (the
node's ``execute``) and during sampling (the OUTER_SAMPLE wrapper, where ComfyUI reports the sampler node).
Other exceptions (ComfyUI's own, interruptions, bugs) pass through untouched.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from ..predictors.errors import L2PError, name_node

# The names the nodes show (display names, without Forecast Cache's "(training-free)"), in messages and reports.
L2P_CACHE = "L2P Cache"
L2P_CALIBRATE = "L2P Calibrate"
FORECAST_CACHE = "Forecast Cache"


@contextlib.contextmanager
def raised_by(node: str) -> Iterator[None]:
    """Re-raise any ``L2PError`` from the block with ``node``'s name in front of its message (same type,
    same traceback)."""
    try:
        yield
    except L2PError as error:
        name_node(error, node)
        raise
