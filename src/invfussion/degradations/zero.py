"""The zero operator ``A = 0`` (unconditional generation): ``M = 1``, ``A x = 0``, ``A⁺ y = 0``
(and ``A⁺_σ y = 0``).

Outputs are built from the inputs times zero so that autograd graphs stay connected.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Operator
from .spec import Param


class ZeroOperator(Operator):
    """``A x = 0`` with one (padding) measurement coordinate; ``measurement_mask`` is all false."""

    def __init__(self, image_shape: tuple[int, int, int], batch: int):
        super().__init__(image_shape, 1, torch.zeros(batch))

    def _apply(self, x: Tensor) -> Tensor:
        return x.flatten(2)[..., :1] * 0

    def _pinv(self, y: Tensor) -> Tensor:
        return (
            (y[..., :1] * 0)[..., None, None].expand(*y.shape[:2], *self.image_shape).contiguous()
        )

    _adjoint = _pinv  # Aᵀ = A⁺ = 0

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        return self._pinv(y)  # A⁺_σ = Aᵀ(0 + λI)⁻¹ = 0

    def measurement_mask(self) -> Tensor:
        return torch.zeros(self.batch_size, 1, dtype=torch.bool, device=self.device)


class Zero:
    """``none``: the zero operator; no parameters (``noise`` is accepted and has no effect)."""

    params: tuple[Param, ...] = ()

    @classmethod
    def build(cls, values, image_shape, generators) -> ZeroOperator:
        return ZeroOperator(image_shape, len(generators))
