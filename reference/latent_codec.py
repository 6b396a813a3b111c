"""A fixed linear latent codec: 8x8 pixel patches of a grayscale image <-> 16 latent channels (like FLUX's VAE:
8x downsampling, 16 channels).

encode: patch (64 pixels) minus the mean patch, projected on the top-16 PCA directions, divided by one global
        `scale` so the latent has unit variance on average (the role of FLUX's latent scale factor).
decode: the pseudo-inverse: latent * scale @ components + mean patch. components has orthonormal rows, so
        decode(encode(img)) is the orthogonal projection of img's patches on the PCA subspace (lossy, 64 -> 16).
Fitted once on the training images by `fit`; deterministic (SVD in float64, sign of each component fixed).
Shapes: image (B, 1, 8*h, 8*w) in [-1, 1]  <->  latent (B, 16, h, w).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PATCH = 8
LATENT_CHANNELS = 16


@dataclass(frozen=True)
class PatchPCACodec:
    components: Tensor  # (16, 64) float32, orthonormal rows, row k = k-th principal direction of an 8x8 patch
    mean: Tensor  # (64,) float32, mean patch
    scale: float  # latent = projection / scale

    def __post_init__(self) -> None:
        pixels = PATCH * PATCH
        if tuple(self.components.shape) != (LATENT_CHANNELS, pixels) or tuple(self.mean.shape) != (pixels,):
            raise ValueError(
                f"PatchPCACodec: expected components (16, {pixels}) and mean ({pixels},), found "
                f"{tuple(self.components.shape)} and {tuple(self.mean.shape)}"
            )
        if not self.scale > 0:
            raise ValueError(f"PatchPCACodec: scale must be > 0, found {self.scale}")

    @staticmethod
    def _patches(images: Tensor) -> Tensor:
        """(B, 1, 8h, 8w) -> (B, h, w, 64)."""
        b, c, height, width = images.shape
        if c != 1 or height % PATCH or width % PATCH:
            raise ValueError(f"PatchPCACodec: expected images (B, 1, 8h, 8w), found {tuple(images.shape)}")
        x = images.reshape(b, height // PATCH, PATCH, width // PATCH, PATCH).permute(0, 1, 3, 2, 4)
        return x.reshape(b, height // PATCH, width // PATCH, PATCH * PATCH)

    @classmethod
    def fit(cls, images: Tensor) -> "PatchPCACodec":
        """PCA of all 8x8 patches of images (B, 1, 8h, 8w)."""
        patches = cls._patches(images).reshape(-1, PATCH * PATCH).double()
        mean = patches.mean(0)
        centred = patches - mean
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        components = vh[:LATENT_CHANNELS]
        # fix each direction's sign (SVD leaves it arbitrary): largest-magnitude entry positive
        signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
        components = components * signs
        scale = float((centred @ components.T).std())
        return cls(components=components.float().contiguous(), mean=mean.float().contiguous(), scale=scale)

    def encode(self, images: Tensor) -> Tensor:
        """(B, 1, 8h, 8w) in [-1, 1] -> (B, 16, h, w)."""
        coded = (self._patches(images) - self.mean) @ self.components.T / self.scale
        return coded.permute(0, 3, 1, 2).contiguous()

    def decode(self, latents: Tensor) -> Tensor:
        """(B, 16, h, w) -> (B, 1, 8h, 8w), not clamped."""
        b, c, h, w = latents.shape
        if c != LATENT_CHANNELS:
            raise ValueError(f"PatchPCACodec.decode: expected 16 latent channels, found shape {tuple(latents.shape)}")
        patches = latents.permute(0, 2, 3, 1) * self.scale @ self.components + self.mean  # (B, h, w, 64)
        img = patches.reshape(b, h, w, PATCH, PATCH).permute(0, 1, 3, 2, 4)
        return img.reshape(b, 1, h * PATCH, w * PATCH)

    def tensors(self) -> dict[str, Tensor]:
        """For safetensors: the codec as named tensors (scale as a 0-d tensor)."""
        return {"codec.components": self.components.contiguous(), "codec.mean": self.mean.contiguous(),
                "codec.scale": torch.tensor(self.scale, dtype=torch.float32)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> "PatchPCACodec":
        return cls(components=tensors["codec.components"].float(), mean=tensors["codec.mean"].float(),
                   scale=float(tensors["codec.scale"]))
