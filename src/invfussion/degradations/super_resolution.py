"""Super-resolution: average pooling (``sr``) and antialiased bicubic down-sampling (``sr-bicubic``).

``sr``: ``A x`` is the mean of each ``factor``×``factor`` block. ``A Aᵀ = factor⁻² I``, so
``A⁺ = factor² Aᵀ``: nearest-neighbour upsampling of ``y``, and ``Aᵀ`` is that upsampling divided
by ``factor²``. The noise-aware inverse is ``A⁺_σ = Aᵀ(factor⁻² + λ)⁻¹ = A⁺/(1 + λ·factor²)``.

``sr-bicubic``: the literature's 4× super-resolution, ``A x = x ↓ bicubic``, exactly
``F.interpolate(x, scale_factor=1/factor, mode="bicubic", antialias=True, align_corners=False)``:
output pixel ``i`` averages input pixels ``p`` with weights ``cubic((p + ½ − f(i + ½))/f)`` (Keys'
cubic with ``a = −½``, support ``2f``), renormalised where the support leaves the image. That is
a separable matrix per axis, ``A = R ⊗ C`` (:func:`bicubic_matrix`), so ``Aᵀ`` and ``A⁺``
(through the per-axis SVDs) are exact (:class:`.separable.SeparableOperator`). DPS and DAPS use a
MATLAB-style ``imresize`` (the same cubic, ``a = −½``, but with symmetric extension at the border):
the two agree away from the outer ``2f`` pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator
from .grouped import group_by
from .separable import SeparableOperator
from .spec import Param

FACTORS = (2, 4, 8)


class AveragePool(Operator):
    """``A x = avg_pool(x, factor)`` per channel; ``M = C·(H/factor)·(W/factor)``."""

    def __init__(self, image_shape: tuple[int, int, int], factor: int, batch: int):
        C, H, W = image_shape
        super().__init__(image_shape, C * (H // factor) * (W // factor), torch.zeros(batch))
        self.factor = factor

    def _apply(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x.flatten(0, 1), self.factor).reshape(*x.shape[:2], -1)

    def _pinv(self, y: Tensor) -> Tensor:
        C, H, W = self.image_shape
        f = self.factor
        low = y.unflatten(2, (C, H // f, 1, W // f, 1))
        return low.expand(*low.shape[:4], f, -1, f).reshape(*y.shape[:2], C, H, W)

    def _adjoint(self, y: Tensor) -> Tensor:
        return self._pinv(y) / self.factor**2  # Aᵀ = A⁺ / factor²

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        return self._pinv(y) / (1 + lam * self.factor**2)[:, None, None, None, None]


def _cubic(t: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel (support ``|t| < 2``)."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def bicubic_matrix(size: int, factor: int) -> Tensor:
    """``(size // factor, size)`` float64: antialiased bicubic down-sampling of one axis by
    ``factor``, the matrix of ``F.interpolate(..., mode="bicubic", antialias=True)``.

    Row ``i`` holds ``cubic((p + ½ − c_i)/f)`` for the input pixels ``p`` with
    ``⌊c_i − 2f + ½⌋ ≤ p < ⌊c_i + 2f + ½⌋`` inside ``[0, size)``, ``c_i = f(i + ½)``, normalised to
    sum 1 (PyTorch's and Pillow's convention)."""
    f = float(factor)
    centres = f * (torch.arange(size // factor, dtype=torch.float64) + 0.5)[:, None]
    pixels = torch.arange(size, dtype=torch.float64)[None, :]
    low = torch.floor(centres - 2 * f + 0.5).clamp_min(0)
    high = torch.floor(centres + 2 * f + 0.5).clamp_max(size)
    weights = _cubic((pixels + 0.5 - centres) / f) * ((pixels >= low) & (pixels < high))
    return weights / weights.sum(1, keepdim=True)


def _factors(name: str, values, image_shape, generators) -> list[int]:
    """Per-example factors: the given ``factor`` (checked) or drawn from 2, 4, 8 where they fit."""
    _, H, W = image_shape
    factor = values["factor"]
    if factor is not None and (H % factor or W % factor):
        raise ValueError(
            f"{name}: factor={factor} does not divide the image size {H}×{W}; use a common divisor of H and W."
        )
    fitting = [f for f in FACTORS if H % f == 0 and W % f == 0]
    if factor is None and not fitting:
        raise ValueError(
            f"{name} needs H and W divisible by 2, 4 or 8 to draw a factor, got {H}×{W}; give factor=."
        )
    return [
        factor or fitting[int(torch.randint(0, len(fitting), (), generator=g))] for g in generators
    ]


class BicubicSuperResolution:
    """``sr-bicubic``: antialiased bicubic down-sampling (the literature's 4×: ``sr-bicubic:factor=4``).

    Parameters (left out: drawn per example):
        factor: dividing H and W; drawn uniformly among 2, 4, 8 where they divide the image.
    """

    params = (
        Param("factor", int, "down-sampling factor; drawn uniformly from {2, 4, 8} ∩ divisors of H, W", low=1),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        _, H, W = image_shape

        def part(f: int, pos: list[int]) -> Operator:
            rows, cols = bicubic_matrix(H, f), bicubic_matrix(W, f)
            n = len(pos)
            return SeparableOperator(image_shape, rows.expand(n, -1, -1), cols.expand(n, -1, -1))

        return group_by(_factors("sr-bicubic", values, image_shape, generators), part)


class SuperResolution:
    """``sr``: average-pool super-resolution.

    Parameters (left out: drawn per example):
        factor: block side, 1..min(H, W), dividing H and W; drawn uniformly among 2, 4, 8 where
            they divide the image.
    """

    params = (
        Param(
            "factor",
            int,
            "pooling factor; drawn uniformly from {2, 4, 8} ∩ divisors of H, W",
            low=1,
        ),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        factors = _factors("sr", values, image_shape, generators)
        return group_by(factors, lambda f, pos: AveragePool(image_shape, f, len(pos)))
