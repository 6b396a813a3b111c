"""Each run's report shown on the L2P node itself in ComfyUI's UI, not only in the console.

The node that patched the model executes before the sampler; its report exists only when the sampler's run ends.
So the report is sent from the OUTER_SAMPLE wrapper, during the sampler node's execution, to the id the L2P node
was given (the V3 hidden ``unique_id``, kept in its L2PHolder), through ComfyUI's own message functions:
- the text: ``PromptServer.send_progress_text(text, node_id, client_id)``, which the frontend shows as the node's
  text (ComfyUI 0.3.64 and 0.33 both have it; feature-detected, so a host without it only logs);
- the expected-quality plot, when the run extended a calibration (L2P Calibrate, or L2P Cache learning): a PNG in
  ComfyUI's temp folder announced by an "executed" message for the node, the way PreviewImage shows an image (one
  file per node, replaced by the next run).
The client is the one that queued the prompt (``PromptServer.client_id``); without one the text is broadcast as the
host's own nodes do, and no image is sent (the host sends no "executed" messages then either). Showing the report
never fails a run: a problem is logged. ComfyUI is imported only here and only when a report is shown.
"""
from __future__ import annotations

import collections
import os
import re

from .report import LearningAction, RunReport, logger

PLOT_PREFIX = "l2p-report-"


def node_text(report: RunReport) -> str:
    """The report as the node shows it. The frontend's text box shows two lines without scrolling, so they say what
    the run did and the one number that matters for it; the details follow: passes, the worst residual, forced
    steps, where learning stands, every note."""
    lines = [f"{report.feature}: {headline(report)}", second_line(report),
             f"{report.transformer_calls} real passes, {report.forecast_calls} forecast, {report.num_steps} steps"]
    worst = report.worst_residual if report.forecast_calls else None  # a run that forecast nothing has none
    if worst is not None:
        lines.append(f"worst forecast residual {worst[0]:.3f} (step {worst[1]}, {worst[2]})")
    reasons = collections.Counter(reason for _, _, reason in report.forced)
    lines.extend(f"forced {n}x: {reason}" for reason, n in reasons.items())
    if report.learning is not None:
        lines.append(learning_line(report))
    lines.extend(report.notes)
    return "\n".join(lines)


def images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def headline(report: RunReport) -> str:
    """What the run did, in a few words: cancelled / failed, learning k of n, images recorded, or the speedup."""
    status = report.status
    if status.startswith("failed"):
        return "cancelled" if "Interrupt" in status else status[:160]
    s = report.learning
    if s is not None and s.action.records:
        return f"learning {s.trajectories} of {images(s.needed)}" if s.saved else \
            f"NOT saved ({s.trajectories} of {images(s.needed)})"
    if report.recording_lost is not None:
        return "recording NOT saved"
    if report.recorded is not None:
        return f"{images(report.recorded)} recorded"
    if report.forecast_calls == 0:
        return f"all {report.num_steps} steps computed"
    calls = report.transformer_calls + report.forecast_calls
    return f"{report.achieved_speedup:.2f}x ({report.transformer_calls}/{calls} passes)"


def second_line(report: RunReport) -> str:
    """The number that matters next: when forecasting starts, the expected quality, or the worst residual."""
    s = report.learning
    if s is not None and s.action is LearningAction.RECORD and s.saved:
        more = s.needed - s.trajectories
        return "forecasting from the next run" if more <= 0 else f"forecasting after {more} more"
    if report.quality:
        return "expected " + ", ".join(f"{x:.1f}x {db:.0f} dB" for x, db in report.quality[1::2])
    worst = report.worst_residual if report.forecast_calls else None
    if worst is not None:
        return f"worst residual {worst[0]:.3f} (step {worst[1]})"
    return report.notes[0] if report.notes else report.status


def learning_line(report: RunReport) -> str:
    """Where L2P Cache's learning stands after this run, e.g. 'learning: 2 of 4 images ...'."""
    s = report.learning
    have, where = f"{s.trajectories} of {images(s.needed)}", f"in {s.file}"
    if s.action is LearningAction.RECORD:
        if not s.saved:
            why = "the run did not finish" if report.status != "finished" else "its recording was lost (see below)"
            return f"learning: nothing recorded, {why}; still {have} {where}"
        more = s.needed - s.trajectories
        then = "forecasting from the next run" if more <= 0 else f"{more} more, each computing every step"
        return f"learning: {have} {where}; {then}"
    if s.action is LearningAction.KEEP_LEARNING:
        done = "recorded" if s.saved else "NOT recorded"
        return f"keep learning: this run computed every step, {done}; {images(s.trajectories)} {where}"
    if s.action is LearningAction.FORECAST:
        return f"learned from {images(s.trajectories)} ({s.file})"
    if s.action is LearningAction.FORECAST_FEW:
        return f"learning stopped at {have} ({s.file}): forecasts from fewer images may be worse"
    return "learning stopped before anything was learned for this setup: every step computed"


def _prompt_server():
    try:
        import server  # ComfyUI's server module: present only inside ComfyUI
    except Exception:
        return None
    return getattr(getattr(server, "PromptServer", None), "instance", None)


def _prompt_id() -> str | None:
    try:
        from comfy_execution.utils import get_executing_context
    except Exception:
        return None
    context = get_executing_context()
    return getattr(context, "prompt_id", None)


def _save_plot(node_id: str, report: RunReport) -> dict:
    """The plot as a PNG in ComfyUI's temp folder; the "images" entry the frontend loads it by."""
    import folder_paths

    from .report_plot import quality_plot

    name = PLOT_PREFIX + re.sub(r"[^A-Za-z0-9_-]+", "_", str(node_id)) + ".png"
    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    quality_plot(report.quality).save(os.path.join(folder, name), compress_level=6)
    return {"filename": name, "subfolder": "", "type": "temp"}


def show_on_node(node_id: str | None, report: RunReport) -> bool:
    """Send ``report`` to node ``node_id`` in the UI of the client that queued the prompt; True when sent."""
    if node_id is None:
        return False
    server = _prompt_server()
    send_text = getattr(server, "send_progress_text", None)
    if not callable(send_text):
        logger.debug("[L2P] this ComfyUI has no PromptServer.send_progress_text: report shown in the log only")
        return False
    client = getattr(server, "client_id", None)
    try:
        send_text(node_text(report), str(node_id), client)
        if report.quality and client is not None:
            output = {"images": [_save_plot(node_id, report)]}
            server.send_sync("executed", {"node": str(node_id), "display_node": str(node_id), "output": output,
                                          "prompt_id": _prompt_id()}, client)
    except Exception as exc:  # the run itself succeeded or failed on its own; the UI must not change that
        logger.warning("[L2P] could not show the report on node %s: %s: %s", node_id, type(exc).__name__, exc)
        return False
    return True
