"""What a node stores on its MODEL: the setup (immutable, shared freely) and the model's own report log (bounded).

Lifetime, on every host:
* ``model.clone()`` on ComfyUI 0.33 copies only the dicts and lists of ``model_options`` (#12382): objects stored
  there, like this holder, are shared by every clone. ComfyUI 0.3.64 deep-copied them. So that reports
  stay per clone on both, the host's ``CallbacksMP.ON_CLONE`` gives every clone a holder of its own (same setup,
  an empty log), and ``__deepcopy__`` does the same for anyone who deep-copies model_options.
* A multi-GPU device replica (``ON_DEEPCLONE_MULTIGPU``, ``ON_MATCH_MULTIGPU_CLONES``) is the same MODEL on
  another device, not a new branch of the graph: it shares the main model's holder. Its threads use the run
  state of the main model's run (see run_state.py), never a holder of their own.
* The log keeps the newest ``REPORTS_KEPT`` reports: a MODEL that samples for a whole session holds a bounded
  amount, and a collected clone takes its log with it.

Nothing here imports ComfyUI: the callbacks only touch ``model_options`` dicts.
"""
from __future__ import annotations

import collections
import collections.abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .report import RunReport
    from .run_pieces import RunContext, RunPieces

HOLDER_KEY = "l2p"  # transformer_options entry holding the node's L2PHolder
REPORTS_KEPT = 16  # newest reports a MODEL keeps (the log line of every run is written as it ends)


class ReportLog(collections.abc.Sequence):
    """The newest ``REPORTS_KEPT`` reports of a MODEL, oldest first; reads like a list (index, slice, len)."""

    def __init__(self) -> None:
        self._reports: collections.deque = collections.deque(maxlen=REPORTS_KEPT)

    def append(self, report: RunReport) -> None:
        self._reports.append(report)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self._reports)[index]
        return self._reports[index]

    def __len__(self) -> int:
        return len(self._reports)


@dataclass(frozen=True)
class L2PHolder:
    """The template a node stores in ``model_options["transformer_options"][HOLDER_KEY]``.

    ``start_run(context, report)`` returns the RunPieces for one run; it raises user-facing errors (e.g. a
    predictor file calibrated for another step grid) before any step runs. ``reports``: this MODEL's newest runs,
    oldest first (at most REPORTS_KEPT).
    """

    feature: str
    predictor_name: str
    start_run: Callable[[RunContext, RunReport], RunPieces]
    reports: ReportLog = field(default_factory=ReportLog, compare=False, repr=False)
    node_id: str | None = None  # the node that made it: where the UI shows each run's report (node_report.py)

    def for_clone(self) -> L2PHolder:
        """The same setup with an empty report log: what a clone of the MODEL gets."""
        return L2PHolder(self.feature, self.predictor_name, self.start_run, node_id=self.node_id)

    def __deepcopy__(self, memo) -> L2PHolder:
        return self.for_clone()


def holder_of(model_patcher: Any) -> L2PHolder | None:
    """The L2PHolder stored on a ModelPatcher (None when it has none)."""
    holder = getattr(model_patcher, "model_options", {}).get("transformer_options", {}).get(HOLDER_KEY)
    return holder if isinstance(holder, L2PHolder) else None


def own_holder_for_clone(parent: Any, clone: Any) -> None:
    """CallbacksMP.ON_CLONE(parent, clone): the clone's runs go to a log of its own."""
    holder = holder_of(clone)
    if holder is not None:
        clone.model_options["transformer_options"][HOLDER_KEY] = holder.for_clone()


def share_holder_with_device_replica(main: Any, replica: Any) -> None:
    """ON_DEEPCLONE_MULTIGPU / ON_MATCH_MULTIGPU_CLONES(main, replica): the replica is the main MODEL on another
    device, so it carries the main model's holder (its ON_CLONE gave it a fresh one a moment before)."""
    holder = holder_of(main)
    if holder is not None and holder_of(replica) is not None:
        replica.model_options["transformer_options"][HOLDER_KEY] = holder


# The host's callback types (CallbacksMP values) and what each does. A host without a type never calls it
# (ComfyUI 0.3.64 has no multi-GPU split); registering it there is harmless.
CLONE_CALLBACKS: dict[str, Callable[[Any, Any], None]] = {
    "on_clone": own_holder_for_clone,
    "on_deepclone_multigpu": share_holder_with_device_replica,
    "on_match_multigpu_clones": share_holder_with_device_replica,
}
