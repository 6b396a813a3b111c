"""A FLUX-architecture transformer written from the published architecture, pure torch.

Parameter names and shapes follow ComfyUI's `comfy.ldm.flux.model.Flux` (img_in, time_in, vector_in, txt_in,
double_blocks.N.*, single_blocks.N.*, final_layer.*), and the math is the same (sinusoidal timestep embedding of
1000 * sigma, 3-axis RoPE on interleaved pairs, RMS qk-norm, adaLN shift/scale/gate modulation, txt tokens before
img tokens in the joint attention), so one state dict runs in both. Only the transformer lives here: the class ->
context tokens / y part is `conditioning.ClassConditioner`, as a text encoder is outside FLUX.

Call convention (as ComfyUI's Flux.forward): x (B, C, H, W) latent, timestep (B,) = sigma in [0, 1],
context (B, T, context_in_dim), y (B, vec_in_dim) -> velocity (B, C, H, W), with x0 = x - sigma * v.
H and W must be even (no padding: the reference latents are always 8x8).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .config import FluxConfig

TIME_EMBED_DIM = 256  # FLUX embeds the timestep with 256 sinusoidal features
LN_EPS = 1e-6


def timestep_embedding(t: Tensor, dim: int = TIME_EMBED_DIM, max_period: float = 10_000.0, time_factor: float = 1000.0) -> Tensor:
    """(B,) sigma -> (B, dim) [cos | sin] features of time_factor * t (FLUX's convention)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (time_factor * t)[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rope_rotations(ids: Tensor, axes_dim: tuple[int, ...], theta: int) -> Tensor:
    """Token position ids (B, L, n_axes) -> rotation matrices (B, 1, L, head_dim/2, 2, 2), float32.

    Axis a with d = axes_dim[a] dims uses d/2 frequencies omega_k = theta^(-2k/d), k = 0..d/2-1 (FLUX's
    linspace(0, (d-2)/d) exponents); each pair (x[2i], x[2i+1]) of a head is rotated by angle pos * omega_i.
    """
    blocks = []
    for axis, dim in enumerate(axes_dim):
        exponent = torch.linspace(0, (dim - 2) / dim, steps=dim // 2, dtype=torch.float64, device=ids.device)
        omega = 1.0 / (theta ** exponent)
        angle = ids[..., axis].to(torch.float32)[..., None] * omega  # (B, L, dim/2), promoted to float64
        cos, sin = torch.cos(angle), torch.sin(angle)
        blocks.append(torch.stack([cos, -sin, sin, cos], dim=-1).reshape(*angle.shape, 2, 2))
    return torch.cat(blocks, dim=-3).to(torch.float32).unsqueeze(1)


def apply_rope(x: Tensor, rotations: Tensor) -> Tensor:
    """x (B, H, L, D) rotated pairwise by rotations (B, 1, L, D/2, 2, 2)."""
    pairs = x.to(rotations.dtype).reshape(*x.shape[:-1], -1, 1, 2)  # (B, H, L, D/2, 1, 2)
    rotated = rotations[..., 0] * pairs[..., 0] + rotations[..., 1] * pairs[..., 1]  # (B, H, L, D/2, 2)
    return rotated.reshape(x.shape).type_as(x)


def attention(q: Tensor, k: Tensor, v: Tensor, rotations: Tensor) -> Tensor:
    """q, k, v (B, H, L, D) -> (B, L, H*D), RoPE on q and k, softmax scale 1/sqrt(D)."""
    q, k = apply_rope(q, rotations), apply_rope(k, rotations)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim)
        self.out_layer = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.scale.shape, weight=self.scale.to(x.dtype), eps=LN_EPS)


class QKNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)


class SelfAttention(nn.Module):
    """Holds the projections of one stream; the attention itself is joint, run by the block."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, L, dim) -> q, k, v each (B, H, L, D), q and k RMS-normalised."""
        qkv = self.qkv(x)
        q, k, v = qkv.view(qkv.shape[0], qkv.shape[1], 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        return self.norm.query_norm(q).to(v), self.norm.key_norm(k).to(v), v


class Modulation(nn.Module):
    """vec (B, dim) -> one or two (shift, scale, gate) triples, each (B, 1, dim)."""

    def __init__(self, dim: int, double: bool):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec: Tensor) -> list[Tensor]:
        return list(self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, F.layer_norm(x, x.shape[-1:], eps=LN_EPS), 1 + scale)


def _mlp(hidden: int, ratio: float) -> nn.Sequential:
    inner = int(hidden * ratio)
    return nn.Sequential(nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden))


class DoubleStreamBlock(nn.Module):
    """Separate weights for img and txt tokens, one joint attention over [txt, img]."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.img_mod = Modulation(hidden, double=True)
        self.img_attn = SelfAttention(hidden, num_heads, qkv_bias)
        self.img_mlp = _mlp(hidden, mlp_ratio)
        self.txt_mod = Modulation(hidden, double=True)
        self.txt_attn = SelfAttention(hidden, num_heads, qkv_bias)
        self.txt_mlp = _mlp(hidden, mlp_ratio)

    def forward(self, img: Tensor, txt: Tensor, vec: Tensor, rotations: Tensor) -> tuple[Tensor, Tensor]:
        i_shift1, i_scale1, i_gate1, i_shift2, i_scale2, i_gate2 = self.img_mod(vec)
        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = self.txt_mod(vec)
        iq, ik, iv = self.img_attn.heads(modulate(img, i_shift1, i_scale1))
        tq, tk, tv = self.txt_attn.heads(modulate(txt, t_shift1, t_scale1))
        joint = attention(torch.cat((tq, iq), 2), torch.cat((tk, ik), 2), torch.cat((tv, iv), 2), rotations)
        txt_attn, img_attn = joint[:, : txt.shape[1]], joint[:, txt.shape[1]:]
        img = img + i_gate1 * self.img_attn.proj(img_attn)
        img = img + i_gate2 * self.img_mlp(modulate(img, i_shift2, i_scale2))
        txt = txt + t_gate1 * self.txt_attn.proj(txt_attn)
        txt = txt + t_gate2 * self.txt_mlp(modulate(txt, t_shift2, t_scale2))
        return img, txt


class SingleStreamBlock(nn.Module):
    """One weight set for all tokens; attention and MLP run in parallel from one fused input projection."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.hidden = hidden
        self.num_heads = num_heads
        self.mlp_hidden = int(hidden * mlp_ratio)
        self.linear1 = nn.Linear(hidden, 3 * hidden + self.mlp_hidden)  # qkv | mlp_in
        self.linear2 = nn.Linear(hidden + self.mlp_hidden, hidden)  # attn_out | mlp_out -> hidden
        self.norm = QKNorm(hidden // num_heads)
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x: Tensor, vec: Tensor, rotations: Tensor) -> Tensor:
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = torch.split(self.linear1(modulate(x, shift, scale)), [3 * self.hidden, self.mlp_hidden], dim=-1)
        q, k, v = qkv.view(qkv.shape[0], qkv.shape[1], 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.norm.query_norm(q).to(v), self.norm.key_norm(k).to(v)
        out = self.linear2(torch.cat((attention(q, k, v, rotations), F.gelu(mlp, approximate="tanh")), 2))
        return x + gate * out


class LastLayer(nn.Module):
    def __init__(self, hidden: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(hidden, out_features)
        # index 1 so the key is adaLN_modulation.1.* as in FLUX (index 0 is the parameter-free SiLU)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec)[:, None, :].chunk(2, dim=-1)
        return self.linear(modulate(x, shift, scale))


def patchify(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, C * 4), features ordered (c, ph, pw) like FLUX."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpatchify(tokens: Tensor, channels: int, height: int, width: int) -> Tensor:
    """Inverse of patchify: (B, H/2 * W/2, C * 4) -> (B, C, H, W)."""
    b = tokens.shape[0]
    x = tokens.reshape(b, height // 2, width // 2, channels, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, height, width)


def image_position_ids(batch: int, height_tokens: int, width_tokens: int, device: torch.device) -> Tensor:
    """(B, Ht*Wt, 3) ids (0, row, column) per image token; text tokens get all-zero ids."""
    rows = torch.arange(height_tokens, device=device, dtype=torch.float32)[:, None].expand(height_tokens, width_tokens)
    cols = torch.arange(width_tokens, device=device, dtype=torch.float32)[None, :].expand(height_tokens, width_tokens)
    ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, -1, 3)
    return ids.expand(batch, -1, -1)


class Flux(nn.Module):
    """The reference transformer. State dict keys and shapes equal ComfyUI's Flux(**config.comfy_kwargs())."""

    def __init__(self, config: FluxConfig):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.img_in = nn.Linear(config.token_dim, h)
        self.time_in = MLPEmbedder(TIME_EMBED_DIM, h)
        self.vector_in = MLPEmbedder(config.vec_in_dim, h)
        if config.guidance_embed:
            self.guidance_in = MLPEmbedder(TIME_EMBED_DIM, h)
        self.txt_in = nn.Linear(config.context_in_dim, h)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(h, config.num_heads, config.mlp_ratio, config.qkv_bias) for _ in range(config.depth)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(h, config.num_heads, config.mlp_ratio) for _ in range(config.depth_single_blocks)
        )
        self.final_layer = LastLayer(h, config.out_channels * config.patch_size**2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """adaLN-zero start: every block begins as the identity and the output as zero (stable early training)."""
        for block in self.double_blocks:
            for mod in (block.img_mod, block.txt_mod):
                nn.init.zeros_(mod.lin.weight)
                nn.init.zeros_(mod.lin.bias)
        for block in self.single_blocks:
            nn.init.zeros_(block.modulation.lin.weight)
            nn.init.zeros_(block.modulation.lin.bias)
        for layer in (self.final_layer.linear, self.final_layer.adaLN_modulation[1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, timestep: Tensor, context: Tensor, y: Tensor, guidance: Tensor | None = None) -> Tensor:
        b, c, height, width = x.shape
        if c != self.config.in_channels or height % 2 or width % 2:
            raise ValueError(
                f"Flux: expected x of shape (B, {self.config.in_channels}, even H, even W), found {tuple(x.shape)}"
            )
        img = self.img_in(patchify(x))  # (B, L_img, hidden)
        vec = self.time_in(timestep_embedding(timestep).to(img.dtype))
        if self.config.guidance_embed:
            if guidance is None:
                raise ValueError("Flux: this model embeds guidance; pass guidance (B,)")
            vec = vec + self.guidance_in(timestep_embedding(guidance).to(img.dtype))
        vec = vec + self.vector_in(y)
        txt = self.txt_in(context)  # (B, L_txt, hidden)
        ids = torch.cat(
            (torch.zeros(b, txt.shape[1], 3, device=x.device), image_position_ids(b, height // 2, width // 2, x.device)),
            dim=1,
        )
        rotations = rope_rotations(ids, self.config.axes_dim, self.config.theta)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, rotations)
        joint = torch.cat((txt, img), 1)
        for block in self.single_blocks:
            joint = block(joint, vec, rotations)
        out = self.final_layer(joint[:, txt.shape[1]:], vec)  # (B, L_img, C_out * 4)
        return unpatchify(out, self.config.out_channels, height, width)
