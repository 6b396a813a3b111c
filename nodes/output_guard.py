"""Model outputs and forecasts that hold NaN or infinite values: found at the step where they appear.

Detection is one fused reduction per tensor (a float32 sum: NaN and inf survive any sum) and one host sync; only
a non-finite sum is looked at element by element, to name the streams and to rule out a float32 overflow of the
sum itself. What each node does with a bad computed output (``RunState``):
- L2P Calibrate (a calibration sink): the run stops with ``ModelOutputError`` naming the step, the sigma and the
  streams; the run is discarded, so the predictor file is left untouched.
- L2P Cache / Forecast Cache: the output goes to the sampler unchanged (it is the model's own output, which the
  run would get without the node) but never enters the history; forecasting stops for the rest of the run, so
  every later step is computed for real, exactly as without the node (in a batch, rows that are still finite keep
  their true outputs). The report and a warning name the step and the streams.
A forecast that is not finite (an overflow when cast to a half-precision dtype) is never returned: the step is
computed for real and reported.
"""
from __future__ import annotations

import torch

from ..predictors.errors import ModelOutputError
from .report import LOG_PREFIX, logger


def all_finite(tensor: torch.Tensor | list | tuple) -> bool:
    """True when every element is finite: one float32 sum on the tensor's device, then one sync. A multi-latent
    model's list output (latent_lists.py) is finite when each of its parts is."""
    if isinstance(tensor, (list, tuple)):
        return all(all_finite(part) for part in tensor)
    if not torch.is_tensor(tensor):
        return True  # an output the run state does not track (run_calls.py notes it); nothing to check
    if bool(torch.isfinite(tensor.sum(dtype=torch.float32))):
        return True
    return bool(torch.isfinite(tensor).all())  # the sum alone can overflow float32: decide exactly


def bad_streams(names: list[str], out: torch.Tensor) -> list[str]:
    """The streams (chunks of ``out`` along the batch, in ``names`` order) holding NaN or inf."""
    return [name for name, chunk in zip(names, out.chunk(len(names), dim=0)) if not all_finite(chunk)]


def describe(step: int, num_steps: int, sigma: float, streams: list[str]) -> str:
    return (f"the model's output at step {step} (of steps 0-{num_steps - 1}, sigma {sigma:.4g}, stream"
            f"{'s' if len(streams) > 1 else ''} {', '.join(streams)}) holds NaN or infinite values")


def refuse_for_calibration(step: int, num_steps: int, sigma: float, streams: list[str]) -> ModelOutputError:
    return ModelOutputError(
        f"{describe(step, num_steps, sigma, streams)}. The model produced them, not L2P (e.g. an fp16 overflow, a"
        f" broken checkpoint or LoRA): this calibration run is discarded and the predictor file is left unchanged."
        f" Fix the model (weight_dtype, another checkpoint), check that the run works without L2P Calibrate, and"
        f" queue again")


def stop_forecasting_note(step: int, num_steps: int, sigma: float, streams: list[str]) -> str:
    note = (f"{describe(step, num_steps, sigma, streams)}: it was passed to the sampler unchanged (as without"
            f" the cache), kept out of the forecast history, and every later step of this run was computed for"
            f" real. The model produced them, not L2P: check the model's precision (weight_dtype) or checkpoint")
    logger.warning("%s %s", LOG_PREFIX, note)
    return note
