"""The Hourglass Diffusion Transformer (HDiT) backbone, written from the paper's description.

Images are patchified into tokens ``(B, h, w, d)``; a stack of levels (each with its own width,
depth, feed-forward width and attention pattern) runs down with 2×2 token merges, through the
innermost (middle) level, and back up with token splits that lerp into the skip connection.
Every block is modulated by the mapping network's conditioning vector through AdaRMSNorm.

Token feature order everywhere is (sub-pixel row, sub-pixel column, channel): the layout the
InvFussion Feature Degradation Layer relies on to read tokens as image stacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import (
    AttentionPattern,
    AxialRoPE,
    apply_rope,
    attend,
    grid_positions,
    scale_for_cosine_sim,
)


@dataclass
class Degradation:
    """The operator batch and its measurement, handed to every InvFussion block.

    ``op=None`` is the zero operator (``y`` must then be ``None``): the FDL output is zero.
    ``y: (B, M)``.
    """

    op: object | None
    y: Tensor | None


def zero_init(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    return layer


def rms_norm(x: Tensor, scale: Tensor, eps: float = 1e-6) -> Tensor:
    """``x / rms(x) · scale`` over the last axis, computed in float32, returned in ``x``'s dtype."""
    x32 = x.float()
    out = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * scale.float()
    return out.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.scale)


class AdaRMSNorm(nn.Module):
    """RMSNorm whose scale is ``1 + Linear(cond)`` (zero-initialised, no shift).
    ``x: (B, ..., width)``, ``cond: (B, cond_width)``."""

    def __init__(self, width: int, cond_width: int):
        super().__init__()
        self.linear = zero_init(nn.Linear(cond_width, width, bias=False))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale = 1 + self.linear(cond)
        return rms_norm(x, scale.reshape(scale.shape[0], *([1] * (x.dim() - 2)), scale.shape[-1]))


class GEGLU(nn.Module):
    """``Linear(d → 2·d_ff)``, then ``a · GELU(b)``."""

    def __init__(self, width: int, d_ff: int):
        super().__init__()
        self.proj = nn.Linear(width, 2 * d_ff, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FourierFeatures(nn.Module):
    """``x: (B, n_in)`` → ``(B, n_out)``: ``[cos 2π xWᵀ, sin 2π xWᵀ]`` with fixed random ``W``."""

    def __init__(self, n_in: int, n_out: int, std: float = 1.0, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(n_out // 2, n_in, generator=gen) * std)

    def forward(self, x: Tensor) -> Tensor:
        f = 2 * math.pi * x.float() @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


class FeedForwardBlock(nn.Module):
    """Residual ``x + Linear₀(dropout(GEGLU(AdaRMSNorm(x))))``."""

    def __init__(self, width: int, d_ff: int, cond_width: int, dropout: float):
        super().__init__()
        self.norm = AdaRMSNorm(width, cond_width)
        self.up = GEGLU(width, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.down = zero_init(nn.Linear(d_ff, width, bias=False))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        return x + self.down(self.dropout(self.up(self.norm(x, cond))))


@dataclass
class TokenGrid:
    """Per-level geometry handed to every block: token grid size and the RoPE cosines and sines,
    ``(h·w, d_head/4)`` or, with per-head frequencies, ``(n_heads, h·w, d_head/4)``."""

    h: int
    w: int
    cos: Tensor
    sin: Tensor


class SelfAttentionBlock(nn.Module):
    """Residual cosine-similarity self-attention with axial RoPE. ``x: (B, h, w, d)``."""

    def __init__(
        self, width: int, d_head: int, cond_width: int, pattern: AttentionPattern, dropout: float
    ):
        super().__init__()
        if width % d_head:
            raise ValueError(
                f"width {width} is not a multiple of d_head {d_head}; change one of them."
            )
        self.n_heads = width // d_head
        self.d_head = d_head
        self.pattern = pattern
        self.norm = AdaRMSNorm(width, cond_width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.scale = nn.Parameter(torch.full((self.n_heads,), 10.0))
        self.dropout = nn.Dropout(dropout)
        self.out = zero_init(nn.Linear(width, width, bias=False))

    def heads(self, t: Tensor) -> Tensor:
        """``(B, h, w, d)`` → ``(B, nh, h·w, dh)``."""
        b, h, w, _ = t.shape
        return t.reshape(b, h * w, self.n_heads, self.d_head).transpose(1, 2)

    def qk_embed(self, t: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Cosine normalisation with the learned scale, then RoPE. ``t: (B, nh, L, dh)``."""
        return apply_rope(scale_for_cosine_sim(t, self.scale), cos, sin)

    def merge_heads(self, o: Tensor, x: Tensor) -> Tensor:
        return o.transpose(1, 2).reshape(x.shape)

    def forward(
        self, x: Tensor, cond: Tensor, grid: TokenGrid, degradation: Degradation | None = None
    ) -> Tensor:
        return self.attention(x, cond, grid.h, grid.w, grid.cos, grid.sin)

    def attention(self, x: Tensor, cond: Tensor, h: int, w: int, cos: Tensor, sin: Tensor) -> Tensor:
        """The block on tensors alone (what ``models.compile_denoiser`` compiles).
        ``x: (B, h, w, d)``, ``cond: (B, cond_width)``, ``cos, sin: ([n_heads,] h·w, d_head/4)``."""
        xn = self.norm(x, cond)
        q, k, v = self.qkv(xn).chunk(3, dim=-1)
        q, k = self.qk_embed(self.heads(q), cos, sin), self.qk_embed(self.heads(k), cos, sin)
        o = attend(q, k, self.heads(v), self.pattern, (h, w))
        return x + self.out(self.dropout(self.merge_heads(o, x)))


class TransformerLayer(nn.Module):
    def __init__(self, attention: nn.Module, ff: FeedForwardBlock):
        super().__init__()
        self.attention = attention
        self.ff = ff

    def forward(
        self, x: Tensor, cond: Tensor, grid: TokenGrid, degradation: Degradation | None = None
    ) -> Tensor:
        return self.ff(self.attention(x, cond, grid, degradation), cond)


class Level(nn.Module):
    def __init__(self, layers: list[TransformerLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(
        self, x: Tensor, cond: Tensor, grid: TokenGrid, degradation: Degradation | None = None
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, cond, grid, degradation)
        return x


def patchify(x: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` → ``(B, H/P, W/P, P·P·C)``, features ordered (row, col, channel)."""
    b, c, hh, ww = x.shape
    x = x.reshape(b, c, hh // patch, patch, ww // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, hh // patch, ww // patch, patch * patch * c)


def unpatchify(t: Tensor, patch: int) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, h, w, P·P·C)`` → ``(B, C, h·P, w·P)``."""
    b, h, w, d = t.shape
    c = d // (patch * patch)
    t = t.reshape(b, h, w, patch, patch, c)
    return t.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h * patch, w * patch)


class TokenMerge(nn.Module):
    """2×2 tokens → one: ``(B, h, w, d_in)`` → ``(B, h/2, w/2, d_out)``."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(4 * d_in, d_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, d = x.shape
        x = (
            x.reshape(b, h // 2, 2, w // 2, 2, d)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(b, h // 2, w // 2, 4 * d)
        )
        return self.proj(x)


class TokenSplit(nn.Module):
    """One token → 2×2, lerped into the skip: ``skip + fac·(split(x) − skip)``, ``fac`` init 0.5."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, 4 * d_out, bias=False)
        self.fac = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        d = skip.shape[-1]
        x = (
            self.proj(x)
            .reshape(b, h, w, 2, 2, d)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(b, 2 * h, 2 * w, d)
        )
        return torch.lerp(skip, x, self.fac.to(x.dtype))


class MappingNetwork(nn.Module):
    """Conditioning vector from noise level, class, augmentation label and measurement noise.

    ``c_noise: (B,)``, ``class_labels: (B,)`` int in ``[0, num_classes]`` (``num_classes`` is the
    null class used for classifier-free guidance), ``aug_labels: (B, augment_dim)`` embedded by a
    linear map (``augment_embedding="linear"``: no augmentation adds nothing) or by a linear map of
    their Fourier features (``"fourier"``, the authors' HDiT: no augmentation still adds the
    embedding of the zero label),
    ``measurement_noise: (B,)`` σ_y (with ``noise_conditioning``; embedded as Fourier features of
    ``ln(σ_y + 10⁻³) / 4``, so σ_y = 0 is a value like any other). Returns ``(B, width)``.
    """

    def __init__(
        self, width: int, depth: int, d_ff: int, num_classes: int, augment_dim: int, dropout: float,
        noise_conditioning: bool = False, augment_embedding: str = "linear",
    ):
        super().__init__()
        self.num_classes = num_classes
        self.augment_dim = augment_dim
        self.noise_features = FourierFeatures(1, width)
        self.noise_proj = nn.Linear(width, width, bias=False)
        self.measurement_features = FourierFeatures(1, width, seed=2) if noise_conditioning else None
        self.measurement_proj = nn.Linear(width, width, bias=False) if noise_conditioning else None
        self.class_embed = nn.Embedding(num_classes + 1, width) if num_classes else None
        if augment_embedding not in ("linear", "fourier"):
            raise ValueError(f"unknown augment_embedding {augment_embedding!r}; choose linear or fourier.")
        fourier = augment_embedding == "fourier" and augment_dim > 0
        self.aug_features = FourierFeatures(augment_dim, width, seed=3) if fourier else None
        aug_in = width if fourier else augment_dim
        self.aug_proj = nn.Linear(aug_in, width, bias=False) if augment_dim else None
        self.in_norm = RMSNorm(width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                RMSNorm(width),
                GEGLU(width, d_ff),
                nn.Dropout(dropout),
                zero_init(nn.Linear(d_ff, width, bias=False)),
            )
            for _ in range(depth)
        )
        self.out_norm = RMSNorm(width)

    def forward(
        self, c_noise: Tensor, class_labels: Tensor | None, aug_labels: Tensor | None,
        measurement_noise: Tensor | None = None,
    ) -> Tensor:
        dtype = self.noise_proj.weight.dtype
        emb = self.noise_proj(self.noise_features(c_noise[:, None]).to(dtype))
        if self.class_embed is not None:
            if class_labels is None:
                class_labels = torch.full_like(c_noise, self.num_classes, dtype=torch.long)
            emb = emb + self.class_embed(class_labels)
        if self.aug_proj is not None:
            if aug_labels is None:
                aug_labels = c_noise.new_zeros(c_noise.shape[0], self.augment_dim)
            if self.aug_features is not None:
                aug_labels = self.aug_features(aug_labels)
            emb = emb + self.aug_proj(aug_labels.to(dtype))
        if self.measurement_proj is not None:
            if measurement_noise is None:
                measurement_noise = torch.zeros_like(c_noise)
            level = (measurement_noise.float() + 1e-3).log()[:, None] / 4
            emb = emb + self.measurement_proj(self.measurement_features(level).to(dtype))
        x = self.in_norm(emb)
        for block in self.blocks:
            x = x + block(x)
        return self.out_norm(x)


class HDiT(nn.Module):
    """The backbone ``F``: ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``.

    ``layer_factory(level, width, d_ff, pattern, index)`` builds the ``index``-th transformer layer
    of a level's stack, so the InvFussion variant swaps in joint-attention blocks without a second
    code path. ``degradation`` (a :class:`Degradation` or ``None``)
    reaches every block; plain blocks ignore it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        patch_size: int,
        widths: list[int],
        depths: list[int],
        d_ffs: list[int],
        d_head: int,
        patterns: list[AttentionPattern],
        mapping: MappingNetwork,
        layer_factory,
        rope_per_head: bool = False,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.mapping = mapping
        self.patch_in = nn.Linear(patch_size * patch_size * in_channels, widths[0], bias=False)
        n = len(widths)

        def level(i: int) -> Level:
            return Level(
                [layer_factory(i, widths[i], d_ffs[i], patterns[i], j) for j in range(depths[i])]
            )

        self.down_levels = nn.ModuleList(level(i) for i in range(n - 1))
        self.mid_level = level(n - 1)
        self.up_levels = nn.ModuleList(level(i) for i in range(n - 1))
        self.merges = nn.ModuleList(TokenMerge(widths[i], widths[i + 1]) for i in range(n - 1))
        self.splits = nn.ModuleList(TokenSplit(widths[i + 1], widths[i]) for i in range(n - 1))
        self.out_norm = RMSNorm(widths[0])
        self.patch_out = zero_init(
            nn.Linear(widths[0], patch_size * patch_size * out_channels, bias=False)
        )
        # One RoPE per level: with per-head frequencies the number of heads sets them.
        self.ropes = nn.ModuleList(
            AxialRoPE(d_head, w // d_head if rope_per_head else None) for w in widths
        )

    def output_weight_by_channel(self) -> Tensor:
        """``patch_out.weight`` viewed as ``(P·P, out_channels, width)``: output features are
        ordered (row, col, channel), see :func:`unpatchify`."""
        weight = self.patch_out.weight
        return weight.view(self.patch_size**2, -1, weight.shape[1])

    def _grid(self, level: int, h: int, w: int, device: torch.device) -> TokenGrid:
        cos, sin = self.ropes[level](grid_positions(h, w, device))
        return TokenGrid(h, w, cos, sin)

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        class_labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
        degradation: Degradation | None = None,
        measurement_noise: Tensor | None = None,
    ) -> Tensor:
        cond = self.mapping(c_noise, class_labels, aug_labels, measurement_noise)
        tokens = self.patch_in(patchify(x, self.patch_size).to(self.patch_in.weight.dtype))
        h, w = tokens.shape[1:3]
        skips = []
        for i, (down, merge) in enumerate(zip(self.down_levels, self.merges)):
            grid = self._grid(i, h >> i, w >> i, x.device)
            tokens = down(tokens, cond, grid, degradation)
            skips.append((tokens, grid))
            tokens = merge(tokens)
        n = len(self.down_levels)
        tokens = self.mid_level(tokens, cond, self._grid(n, h >> n, w >> n, x.device), degradation)
        for up, split, (skip, grid) in reversed(list(zip(self.up_levels, self.splits, skips))):
            tokens = up(split(tokens, skip), cond, grid, degradation)
        return unpatchify(self.patch_out(self.out_norm(tokens)), self.patch_size)
