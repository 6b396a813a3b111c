"""Class label -> what a text encoder would give FLUX: context tokens and a pooled vector y.

Kept outside the transformer on purpose: ComfyUI's Flux receives `context` (B, T, context_in_dim) and `y`
(B, vec_in_dim) from the conditioning, so the same transformer weights run there with these tensors passed in.
Class `num_classes` is the learned null class: condition dropout trains it, and it is the CFG uncond stream.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import ConditionerConfig


@dataclass(frozen=True)
class Conditioning:
    """One conditioning stream: context (B, T, context_in_dim), y (B, vec_in_dim), and its stream name
    ("cond" / "uncond"), so a forecasting model_fn can keep a history per stream."""

    context: Tensor
    y: Tensor
    stream: str

    def __post_init__(self) -> None:
        if self.context.ndim != 3 or self.y.ndim != 2 or self.context.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"Conditioning: expected context (B, T, D) and y (B, V) with one B, found "
                f"{tuple(self.context.shape)} and {tuple(self.y.shape)}"
            )


class ClassConditioner(nn.Module):
    """Learned embeddings: class (incl. null) -> context tokens and y (y is (B, 0) when vec_in_dim is 0)."""

    def __init__(self, config: ConditionerConfig):
        super().__init__()
        self.config = config
        self.context = nn.Embedding(config.num_classes + 1, config.context_tokens * config.context_in_dim)
        # Qwen-Image takes no pooled vector: no parameter at all then, so its state dict holds only the context.
        # (Both embeddings are built before either is re-initialised: the FLUX weights' seeded RNG order.)
        self.pooled = nn.Embedding(config.num_classes + 1, config.vec_in_dim) if config.vec_in_dim else None
        nn.init.normal_(self.context.weight, std=1.0)
        if self.pooled is not None:
            nn.init.normal_(self.pooled.weight, std=1.0)

    def forward(self, labels: Tensor, stream: str = "cond") -> Conditioning:
        """labels (B,) int64 in [0, num_classes] (num_classes = null) -> Conditioning."""
        if labels.dtype != torch.int64 or labels.ndim != 1:
            raise ValueError(f"ClassConditioner: expected labels (B,) int64, found {tuple(labels.shape)} {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() > self.config.num_classes):
            raise ValueError(f"ClassConditioner: labels must be in [0, {self.config.num_classes}], found "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        context = self.context(labels).reshape(labels.shape[0], self.config.context_tokens, self.config.context_in_dim)
        y = self.pooled(labels) if self.pooled is not None else context.new_zeros(labels.shape[0], 0)
        return Conditioning(context=context, y=y, stream=stream)

    def null(self, batch: int, stream: str = "uncond") -> Conditioning:
        return self(torch.full((batch,), self.config.null_class, dtype=torch.int64), stream=stream)
