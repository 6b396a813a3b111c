"""LESA: a learned, stage-aware, non-linear forecaster (KAN experts per noise stage).

Formula (per element e of a stream, elementwise over the whole latent):

    F_hat[t](e) = B(h, sigma) + out_scale * KAN_{stage(sigma_t)}( standardise(phi(h, sigma, sigma_t)) )

* h = the last m computed outputs of the stream at element e (oldest first), at sigmas s_0 > ... > s_{m-1};
  with fewer than m computed steps the oldest one is repeated (its differences and gaps are then 0).
* B is the linear baseline (``Baseline``): LINEAR extrapolates in sigma through the last two computed outputs
  (equal to TaylorSeer order 1 on the sigma axis; with one computed output it holds it), HOLD reuses the last
  one (FORA). The last KAN layer starts at zero, so an UNTRAINED LESA IS EXACTLY ITS BASELINE; training only
  learns a residual on top of it.
* phi (2m + 1 numbers): the last value / value_scale, the m-1 successive differences / value_scale, the sigma gap
  from the last computed step to the target, the m-1 sigma gaps between computed steps, and the target sigma.
  Each is standardised by a shift/scale measured on the training pairs (stored), so the spline grid sees O(1).
* stage(sigma_t): experts cover sigma ranges; the expert is picked by the TARGET step's sigma. Stage edges are
  midpoints between grid sigmas at even quantiles of the training grid, so float32 storage cannot move a grid
  sigma across an edge.

State at run time (``engine.LesaEngine``): the last m computed outputs per stream (like TaylorSeer order
m-1): m latent-sized tensors per stream. Forecasts never enter the history: only true computed outputs do, as
``ForecastEngine`` and ``nodes/run_calls.py`` do. Evaluation is float32, chunked over elements.

Neighbours: every other predictor is a fixed linear combination of computed outputs; LESA is non-linear in the
values (it can bend a trajectory that saturates, e.g. tanh-like) and uses a different function per noise stage.

Choices made here where the LESA paper (arXiv 2602.20497) is silent or not public (see methods.md section 4):
the input is the element's own last m = 3 computed model outputs plus sigma gaps (no cross-element or
cross-role inputs, no timestep embedding); the output is a residual over a linear baseline; 3 stages split at
fixed sigma quantiles of the training grid; each expert a KAN (7 -> 8 -> 1, cubic splines, ``kan.py``);
one scalar normalisation of values learnt from the data (the sample's RMS) instead of per-stream scales, so
the same function applies whatever the stream's magnitude at the same step; training in ``train.py``.

File layout (the predictor file's float32 ``lesa`` dict; ``to_arrays`` / ``from_arrays`` / ``lesa_from_file``):
    model.config         [8]   LESA_FORMAT, history m, baseline code, experts E, grid size, grid range,
                               KAN layers L, 0 (reserved)
    model.widths         [L+1] KAN widths (in = 2m+1, ..., out = 1)
    model.stage_upper    [E]   stage e covers sigma < stage_upper[e] (and >= stage_upper[e+1]); stage 0 also
                               everything above; stage_upper[0] is the training grid's first sigma
    model.feature_shift  [2m+1], model.feature_scale [2m+1]
    model.scales         [2]   value_scale, out_scale
    model.expert{e}.layer{l}.base [out, in], model.expert{e}.layer{l}.spline [out, in, grid + 3]
    model.trained_from   [8]   what the experts were trained from (``stored.py``; absent in older files)
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import torch

from .kan import KanShape, init_params, kan_forward
from ...files.predictor_file import PredictorFile, PredictorFileError

LESA_FORMAT = 1
MODEL_PREFIX = "model."


class Baseline(enum.Enum):
    """The linear forecast LESA's KAN corrects; the stored code is the value."""

    HOLD = 0  # FORA: the last computed output
    LINEAR = 1  # linear extrapolation in sigma through the last two computed outputs (TaylorSeer-1, sigma axis)


def num_features(history: int) -> int:
    return 2 * history + 1


def stage_edges(sigmas: Sequence[float], num_experts: int) -> tuple[float, ...]:
    """[E] upper sigma edges of E stages at even quantiles of the S evaluation sigmas of a grid (descending).

    Edge j >= 1 lies midway between two consecutive grid sigmas around the j/E quantile of the steps, so each
    stage holds about S/E steps; edge 0 is the first sigma (stage 0 also takes everything above it)."""
    evals = np.asarray(sigmas, dtype=np.float64)[:-1]
    num_steps = evals.size
    if not 1 <= num_experts <= num_steps:
        raise ValueError(f"LESA needs 1..{num_steps} stages on a {num_steps}-step grid, got {num_experts}")
    edges = [float(evals[0])]
    for j in range(1, num_experts):
        split = int(round(j * num_steps / num_experts))  # first step of stage j
        edges.append(0.5 * (float(evals[split - 1]) + float(evals[split])))
    return tuple(edges)


@dataclass(frozen=True, eq=False)
class LesaModel:
    """A LESA predictor's parameters (float32 tensors on the CPU) and how to apply them.

    history:       m, computed outputs per forecast.
    baseline:      the linear forecast the KAN corrects.
    kan:           the KAN shape shared by every expert (in = 2m + 1, out = 1).
    stage_upper:   [E] descending sigma edges (see the module docstring).
    experts:       E parameter dicts (``kan.KanShape.param_shapes``).
    feature_shift, feature_scale: float32 [2m+1] standardisation of phi.
    value_scale:   divides values in phi; out_scale: multiplies the KAN output.
    """

    history: int
    baseline: Baseline
    kan: KanShape
    stage_upper: tuple[float, ...]
    experts: tuple[dict[str, torch.Tensor], ...]
    feature_shift: torch.Tensor
    feature_scale: torch.Tensor
    value_scale: float
    out_scale: float

    def __post_init__(self) -> None:
        if not (isinstance(self.history, int) and 1 <= self.history <= 8):
            raise ValueError(f"LESA history must be an integer in 1..8, got {self.history!r}")
        if not isinstance(self.baseline, Baseline):
            raise ValueError(f"LESA baseline must be a Baseline, got {self.baseline!r}")
        if self.baseline is Baseline.LINEAR and self.history < 2:
            raise ValueError("the LINEAR baseline needs history >= 2 (two computed outputs)")
        nf = num_features(self.history)
        if self.kan.widths[0] != nf or self.kan.widths[-1] != 1:
            raise ValueError(f"LESA's KAN must map {nf} features to 1 output, got widths {self.kan.widths}")
        edges = tuple(float(e) for e in self.stage_upper)
        if not edges or any(b >= a for a, b in zip(edges, edges[1:])) or not all(np.isfinite(edges)):
            raise ValueError(f"stage_upper must be >= 1 finite, strictly decreasing sigmas, got {self.stage_upper}")
        object.__setattr__(self, "stage_upper", edges)
        if len(self.experts) != len(edges):
            raise ValueError(f"{len(edges)} stages need {len(edges)} experts, got {len(self.experts)}")
        want = self.kan.param_shapes()
        for e, params in enumerate(self.experts):
            if set(params) != set(want):
                raise ValueError(f"expert {e} has parameters {sorted(params)}, expected {sorted(want)}")
            for name, shape in want.items():
                if tuple(params[name].shape) != shape:
                    raise ValueError(f"expert {e} parameter {name} is {list(params[name].shape)}, expected {list(shape)}")
        for name in ("feature_shift", "feature_scale"):
            t = getattr(self, name)
            if tuple(t.shape) != (nf,):
                raise ValueError(f"{name} must be [{nf}], got {list(t.shape)}")
        if not torch.all(self.feature_scale > 0):
            raise ValueError("feature_scale must be > 0")
        for name in ("value_scale", "out_scale"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
            object.__setattr__(self, name, v)

    @classmethod
    def untrained(cls, sigmas: Sequence[float], history: int = 3, num_experts: int = 3, hidden: int = 8,
                  grid_size: int = 6, baseline: Baseline = Baseline.LINEAR, seed: int = 0) -> "LesaModel":
        """Fresh experts (output exactly 0, so the model equals its baseline) with identity standardisation."""
        nf = num_features(history)
        widths = (nf, hidden, 1) if hidden > 0 else (nf, 1)
        kan = KanShape(widths, grid_size=grid_size)
        gen = torch.Generator().manual_seed(int(seed))
        experts = tuple(init_params(kan, gen) for _ in range(num_experts))
        return cls(history, baseline, kan, stage_edges(sigmas, num_experts), experts,
                   torch.zeros(nf), torch.ones(nf), 1.0, 1.0)

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def expert_of(self, sigma: float) -> int:
        """The stage whose expert forecasts a target at ``sigma``."""
        return sum(1 for edge in self.stage_upper[1:] if sigma < edge)

    def parameter_count(self) -> int:
        return sum(int(t.numel()) for params in self.experts for t in params.values())

    # ------------------------------------------------------------------ the function
    def inputs(self, hist: torch.Tensor, hist_sigma: torch.Tensor, target_sigma: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(phi [..., 2m+1] standardised, baseline [...]) from hist [..., m] (oldest first, padded by repeating
        the oldest), hist_sigma [..., m] and target_sigma [...] (both broadcastable to hist's batch shape)."""
        m = self.history
        if hist.shape[-1] != m:
            raise ValueError(f"LESA needs the last {m} values per element, got {hist.shape[-1]}")
        batch = hist.shape[:-1]
        hist_sigma = hist_sigma.to(hist.dtype).expand(*batch, m)
        target_sigma = target_sigma.to(hist.dtype).expand(*batch)
        last = hist[..., -1]
        diffs = hist[..., 1:] - hist[..., :-1]  # [..., m-1]
        gaps = hist_sigma[..., :-1] - hist_sigma[..., 1:]  # [..., m-1], >= 0
        lead = hist_sigma[..., -1] - target_sigma  # [...], > 0
        scale = self.value_scale
        phi = torch.cat([(last / scale).unsqueeze(-1), diffs / scale, lead.unsqueeze(-1), gaps,
                         target_sigma.unsqueeze(-1)], dim=-1)
        shift = self.feature_shift.to(hist.device, hist.dtype)
        spread = self.feature_scale.to(hist.device, hist.dtype)
        phi = (phi - shift) / spread
        if self.baseline is Baseline.LINEAR:
            prev_gap = gaps[..., -1]
            ratio = torch.where(prev_gap > 0, lead / torch.where(prev_gap > 0, prev_gap, torch.ones_like(prev_gap)),
                                torch.zeros_like(lead))
            base = last + ratio * diffs[..., -1]
        else:
            base = last
        return phi, base

    def expert_forward(self, expert: int, phi: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None
                       ) -> torch.Tensor:
        """[N] KAN output (before out_scale) of one expert at phi [N, 2m+1]."""
        return kan_forward(phi, dict(params if params is not None else self.experts[expert]), self.kan)[:, 0]

    # ------------------------------------------------------------------ serialisation
    def to_arrays(self) -> dict[str, np.ndarray]:
        """float32 arrays for a PredictorFile's ``lesa`` dict (names in the module docstring)."""
        f32 = lambda v: np.ascontiguousarray(np.asarray(v, dtype=np.float32))  # noqa: E731
        out = {
            "config": f32([LESA_FORMAT, self.history, self.baseline.value, self.num_experts, self.kan.grid_size,
                           self.kan.grid_range, self.kan.num_layers, 0]),
            "widths": f32(self.kan.widths),
            "stage_upper": f32(self.stage_upper),
            "feature_shift": f32(self.feature_shift.detach().cpu().numpy()),
            "feature_scale": f32(self.feature_scale.detach().cpu().numpy()),
            "scales": f32([self.value_scale, self.out_scale]),
        }
        for e, params in enumerate(self.experts):
            for name, t in params.items():
                out[f"expert{e}.{name}"] = f32(t.detach().cpu().numpy())
        return {MODEL_PREFIX + k: v for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str = "the predictor file") -> "LesaModel":
        """Rebuild from ``to_arrays`` output. Raises PredictorFileError naming ``source``, the tensor, expected
        versus found, and the fix."""
        fix = "Retrain LESA (L2P Calibrate with LESA training) or pick another predictor file"

        def fail(problem: str) -> PredictorFileError:
            return PredictorFileError(f"L2P predictor file {source}: {problem}. {fix}")

        def get(name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
            key = MODEL_PREFIX + name
            if key not in arrays:
                raise fail(f"LESA tensor 'lesa.{key}' is missing")
            arr = np.asarray(arrays[key])
            if arr.dtype != np.float32:
                raise fail(f"LESA tensor 'lesa.{key}' must be float32, found {arr.dtype}")
            if shape is not None and tuple(arr.shape) != shape:
                raise fail(f"LESA tensor 'lesa.{key}' must be {list(shape)}, found {list(arr.shape)}")
            if not np.all(np.isfinite(arr)):
                raise fail(f"LESA tensor 'lesa.{key}' holds NaN or infinite values")
            return arr

        def integer(value: float, what: str, low: int, high: int) -> int:
            if value != round(value) or not low <= value <= high:
                raise fail(f"LESA config '{what}' must be an integer in {low}..{high}, found {value}")
            return int(value)

        config = get("config", (8,)).astype(np.float64)
        version = integer(config[0], "format", 0, 1 << 20)
        if version != LESA_FORMAT:
            raise fail(f"expected LESA format {LESA_FORMAT}, found {version} (made by another version of the pack)")
        history = integer(config[1], "history", 1, 8)
        code = integer(config[2], "baseline", 0, 16)
        try:
            baseline = Baseline(code)
        except ValueError:
            raise fail(f"unknown LESA baseline code {code}; known {[b.value for b in Baseline]}") from None
        num_experts = integer(config[3], "experts", 1, 64)
        grid_size = integer(config[4], "grid size", 1, 64)
        num_layers = integer(config[6], "layers", 1, 8)
        widths = get("widths", (num_layers + 1,))
        widths_int = tuple(integer(w, "widths", 1, 4096) for w in widths)
        nf = num_features(history)
        if widths_int[0] != nf or widths_int[-1] != 1:
            raise fail(f"LESA KAN widths must go from {nf} inputs (history {history}) to 1 output, found "
                       f"{list(widths_int)}")
        try:
            kan = KanShape(widths_int, grid_size=grid_size, grid_range=float(config[5]))
        except ValueError as exc:
            raise fail(str(exc)) from None
        experts = []
        for e in range(num_experts):
            experts.append({name: torch.from_numpy(get(f"expert{e}.{name}", shape).copy())
                            for name, shape in kan.param_shapes().items()})
        scales = get("scales", (2,))
        try:
            return cls(history, baseline, kan, tuple(get("stage_upper", (num_experts,)).tolist()), tuple(experts),
                       torch.from_numpy(get("feature_shift", (nf,)).copy()),
                       torch.from_numpy(get("feature_scale", (nf,)).copy()), float(scales[0]), float(scales[1]))
        except ValueError as exc:
            raise fail(str(exc)) from None


def lesa_from_file(pf: PredictorFile, source: str = "the predictor file") -> LesaModel:
    """The LESA model stored in a predictor file's ``lesa`` dict (PredictorFileError if absent or malformed)."""
    if not any(k.startswith(MODEL_PREFIX) for k in pf.lesa):
        raise PredictorFileError(
            f"L2P predictor file {source}: it holds no trained LESA model (no 'lesa.{MODEL_PREFIX}*' tensors). "
            f"Train LESA on its trajectory sample first, or choose another predictor")
    return LesaModel.from_arrays(pf.lesa, source)


def with_lesa(pf: PredictorFile, model: LesaModel, sample_arrays: Mapping[str, np.ndarray] | None = None
              ) -> PredictorFile:
    """A copy of ``pf`` whose ``lesa`` dict holds ``model`` (replacing any previous model) and, when given, the
    trajectory sample's arrays; every other field is kept."""
    lesa = {k: v for k, v in pf.lesa.items() if not k.startswith(MODEL_PREFIX)}
    if sample_arrays is not None:
        lesa.update(sample_arrays)
    lesa.update(model.to_arrays())
    return replace(pf, lesa=lesa)
