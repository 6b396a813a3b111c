"""Configuration of the Qwen-Image reference model: the transformer's size and its class conditioner's size.

`QwenImageConfig` mirrors the keyword arguments of ComfyUI's `comfy.ldm.qwen_image.model.QwenImageTransformer2DModel`
(and the unet_config ComfyUI's model detection writes for it), so `QwenImageTransformer2DModel(**config.comfy_kwargs(),
operations=...)` builds ComfyUI's module at exactly our size and the shipped state dict loads with strict=True.
Qwen-Image reads no pooled vector, so its conditioner gives context tokens only (ConditionerConfig.vec_in_dim = 0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .config import ConditionerConfig


@dataclass(frozen=True)
class QwenImageConfig:
    """Sizes of the Qwen-Image-architecture transformer (names as ComfyUI's constructor arguments)."""

    patch_size: int = 2
    in_channels: int = 64  # features per image token: 16 latent channels x a 2x2 patch
    out_channels: int = 16  # latent channels (ComfyUI un-patchifies the output itself)
    num_layers: int = 3  # dual-stream (MMDiT) blocks
    attention_head_dim: int = 64
    num_attention_heads: int = 2  # hidden width = 2 x 64 = 128, as the FLUX reference
    joint_attention_dim: int = 64  # context token width (Qwen-Image: 3584, Qwen2.5-VL)
    axes_dims_rope: tuple[int, ...] = (8, 28, 28)  # RoPE dims per id axis (index, row, column); sums to head dim

    def __post_init__(self) -> None:
        if self.patch_size != 2:
            # ComfyUI's Qwen-Image patchifies with a hard-coded 2x2 view; any other size would not match it.
            raise ValueError(f"QwenImageConfig: patch_size must be 2 (ComfyUI assumes it), found {self.patch_size}")
        if self.in_channels != self.out_channels * self.patch_size ** 2:
            raise ValueError(
                f"QwenImageConfig: in_channels must be out_channels x patch_size^2 = "
                f"{self.out_channels * self.patch_size ** 2} (tokens are 2x2 latent patches), found {self.in_channels}"
            )
        for name in ("num_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"QwenImageConfig: {name} must be >= 1, found {getattr(self, name)}")
        if sum(self.axes_dims_rope) != self.attention_head_dim or any(d % 2 for d in self.axes_dims_rope):
            raise ValueError(
                f"QwenImageConfig: axes_dims_rope {self.axes_dims_rope} must be even numbers summing to "
                f"attention_head_dim {self.attention_head_dim}"
            )

    @property
    def latent_channels(self) -> int:
        return self.out_channels

    @property
    def hidden_size(self) -> int:
        return self.attention_head_dim * self.num_attention_heads

    def comfy_kwargs(self) -> dict:
        """Keyword arguments for ComfyUI's QwenImageTransformer2DModel(...) (axes as a list, as JSON has it)."""
        kwargs = asdict(self)
        kwargs["axes_dims_rope"] = list(self.axes_dims_rope)
        return kwargs


@dataclass(frozen=True)
class QwenReferenceConfig:
    """Everything needed to rebuild the Qwen-Image reference model from its JSON."""

    qwen_image: QwenImageConfig = field(default_factory=QwenImageConfig)
    conditioner: ConditionerConfig = field(default_factory=lambda: ConditionerConfig(vec_in_dim=0))

    def __post_init__(self) -> None:
        if self.conditioner.context_in_dim != self.qwen_image.joint_attention_dim or self.conditioner.vec_in_dim:
            raise ValueError(
                f"QwenReferenceConfig: the conditioner must give context tokens of width joint_attention_dim = "
                f"{self.qwen_image.joint_attention_dim} and no pooled vector (vec_in_dim 0), found context_in_dim "
                f"{self.conditioner.context_in_dim}, vec_in_dim {self.conditioner.vec_in_dim}"
            )

    def to_dict(self) -> dict:
        return {"qwen_image": self.qwen_image.comfy_kwargs(), "conditioner": asdict(self.conditioner)}

    @classmethod
    def from_dict(cls, data: dict) -> "QwenReferenceConfig":
        qwen = dict(data["qwen_image"])
        qwen["axes_dims_rope"] = tuple(qwen["axes_dims_rope"])
        return cls(qwen_image=QwenImageConfig(**qwen), conditioner=ConditionerConfig(**data["conditioner"]))
