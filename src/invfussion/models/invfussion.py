"""InvFussion blocks: the Feature Degradation Layer and joint attention (NOTES §3, paper Eq. 7).

At a level whose tokens cover ``P × P`` pixels, a token's ``d`` features are read as ``P²`` sub-pixel
positions × ``K = d / (P²·C)`` images × ``C`` channels (sub-pixel position outermost, then image
index, then channel), so the whole token grid is a stack of ``K`` images of the data's shape. The
FDL pushes that stack through the example's own degradation:

    FDL(Z) = patch( A⁺( GELU( W · [y ; A z₁ ; … ; A z_K] + b ) ) ),

with ``W: R^{K+1} → R^K`` applied independently at every measurement coordinate, and a bias
``b ∈ R^K`` only where the model has one (``fdl_bias``: the authors' networks do, ours train
without). Joint attention
then lets every query attend, in one softmax, both to the usual keys and to extra keys built from
``[x̃ ; ỹ]`` with values from ``ỹ``, where ``ỹ = AdaRMSNorm(FDL(x))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AttentionPattern, attend
from .hdit import AdaRMSNorm, Degradation, SelfAttentionBlock, TokenGrid


def tokens_to_stack(z: Tensor, patch: int, channels: int) -> Tensor:
    """``(B, h, w, d)`` → ``(B, K, C, h·P, w·P)`` with ``K = d / (P²·C)``."""
    b, h, w, d = z.shape
    k = d // (patch * patch * channels)
    z = z.reshape(b, h, w, patch, patch, k, channels)
    return z.permute(0, 5, 6, 1, 3, 2, 4).reshape(b, k, channels, h * patch, w * patch)


def stack_to_tokens(s: Tensor, patch: int) -> Tensor:
    """Inverse of :func:`tokens_to_stack`: ``(B, K, C, H, W)`` → ``(B, H/P, W/P, P²·K·C)``."""
    b, k, c, hh, ww = s.shape
    h, w = hh // patch, ww // patch
    s = s.reshape(b, k, c, h, patch, w, patch)
    return s.permute(0, 3, 5, 4, 6, 1, 2).reshape(b, h, w, patch * patch * k * c)


def fdl_supported(width: int, patch: int, channels: int) -> bool:
    """Whether a level of this width can be read as a stack of whole images."""
    return width % (patch * patch * channels) == 0


class FeatureDegradationLayer(nn.Module):
    """``z: (B, h, w, d)``, ``op`` a batch of ``B`` operators, ``y: (B, M)`` → ``(B, h, w, d)``."""

    def __init__(self, width: int, patch: int, channels: int, bias: bool = False):
        super().__init__()
        if not fdl_supported(width, patch, channels):
            raise ValueError(
                f"width {width} is not divisible by patch² · channels = {patch * patch * channels}; "
                "use plain attention at this level."
            )
        self.patch = patch
        self.channels = channels
        self.n_images = width // (patch * patch * channels)
        self.mix = nn.Linear(self.n_images + 1, self.n_images, bias=bias)

    def mixed(self, y: Tensor, measured: Tensor) -> Tensor:
        """``GELU(W · [y ; A z₁ ; … ; A z_K] + b)`` at every measurement coordinate, with ``W`` split
        into its ``y`` column and its stack columns (no concatenation).
        ``y: (B, M)``, ``measured: (B, K, M)`` → ``(B, K, M)``."""
        weight = self.mix.weight.to(measured.dtype)
        mixed = torch.matmul(weight[:, 1:], measured) + weight[:, :1] * y[:, None]
        if self.mix.bias is not None:
            mixed = mixed + self.mix.bias.to(measured.dtype)[:, None]
        return F.gelu(mixed)

    def forward(self, z: Tensor, op, y: Tensor) -> Tensor:
        """Computed in float32 (float64 for float64 input) under any autocast, since A⁺ can amplify
        bf16 rounding; returns ``z``'s dtype. The operator runs ``A``, the mix and ``A⁺`` part by
        part on unpadded measurements (:meth:`~invfussion.degradations.Operator.round_trip`)."""
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=z.device.type, enabled=False):
            stack = tokens_to_stack(z.to(dtype), self.patch, self.channels)  # (B, K, C, H, W)
            return stack_to_tokens(op.round_trip(stack, y.to(dtype), self.mixed), self.patch).to(z.dtype)


class JointAttentionBlock(SelfAttentionBlock):
    """Self-attention whose keys/values are extended by the degradation branch.

    Extra keys ``W_k [x̃ ; ỹ]`` and values ``W_v ỹ`` (bias-free) get the same cosine normalisation,
    scale and RoPE as the ordinary keys; under a neighborhood/window pattern both key sets are
    restricted to the same neighborhood, and one softmax runs over both.
    """

    def __init__(
        self,
        width: int,
        d_head: int,
        cond_width: int,
        pattern: AttentionPattern,
        dropout: float,
        patch: int,
        channels: int,
        fdl_bias: bool = False,
    ):
        super().__init__(width, d_head, cond_width, pattern, dropout)
        self.fdl = FeatureDegradationLayer(width, patch, channels, fdl_bias)
        self.norm_joint = AdaRMSNorm(width, cond_width)
        self.joint_k = nn.Linear(2 * width, width, bias=False)
        self.joint_v = nn.Linear(width, width, bias=False)

    def forward(
        self, x: Tensor, cond: Tensor, grid: TokenGrid, degradation: Degradation | None = None
    ) -> Tensor:
        # The operator is used here only, outside the tensor-only part that can be compiled.
        features = None
        if degradation is not None and degradation.op is not None:
            features = self.fdl(x, degradation.op, degradation.y)
        return self.attention(x, cond, grid.h, grid.w, grid.cos, grid.sin, features)

    def attention(
        self, x: Tensor, cond: Tensor, h: int, w: int, cos: Tensor, sin: Tensor, features: Tensor | None = None
    ) -> Tensor:
        """``features: (B, h, w, d)`` the FDL output, ``None`` for the zero operator."""
        xn = self.norm(x, cond)
        width = x.shape[-1]
        # One matmul for everything computed from x̃: q, k, v and the x̃ half of the joint keys.
        w_x = torch.cat([self.qkv.weight, self.joint_k.weight[:, :width]])
        q, k, v, k_joint = F.linear(xn, w_x).chunk(4, dim=-1)
        if features is None:
            # the zero operator: FDL = A⁺(GELU(W·0)) = 0 and RMSNorm(0) = 0, so ỹ adds nothing
            v_joint = torch.zeros_like(v)
        else:
            y_feat = self.norm_joint(features, cond)
            w_y = torch.cat([self.joint_k.weight[:, width:], self.joint_v.weight])
            k_from_y, v_joint = F.linear(y_feat, w_y).chunk(2, dim=-1)
            k_joint = k_joint + k_from_y
        keys = torch.cat([self.heads(k), self.heads(k_joint)], dim=-2)
        values = torch.cat([self.heads(v), self.heads(v_joint)], dim=-2)
        o = attend(self.qk_embed(self.heads(q), cos, sin), self.qk_embed(keys, cos, sin), values, self.pattern, (h, w))
        return x + self.out(self.dropout(self.merge_heads(o, x)))
