"""Super-resolution by average pooling: ``A x`` is the mean of each ``factor``×``factor`` block.

``A Aᵀ = factor⁻² I``, so ``A⁺ = factor² Aᵀ``: nearest-neighbour upsampling of ``y``, and
``Aᵀ`` is that upsampling divided by ``factor²``. The noise-aware inverse is
``A⁺_σ = Aᵀ(factor⁻² + λ)⁻¹ = A⁺/(1 + λ·factor²)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator
from .grouped import group_by
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
        _, H, W = image_shape
        factor = values["factor"]
        if factor is not None and (H % factor or W % factor):
            raise ValueError(
                f"sr: factor={factor} does not divide the image size {H}×{W}; use a common divisor of H and W."
            )
        fitting = [f for f in FACTORS if H % f == 0 and W % f == 0]
        if factor is None and not fitting:
            raise ValueError(
                f"sr needs H and W divisible by 2, 4 or 8 to draw a factor, got {H}×{W}; give factor=."
            )
        factors = [
            factor or fitting[int(torch.randint(0, len(fitting), (), generator=g))]
            for g in generators
        ]
        return group_by(factors, lambda f, pos: AveragePool(image_shape, f, len(pos)))
