"""The provenance of one calibration run (``predictors.files.provenance``), read from ComfyUI's sampling path.

Where each value comes from, at the OUTER_SAMPLE wrapper (``CFGGuider.outer_sample(noise, latent_image, sampler,
sigmas, ...)``, the same on ComfyUI 0.3.64 and 0.33):
- sampler: the ``sampler`` argument; a ``KSAMPLER`` holds its k-diffusion function, whose name (``sample_euler``)
  names the algorithm that ran ("ddim" runs ``sample_euler``, so it is recorded as euler). Another Sampler class
  is recorded as "unknown (<class>)";
- scheduler: the sampling path carries only the sigmas, not the scheduler's name. The name is recorded when the
  run's sigmas equal exactly what one of ``comfy.samplers.SCHEDULER_NAMES`` gives for this model and step count
  (as the KSampler node computes them: for dpm_2 / uni_pc with the penultimate sigma dropped); when several do,
  all of them ("a or b"); when none does (custom sigmas, denoise < 1, split runs), "unknown";
- shift: ``model_patcher.get_model_object("model_sampling").shift`` (set by ModelSamplingFlux / AuraFlow / SD3
  nodes); "none" for model samplings without one;
- denoise: "1" when the run goes from the model's sigma_max to 0; otherwise "partial (sigmas a to b of max)":
  the fraction itself (KSampler's denoise, or start_at_step / end_at_step) is not visible in the sampling path;
- CFG scale: ``guider.cfg`` (nodes/cfg_record.py); pack version: this pack's pyproject.toml.
"""
from __future__ import annotations

import functools
import math
import os
import re

import numpy as np

from ..predictors.files.provenance import CONTRIBUTORS, machine_tag, run_contributors, utc_now
from ..predictors.files.identity import IDENTITY_KEY, ModelIdentity

UNKNOWN = "unknown"
PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=1)
def pack_version() -> str:
    """``[project] version`` of this pack's pyproject.toml; "unknown" when it cannot be read."""
    try:
        with open(os.path.join(PACK_ROOT, "pyproject.toml"), "r", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return UNKNOWN
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    version = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.M) if project else None
    return version.group(1) if version else UNKNOWN


def sampler_name(sampler) -> str:
    function = getattr(sampler, "sampler_function", None)
    function = getattr(function, "func", function)  # functools.partial
    name = getattr(function, "__name__", None)
    if name is None:
        return UNKNOWN if sampler is None else f"{UNKNOWN} ({type(sampler).__name__})"
    return name.removeprefix("sample_").removesuffix("_function")


def scheduler_name(model_sampling, sigmas: np.ndarray, sampler=None) -> str:
    try:
        import comfy.samplers  # inside ComfyUI only: the benchmark and the stand-in tests have no scheduler
    except ImportError:
        return UNKNOWN
    steps = len(sigmas) - 1
    drop_penultimate = _drops_penultimate_sigma(comfy.samplers, sampler)
    matches = []
    for name in getattr(comfy.samplers, "SCHEDULER_NAMES", ()):
        candidate = _scheduler_sigmas(comfy.samplers, model_sampling, name, steps, drop_penultimate)
        if candidate is not None and candidate.shape == sigmas.shape \
                and np.allclose(candidate, sigmas, rtol=1e-5, atol=1e-7):
            matches.append(name)
    return " or ".join(matches) if matches else UNKNOWN


def _drops_penultimate_sigma(samplers, sampler) -> bool:
    """True for the samplers whose sigmas the KSampler node computes for one step more, dropping the penultimate
    (``KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS``: dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2)."""
    function = getattr(sampler, "sampler_function", None)
    names = getattr(getattr(samplers, "KSampler", None), "DISCARD_PENULTIMATE_SIGMA_SAMPLERS", ())
    try:
        return function is not None and any(samplers.sampler_object(n).sampler_function is function for n in names)
    except Exception:
        return False


def _scheduler_sigmas(samplers, model_sampling, name: str, steps: int, drop_penultimate: bool):
    try:
        if not drop_penultimate:
            return samplers.calculate_sigmas(model_sampling, name, steps).double().cpu().numpy()
        longer = samplers.calculate_sigmas(model_sampling, name, steps + 1).double().cpu().numpy()
        return np.concatenate([longer[:-2], longer[-1:]])
    except Exception:  # a scheduler that needs what this model does not have: not a match
        return None


def model_sampling_of(model_patcher):
    """The patcher's model_sampling object (shift, sigma range, schedulers read it), or None outside ComfyUI."""
    if model_patcher is None or not hasattr(model_patcher, "get_model_object"):
        return None
    try:
        return model_patcher.get_model_object("model_sampling")
    except (AttributeError, KeyError):
        return None


def run_scheduler(model_patcher, sigmas: np.ndarray, sampler=None) -> str:
    """The scheduler name of a run's sigmas (``scheduler_name``), "unknown" outside ComfyUI."""
    model_sampling = model_sampling_of(model_patcher)
    return UNKNOWN if model_sampling is None else scheduler_name(model_sampling, sigmas, sampler)


def run_provenance(model_patcher, sampler, sigmas: np.ndarray, identity: ModelIdentity,
                   trajectories: int) -> tuple[dict[str, str], dict[str, str]]:
    """(PredictorFile fields sampler / scheduler, extra metadata) describing one calibration run."""
    model_sampling = model_sampling_of(model_patcher)
    shift = getattr(model_sampling, "shift", None)
    sigma_max = getattr(model_sampling, "sigma_max", None)
    if sigma_max is None:
        denoise = UNKNOWN
    elif math.isclose(float(sigmas[0]), float(sigma_max), rel_tol=1e-4) and float(sigmas[-1]) == 0.0:
        denoise = "1"
    else:  # denoise < 1, or one part of a split run (KSamplerAdvanced start_at_step / end_at_step)
        denoise = f"partial (sigmas {float(sigmas[0]):.4g} to {float(sigmas[-1]):.4g} of {float(sigma_max):.4g})"
    now = utc_now()
    fields = {"sampler": sampler_name(sampler), "scheduler": run_scheduler(model_patcher, sigmas, sampler)}
    extra = {
        "shift": UNKNOWN if model_sampling is None else ("none" if shift is None else f"{float(shift):g}"),
        "denoise": denoise, "pack_version": pack_version(), "created": now, "updated": now,
        CONTRIBUTORS: run_contributors(trajectories), IDENTITY_KEY: identity.to_metadata(),
    }
    return fields, extra


def contributor_note() -> str:
    return f"this machine's tag in the file's contributors: {machine_tag()}"
