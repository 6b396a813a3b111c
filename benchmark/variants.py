"""Every predictor and placement the benchmark compares, as data: a name and how to build the node holder.

Builders receive the speedup and the calibration file (learned variants only) and return exactly the holder the
corresponding node would build, so every number comes from the code path users run in ComfyUI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .pack import comfyui_l2p

comfyui_l2p()
from comfyui_l2p.nodes import l2p_setup, setups  # noqa: E402
from comfyui_l2p.nodes.run_state import L2PHolder  # noqa: E402
from comfyui_l2p.predictors import ForecastMethod, Placement  # noqa: E402
from comfyui_l2p.predictors import TaylorSeer  # noqa: E402
from comfyui_l2p.predictors.calibration.validation import FitCandidate  # noqa: E402
from comfyui_l2p.predictors.schedules import error_growth  # noqa: E402
from comfyui_l2p.predictors.schedules.safety_net import SafetyNet  # noqa: E402

WARMUP = setups.DEFAULT_WARMUP  # training-free predictors and the L2P baselines
L2P_WARMUP = setups.DEFAULT_L2P_WARMUP  # what L2P Cache defaults to with optimized placement


@dataclass(frozen=True)
class Variant:
    name: str
    learned: bool  # needs a calibration file
    build: Callable[[float, str | None], L2PHolder]  # (speedup, calibration file) -> holder
    on_policy: bool = False  # the calibration file is first extended on-policy at this speedup
    cfg_only: bool = False  # differs from another variant only under CFG
    per_sample: bool = False  # each image sampled on its own (per-run decisions such as the safety net follow it)


def _forecast(method: ForecastMethod, placement: Placement = Placement.EVEN):
    def build(speedup: float, _file: str | None) -> L2PHolder:
        return setups.forecast_cache_holder(
            method=method.value, time_axis="step", speedup=speedup, placement=placement.value, warmup=WARMUP,
            compute_last=False, residual_budget=setups.DEFAULT_RESIDUAL_BUDGET,
            history_device=setups.HistoryDevice.MODEL.value,
        )
    return build


def _l2p(mode: setups.L2PMode, placement: Placement, warmup: int = WARMUP, cfg_fit: setups.CfgFit | None = None,
         cfg_schedule: setups.CfgSchedule | None = None, preserve_levels: bool = False, **robust):
    """L2P Cache's holder; options left out are the node's (setups.FitOptions' defaults). ``robust``: FitOptions'
    growth / spread_k / safety_net."""
    defaults = setups.FitOptions()
    options = setups.FitOptions(cfg_fit=cfg_fit or defaults.cfg_fit,
                                cfg_schedule=cfg_schedule or defaults.cfg_schedule, preserve_levels=preserve_levels,
                                **robust)

    def build(speedup: float, file: str | None) -> L2PHolder:
        return l2p_setup.l2p_cache_holder(
            file, speedup=speedup, placement=placement.value, warmup=warmup, compute_last=False,
            residual_budget=setups.DEFAULT_RESIDUAL_BUDGET, history_device=setups.HistoryDevice.MODEL.value,
            mode=mode.value, grid_policy=setups.GridPolicy.REFUSE.value, options=options,
        )
    return build


# The fits leave-one-trajectory-out validation chooses from: ridges around the default (1e-6), and the default
# against shrinkage toward TaylorSeer order 1 (the best training-free predictor up to ~5x) at several strengths.
RIDGES = tuple(FitCandidate(r) for r in (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3))
SHRINKAGE = (FitCandidate(setups.DEFAULT_RIDGE),) + tuple(FitCandidate(r, TaylorSeer(order=1))
                                                          for r in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2))

VARIANTS: tuple[Variant, ...] = (
    Variant("FORA", False, _forecast(ForecastMethod.FORA)),
    Variant("TaylorSeer-1", False, _forecast(ForecastMethod.TAYLOR1)),
    Variant("TaylorSeer-2", False, _forecast(ForecastMethod.TAYLOR2)),
    Variant("Spectrum", False, _forecast(ForecastMethod.SPECTRUM)),
    Variant("Spectrum (progressive)", False, _forecast(ForecastMethod.SPECTRUM, Placement.PROGRESSIVE)),
    Variant("FoCa", False, _forecast(ForecastMethod.FOCA)),
    Variant("L2P published (Adam, published lists)", True, _l2p(setups.L2PMode.ROLLOUT, Placement.PUBLISHED)),
    Variant("L2P direct (even)", True, _l2p(setups.L2PMode.DIRECT, Placement.EVEN)),
    Variant("L2P direct (optimized)", True, _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP)),
    Variant("L2P direct (optimized, streams' statistics summed)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.PER_STREAM), cfg_only=True),
    Variant("L2P direct (optimized, both streams' histories)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.JOINT), cfg_only=True),
    Variant("L2P direct (optimized on the streams' errors)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, cfg_schedule=setups.CfgSchedule.STREAMS),
            cfg_only=True),
    Variant("L2P direct (optimized on the guided error, full cross terms)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, cfg_schedule=setups.CfgSchedule.GUIDED),
            cfg_only=True),
    Variant("L2P direct (optimized on the streams' errors, difference and uncond)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.DIFFERENCE,
                 setups.CfgSchedule.STREAMS), cfg_only=True),
    Variant("L2P direct (optimized, difference and uncond)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.DIFFERENCE), cfg_only=True),
    Variant("L2P direct (optimized on the guided error, full cross terms, difference and uncond)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.DIFFERENCE,
                 setups.CfgSchedule.GUIDED), cfg_only=True),
    Variant("L2P direct (optimized, weights sum to 1)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, preserve_levels=True)),
    Variant("L2P direct (optimized, both streams' histories, levels preserved)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.JOINT, preserve_levels=True),
            cfg_only=True),
    Variant("L2P direct (optimized on the streams' errors, difference and uncond, weights sum to 1)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.DIFFERENCE,
                 setups.CfgSchedule.STREAMS, preserve_levels=True), cfg_only=True),
    Variant("L2P direct (optimized, guided-output fit)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, setups.CfgFit.GUIDED), cfg_only=True),
    Variant("L2P on-policy (optimized)", True, _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP),
            on_policy=True),
    Variant("L2P on-policy (optimized on the streams' errors)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, cfg_schedule=setups.CfgSchedule.STREAMS),
            on_policy=True, cfg_only=True),
    Variant("L2P on-policy (optimized on the guided error, full cross terms)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, cfg_schedule=setups.CfgSchedule.GUIDED),
            on_policy=True, cfg_only=True),
    Variant("L2P direct (optimized, dsigma-only error)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, growth=error_growth.LEGACY)),
    Variant("L2P direct (optimized, mean + 1 std of trajectories)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, spread_k=1.0)),
    Variant("L2P direct (optimized, safety net)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, safety_net=SafetyNet()), per_sample=True),
    Variant("L2P direct (optimized, ridge by leave-one-out)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, fit_candidates=RIDGES)),
    Variant("L2P direct (optimized, shrunk toward TaylorSeer-1 by leave-one-out)", True,
            _l2p(setups.L2PMode.DIRECT, Placement.OPTIMIZED, L2P_WARMUP, fit_candidates=SHRINKAGE)),
    Variant("LESA (even)", True, _l2p(setups.L2PMode.LESA, Placement.EVEN)),
    Variant("LESA (optimized)", True, _l2p(setups.L2PMode.LESA, Placement.OPTIMIZED, L2P_WARMUP)),
)

DEMO_VARIANTS = ("TaylorSeer-1", "Spectrum", "L2P published (Adam, published lists)", "L2P direct (optimized)")
