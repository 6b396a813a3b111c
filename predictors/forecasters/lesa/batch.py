"""LESA's forward pass over many element sequences at once, for training (``train.py``).

Layout: pair-major. A batch of B element sequences x [B, S] and the P (history, target) pairs of the training
schedules give features phi [P, B, 2m+1], baselines and truths [P, B]. Pairs are ordered by target step, so each
expert (picked by the target's sigma, monotone in the step) owns one contiguous range of pairs and its rows are a
view, not a copy; forecasts are the experts' outputs concatenated in that order. The pairs' schedule weights
[K, P] follow the same order. Memory per batch: about P * B * (2m+1) floats of features plus the KAN's
activations.
"""
from __future__ import annotations

import numpy as np
import torch

from ...engine.grid import StepGrid
from .model import LesaModel


class PairBatcher:
    """Features, baselines, truths and forecasts of every pair for batches of element sequences.

    Args:
        model: the LESA model whose ``inputs`` and experts are used (``model`` may be replaced later, e.g. once
               the standardisation is measured: the pairs do not depend on it).
        grid: the training grid; pairs: ``train.ForecastPairs``; device: where the batches are computed.
    """

    def __init__(self, model: LesaModel, grid: StepGrid, pairs, device: torch.device) -> None:
        self.model = model
        order = np.argsort(pairs.target, kind="stable")  # experts own contiguous ranges of pairs
        sig = torch.as_tensor(grid.array[:-1], dtype=torch.float32)
        self.hist_idx = torch.as_tensor(pairs.hist[order], device=device)  # [P, m]
        self.target_idx = torch.as_tensor(pairs.target[order], device=device)  # [P]
        self.hist_sigma = sig[torch.as_tensor(pairs.hist[order])].to(device).unsqueeze(1)  # [P, 1, m]
        self.target_sigma = sig[torch.as_tensor(pairs.target[order])].to(device).unsqueeze(1)  # [P, 1]
        self.weights = torch.as_tensor(pairs.weights[:, order], dtype=torch.float32, device=device)  # [K, P]
        experts = np.array([model.expert_of(float(s)) for s in grid.array[pairs.target[order]]])
        self.ranges = [(int(np.searchsorted(experts, e, "left")), int(np.searchsorted(experts, e, "right")))
                       for e in range(model.num_experts)]

    @property
    def num_pairs(self) -> int:
        return int(self.target_idx.numel())

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(phi [P, B, F], baseline [P, B], truth [P, B]) for sequences x [B, S] on the batcher's device."""
        columns = x.T  # [S, B]
        hist = columns[self.hist_idx].permute(0, 2, 1)  # [P, B, m]
        phi, base = self.model.inputs(hist, self.hist_sigma, self.target_sigma)
        return phi, base, columns[self.target_idx]

    def predict(self, phi: torch.Tensor, base: torch.Tensor, experts) -> torch.Tensor:
        """[P, B] forecasts: the baseline plus each expert's correction on its own pairs."""
        parts = []
        for expert, (start, stop) in enumerate(self.ranges):
            if stop > start:
                rows = phi[start:stop].reshape(-1, phi.shape[-1])  # a view: pairs are contiguous per expert
                parts.append(self.model.expert_forward(expert, rows, experts[expert]).reshape(stop - start, -1))
        return base + self.model.out_scale * torch.cat(parts, dim=0)

    def standardisation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        """(feature shift [F], feature scale [F], value_scale, out_scale) measured on sequences x [B, S]: values
        are divided by their RMS, features standardised over every (sequence, pair), and the KAN's output scaled
        to the RMS of the baseline's error."""
        model = self.model
        value_scale = float(torch.sqrt(torch.mean(x.double() ** 2)).clamp_min(1e-12))
        self.model = LesaModel(model.history, model.baseline, model.kan, model.stage_upper, model.experts,
                               model.feature_shift, model.feature_scale, value_scale, 1.0)
        try:
            phi, base, truth = self.raw(x)
        finally:
            self.model = model
        flat = phi.reshape(-1, phi.shape[-1]).double()
        shift = flat.mean(0)
        spread = flat.std(0)
        spread = torch.where(spread > 1e-8 * (1 + shift.abs()), spread, torch.ones_like(spread))
        out_scale = float(torch.sqrt(torch.mean((truth - base).double() ** 2)).clamp_min(1e-12))
        return shift.float().cpu(), spread.float().cpu(), value_scale, out_scale

    def errors(self, x: torch.Tensor, experts, chunk: int = 1024) -> tuple[float, float, float, float]:
        """(forecast error of the baseline, of LESA, final error of the baseline, of LESA), relative
        (||error|| / ||truth||), over sequences x [B, S]: every pair's forecast, and the dsigma-weighted error each
        schedule accumulates."""
        sums = np.zeros(6)
        weights = self.weights.double()
        with torch.no_grad():
            for start in range(0, x.shape[0], chunk):
                phi, base, truth = self.raw(x[start:start + chunk])
                pred = self.predict(phi, base, experts)
                for i, estimate in enumerate((base, pred)):
                    err = (estimate - truth).double()
                    sums[i] += float((err ** 2).sum())
                    sums[3 + i] += float(((weights @ err) ** 2).sum())
                sums[2] += float((truth.double() ** 2).sum())
                sums[5] += float(((weights @ truth.double()) ** 2).sum())
        return (float(np.sqrt(sums[0] / sums[2])), float(np.sqrt(sums[1] / sums[2])),
                float(np.sqrt(sums[3] / sums[5])), float(np.sqrt(sums[4] / sums[5])))
