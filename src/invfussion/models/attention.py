"""Attention of the HDiT backbone on an ``h × w`` token grid.

Cosine-similarity attention (queries and keys L2-normalised, a learned per-head scale, softmax
scale 1) with axial rotary position embeddings on half of each head, and three token-mixing
patterns:

- ``global``: every token attends to every token;
- ``neighborhood``: a ``kernel × kernel`` window around each query, shifted inward at the borders
  (NATTEN's convention), so every query sees exactly ``kernel²`` keys when the grid is that large;
- ``shifted-window``: non-overlapping ``window × window`` windows, offset by ``shift`` (Swin's
  cyclic shift with its wrap-around mask is the same as partial windows at the borders).

Keys may come in ``G`` groups that share the token grid (InvFussion's joint attention adds a second
group); a pattern restricts every group the same way and one softmax runs over all of them.

Backends: a pure-PyTorch path (dense scaled-dot-product attention with a boolean mask, cheap at
the token counts this project trains on a CPU) and, on CUDA, FlexAttention with a block mask built
from the same dense mask, so the two agree up to floating-point rounding
(:func:`compare_attention_backends` checks that on a GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_KINDS = ("global", "neighborhood", "shifted-window")


@dataclass(frozen=True)
class AttentionPattern:
    """Which keys a query may see. ``shift`` only matters for ``shifted-window``."""

    kind: str = "global"
    kernel_size: int = 7
    window_size: int = 8
    shift: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(
                f"unknown attention kind {self.kind!r}; choose one of {', '.join(ATTENTION_KINDS)}."
            )


def _neighborhood_axis(n: int, kernel: int) -> Tensor:
    """``(n, n)`` bool: key ``j`` is in the length-``kernel`` window of query ``i`` (clamped inward)."""
    k = min(kernel, n)
    i = torch.arange(n)
    start = (i - k // 2).clamp(0, n - k)
    j = torch.arange(n)
    return (j[None, :] >= start[:, None]) & (j[None, :] < start[:, None] + k)


def _window_axis(n: int, window: int, shift: int) -> Tensor:
    """``(n, n)`` bool: ``i`` and ``j`` fall in the same window of a partition offset by ``shift``."""
    group = torch.div(torch.arange(n) - shift, window, rounding_mode="floor")
    return group[:, None] == group[None, :]


@lru_cache(maxsize=64)
def _pattern_mask_cpu(pattern: AttentionPattern, h: int, w: int) -> Tensor:
    if pattern.kind == "neighborhood":
        my, mx = (
            _neighborhood_axis(h, pattern.kernel_size),
            _neighborhood_axis(w, pattern.kernel_size),
        )
    else:
        my = _window_axis(h, pattern.window_size, pattern.shift)
        mx = _window_axis(w, pattern.window_size, pattern.shift)
    # token index = row * w + col
    return (my[:, None, :, None] & mx[None, :, None, :]).reshape(h * w, h * w)


_DEVICE_MASKS: dict[tuple, Tensor] = {}


def pattern_mask(
    pattern: AttentionPattern, h: int, w: int, device: torch.device | str = "cpu"
) -> Tensor | None:
    """``(N, N)`` bool mask (``True`` = may attend), ``N = h·w``; ``None`` for global attention."""
    if pattern.kind == "global":
        return None
    key = (pattern, h, w, str(device))
    if key not in _DEVICE_MASKS:
        _DEVICE_MASKS[key] = _pattern_mask_cpu(pattern, h, w).to(device)
    return _DEVICE_MASKS[key]


def dense_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax attention with scale 1. ``q: (B, nh, N, dh)``, ``k, v: (B, nh, L, dh)``,
    ``mask: (N, L)`` bool or ``None``; returns ``(B, nh, N, dh)``."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)


_flex_cache: dict = {}


def _flex_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    n, length = mask.shape
    key = (mask.data_ptr(), n, length, str(q.device))
    if key not in _flex_cache:

        def mask_mod(b, h, q_idx, kv_idx):
            return mask[q_idx, kv_idx]

        _flex_cache[key] = create_block_mask(mask_mod, None, None, n, length, device=q.device)
    if "compiled" not in _flex_cache:
        _flex_cache["compiled"] = torch.compile(
            flex_attention
        )  # batch size becomes dynamic on change
    with torch.autocast(q.device.type, enabled=False):  # one compiled kernel per shape and dtype
        return _flex_cache["compiled"](q, k, v, block_mask=_flex_cache[key], scale=1.0)


def _use_flex(q: Tensor) -> bool:
    return q.is_cuda  # FlexAttention ships with every supported torch (>= 2.5)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pattern: AttentionPattern,
    grid: tuple[int, int],
    backend: str = "auto",
) -> Tensor:
    """Attention restricted by ``pattern`` on a ``grid = (h, w)`` of tokens.

    Args:
        q: ``(B, nh, N, dh)`` with ``N = h·w``.
        k, v: ``(B, nh, G·N, dh)``: ``G`` key groups, each laid out on the same grid.
        backend: ``"auto"`` (FlexAttention on CUDA, dense masked attention elsewhere),
            ``"dense"`` or ``"flex"``.
    Returns:
        ``(B, nh, N, dh)``.
    """
    h, w = grid
    n = h * w
    groups = k.shape[-2] // n
    mask = pattern_mask(pattern, h, w, q.device)
    if mask is None:
        return dense_attention(q, k, v, None)
    if groups > 1:
        mask = _group_mask(mask, groups)
    if backend == "flex" or (backend == "auto" and _use_flex(q)):
        return _flex_attention(q, k, v, mask)
    return dense_attention(q, k, v, mask)


def _group_mask(mask: Tensor, groups: int) -> Tensor:
    key = ("groups", mask.data_ptr(), groups)
    if key not in _DEVICE_MASKS:
        _DEVICE_MASKS[key] = mask.repeat(1, groups).contiguous()
    return _DEVICE_MASKS[key]


def scale_for_cosine_sim(t: Tensor, scale: Tensor, eps: float = 1e-6) -> Tensor:
    """``t · √scale / ‖t‖`` over the last axis, computed in float32. ``t: (B, nh, L, dh)``,
    ``scale: (nh,)``; so that ``⟨q', k'⟩ = scale · cos(q, k)``."""
    t32 = t.float()
    inv_norm = torch.rsqrt(t32.pow(2).sum(-1, keepdim=True) + eps)
    return (t32 * inv_norm * scale.float().sqrt()[:, None, None]).to(t.dtype)


def grid_positions(h: int, w: int, device: torch.device | str | None = None) -> Tensor:
    """``(h·w, 2)`` token centres ``(y, x)`` in ``[-1, 1]`` (the longer side spans the range)."""
    side = max(h, w)
    ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5 - h / 2) * (2 / side)
    xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5 - w / 2) * (2 / side)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(h * w, 2)


class AxialRoPE(nn.Module):
    """Angles of the rotary embedding of token positions ``(y, x)`` on the first half of each head.

    The rotated half holds ``d_head / 4`` rotation pairs: half for the ``y`` axis, half for ``x``,
    with frequencies log-spaced from π to 10π (positions in ``[-1, 1]``). Shared (``n_heads=None``):
    every head uses the same ``d_head / 8`` frequencies, endpoints included. Per head (the
    authors' HDiT): ``n_heads · d_head / 8`` frequencies log-spaced over ``[π, 10π)`` (the upper
    end excluded), dealt out to the heads in turn, so head ``h`` gets frequencies ``h, h + n_heads, …``.
    """

    def __init__(self, d_head: int, n_heads: int | None = None):
        super().__init__()
        if d_head % 8:
            raise ValueError(
                f"d_head={d_head} must be a multiple of 8 for axial RoPE; pick e.g. 32 or 64."
            )
        n_freq = d_head // 8
        lo, hi = math.log(math.pi), math.log(10 * math.pi)
        if n_heads is None:
            freqs = torch.exp(torch.linspace(lo, hi, n_freq))  # (n_freq,)
        else:
            freqs = torch.exp(torch.linspace(lo, hi, n_heads * n_freq + 1)[:-1])
            freqs = freqs.view(n_freq, n_heads).T.contiguous()  # (n_heads, n_freq)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """``pos: (N, 2)`` → ``(cos, sin)``, each ``(N, d_head / 4)`` (shared) or
        ``(n_heads, N, d_head / 4)`` (per head)."""
        freqs = self.freqs[..., None, :]  # (..., 1, n_freq)
        theta = torch.cat([pos[:, :1] * freqs, pos[:, 1:] * freqs], dim=-1)
        return theta.cos(), theta.sin()


def apply_rope(t: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first half of each head. ``t: (B, nh, L, dh)`` with ``L`` a multiple of ``N``
    (key groups share positions), ``cos, sin: ([nh,] N, dh / 4)``; computed in float32."""
    reps = t.shape[-2] // cos.shape[-2]
    if reps > 1:
        cos, sin = (c.repeat(*([1] * (c.dim() - 2)), reps, 1) for c in (cos, sin))
    half = cos.shape[-1]
    t32 = t.float()
    x1, x2, rest = t32[..., :half], t32[..., half : 2 * half], t32[..., 2 * half :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1).to(t.dtype)


def compare_attention_backends(
    device: str = "cuda", grid: tuple[int, int] = (32, 32), kernel_size: int = 7, groups: int = 2
) -> dict[str, float]:
    """Relative max-abs difference (max |a − b| / max |b|) between FlexAttention and the dense
    masked path, forward and input gradients, for neighborhood attention on ``device``.
    Run it on a GPU; float32 gives ~1e-5 (TF32-free kernels would give ~1e-6)."""
    gen = torch.Generator().manual_seed(0)
    n = grid[0] * grid[1]
    q, k, v = (
        torch.randn(2, 4, length, 64, generator=gen).to(device)
        for length in (n, groups * n, groups * n)
    )
    target = torch.randn(2, 4, n, 64, generator=gen).to(device)
    pattern = AttentionPattern("neighborhood", kernel_size=kernel_size)
    outs, grads = [], []
    for backend in ("flex", "dense"):
        qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
        out = attend(qq, kk, vv, pattern, grid, backend=backend)
        (out * target).sum().backward()
        outs.append(out.detach())
        grads.append([t.grad for t in (qq, kk, vv)])

    def rel(a: Tensor, b: Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max())

    return {"forward": rel(*outs), "grad": max(rel(a, b) for a, b in zip(*grads))}
