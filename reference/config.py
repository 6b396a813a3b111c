"""Configuration of the reference model: the transformer's size and the class conditioner's size.

`FluxConfig` mirrors the keyword arguments of ComfyUI's `comfy.ldm.flux.model.Flux` (its `FluxParams`) field by
field, so `Flux(**asdict(config), operations=...)` builds ComfyUI's module at exactly our size and our state dict
loads into it with strict=True. `ConditionerConfig` sizes the part that stays outside the transformer (class ->
context tokens and pooled vector y), i.e. what ComfyUI would get from a text encoder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FluxConfig:
    """Sizes of the FLUX-architecture transformer (names as in ComfyUI's FluxParams)."""

    in_channels: int = 16  # latent channels; tokens are 2x2 latent patches -> in_channels * 4 features
    out_channels: int = 16
    vec_in_dim: int = 32  # pooled vector y (FLUX: 768, CLIP-L pooled)
    context_in_dim: int = 64  # context token width (FLUX: 4096, T5-XXL)
    hidden_size: int = 128
    mlp_ratio: float = 4.0
    num_heads: int = 2
    depth: int = 2  # double-stream blocks
    depth_single_blocks: int = 2
    axes_dim: tuple[int, ...] = (8, 28, 28)  # RoPE dims per id axis (index, row, column); sums to the head dim
    theta: int = 10_000
    patch_size: int = 2
    qkv_bias: bool = True
    guidance_embed: bool = False

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(f"FluxConfig: hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        head_dim = self.hidden_size // self.num_heads
        if sum(self.axes_dim) != head_dim or any(d % 2 for d in self.axes_dim):
            raise ValueError(
                f"FluxConfig: axes_dim {self.axes_dim} must be even numbers summing to the head dim {head_dim}"
            )
        if self.patch_size != 2:
            # ComfyUI's Flux unpatchifies with a hard-coded 2x2 patch; any other size would not match it.
            raise ValueError(f"FluxConfig: patch_size must be 2 (ComfyUI's Flux assumes it), found {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def token_dim(self) -> int:
        """Features per image token: a 2x2 patch of the latent."""
        return self.in_channels * self.patch_size * self.patch_size

    def comfy_kwargs(self) -> dict:
        """Keyword arguments for ComfyUI's Flux(...) (axes_dim as a list, like its model detection writes it)."""
        kwargs = asdict(self)
        kwargs["axes_dim"] = list(self.axes_dim)
        return kwargs


@dataclass(frozen=True)
class ConditionerConfig:
    """Class label -> `context_tokens` context tokens of width context_in_dim, and a pooled vector y."""

    num_classes: int = 10
    context_tokens: int = 4
    context_in_dim: int = 64
    vec_in_dim: int = 32  # 0: no pooled vector (Qwen-Image reads only the context); y is then (B, 0)

    def __post_init__(self) -> None:
        for name in ("num_classes", "context_tokens", "context_in_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ConditionerConfig: {name} must be >= 1, found {getattr(self, name)}")
        if self.vec_in_dim < 0:
            raise ValueError(f"ConditionerConfig: vec_in_dim must be >= 0 (0 = no pooled vector), found {self.vec_in_dim}")

    @property
    def null_class(self) -> int:
        """Index of the learned 'no condition' class used for condition dropout and the CFG uncond stream."""
        return self.num_classes


@dataclass(frozen=True)
class ReferenceConfig:
    """Everything needed to rebuild the reference model from its JSON."""

    flux: FluxConfig = field(default_factory=FluxConfig)
    conditioner: ConditionerConfig = field(default_factory=ConditionerConfig)

    def __post_init__(self) -> None:
        if self.flux.context_in_dim != self.conditioner.context_in_dim or self.flux.vec_in_dim != self.conditioner.vec_in_dim:
            raise ValueError(
                "ReferenceConfig: conditioner widths (context_in_dim, vec_in_dim) = "
                f"({self.conditioner.context_in_dim}, {self.conditioner.vec_in_dim}) must equal the transformer's "
                f"({self.flux.context_in_dim}, {self.flux.vec_in_dim})"
            )

    def to_dict(self) -> dict:
        return {"flux": self.flux.comfy_kwargs(), "conditioner": asdict(self.conditioner)}

    @classmethod
    def from_dict(cls, data: dict) -> "ReferenceConfig":
        flux = dict(data["flux"])
        flux["axes_dim"] = tuple(flux["axes_dim"])
        return cls(flux=FluxConfig(**flux), conditioner=ConditionerConfig(**data["conditioner"]))
