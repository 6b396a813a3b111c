"""What a calibration file records of its guidance: its ``cfg_mode`` metadata, written by L2P Calibrate and read
by L2P Cache.

The roles of the Gram (cond, or cond and uncond) already decide whether a file can serve a CFG run (l2p_setup
refuses a one-stream file for a CFG run). On top, the file lists the CFG scales its trajectories were sampled at
(merged by union when runs are added: ``predictors.files.provenance``). Another scale is allowed and said in the
run's report, not refused: on the two reference models (``python3 -m benchmark.cfg_scales [--model qwen]``) a
neighbouring scale cost 0-3 dB, calibrating at 1.5 and sampling at 7 up to 5 dB, still ahead of the training-free
predictors in the mean.
"""
from __future__ import annotations

from ..predictors.files.provenance import cfg_mode_text, cfg_scales_of


def cfg_record(previous: str | None, roles: tuple[str, ...], cfg_scale: float | None) -> str:
    """The file's ``cfg_mode``: "none" (one stream: no CFG, or guidance-distilled), else "cfg" and the CFG scales
    its trajectories were sampled at, e.g. "cfg 3,5" ("?" for a guider without a single scale)."""
    if "uncond" not in roles:
        return "none"
    scale = "?" if cfg_scale is None else f"{float(cfg_scale):g}"
    return cfg_mode_text(set(cfg_scales_of(previous)) | {scale}, guided=True)


def calibrated_cfg_scales(cfg_mode: str | None) -> tuple[str, ...]:
    """The scales a ``cfg_record`` lists (as written, e.g. ("3", "5")); () for "none", an older file, or import."""
    return cfg_scales_of(cfg_mode)
