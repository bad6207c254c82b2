"""Random matrix operators (paper App. A.2.3): Gaussian rows of unit norm, zero-padded.

Example ``b`` has ``m_b`` active rows (the rest of its ``M`` rows are zero and masked out).
The pseudo-inverse is precomputed in float64 at construction in the factored form
``A⁺ = Aᵀ (A Aᵀ)⁺``: only the small ``(M, M)`` matrix ``G = (A Aᵀ)⁺`` is stored next to ``A``,
which halves memory and costs the same as a dense ``A⁺`` product.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Operator
from .spec import Param

MAX_ROWS = 128


def gram_pinv(gram: Tensor) -> Tensor:
    """``(..., m, m)`` symmetric PSD → its pseudo-inverse: a Cholesky inverse when the Gram
    matrix is positive definite (Gaussian rows, the usual case), else an eigendecomposition."""
    factor, info = torch.linalg.cholesky_ex(gram)
    if bool((info == 0).all()):
        return torch.cholesky_inverse(factor)
    return torch.linalg.pinv(gram, hermitian=True)


class MatrixOperator(Operator):
    """``A_b x = matrix_b @ vec(x)``, zero-padded to ``M`` rows.

    Args:
        image_shape: ``(C, H, W)``.
        matrices: one ``(m_b, C·H·W)`` float64 matrix per example, ``1 <= m_b <= M``.
        measurement_size: ``M``.
    """

    def __init__(self, image_shape: tuple[int, int, int], matrices: list[Tensor], measurement_size: int):
        B, M = len(matrices), measurement_size
        n = image_shape[0] * image_shape[1] * image_shape[2]
        super().__init__(image_shape, M, torch.zeros(B))
        self.matrix32 = torch.zeros(B, M, n)
        self.gram32 = torch.zeros(B, M, M)
        self.rows = torch.zeros(B, M, dtype=torch.bool)
        for b, matrix in enumerate(matrices):  # one example at a time: float64 copies stay small
            m = matrix.shape[0]
            if matrix.shape[1] != n or not 1 <= m <= M:
                raise ValueError(f"matrix operator {b} must have 1..{M} rows of length {n}, got {tuple(matrix.shape)}.")
            gram = matrix @ matrix.mT  # finite with a positive diagonal iff the matrix is finite without zero rows
            if not bool(torch.isfinite(gram).all()) or not bool((gram.diagonal() > 0).all()):
                raise ValueError(f"matrix operator {b} must be finite with no all-zero row.")
            self.matrix32[b, :m] = matrix
            self.gram32[b, :m, :m] = gram_pinv(gram)
            self.rows[b, :m] = True
        # Float64 inputs use the float32-stored matrix upcast, with its Gram pseudo-inverse
        # computed on first use (keeping float64 copies from the start would double the memory).
        self.matrix64: Tensor | None = None
        self.gram64: Tensor | None = None

    def _factors(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if dtype != torch.float64:
            return self.matrix32, self.gram32
        if self.matrix64 is None:
            self.matrix64 = self.matrix32.to(torch.float64)
            self.gram64 = gram_pinv(self.matrix64 @ self.matrix64.mT)
        return self.matrix64, self.gram64

    def _apply(self, x: Tensor) -> Tensor:
        matrix, _ = self._factors(x.dtype)
        return x.flatten(2) @ matrix.mT  # (B, K, n) @ (B, n, M)

    def _pinv(self, y: Tensor) -> Tensor:
        matrix, gram = self._factors(y.dtype)
        return ((y @ gram) @ matrix).unflatten(2, self.image_shape)  # G symmetric

    def measurement_mask(self) -> Tensor:
        return self.rows


class RandomMatrix:
    """``matrix``: random Gaussian rows normalised to unit norm (paper App. A.2.3).

    Parameters (left out: drawn per example):
        rows: number of active rows, 1..C·H·W; drawn ~U{1..max_rows}.
        max_rows: ``M``, rows after zero-padding, 1..C·H·W; 128 (capped at C·H·W) when left out,
            or ``rows`` when only ``rows`` is given.
    """

    params = (
        Param("rows", int, "active rows; drawn ~U{1..max_rows}", low=1),
        Param("max_rows", int, "measurement length M (zero-padded rows); default 128", low=1),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> MatrixOperator:
        n = image_shape[0] * image_shape[1] * image_shape[2]
        rows, max_rows = values["rows"], values["max_rows"]
        for name, value in (("rows", rows), ("max_rows", max_rows)):
            if value is not None and value > n:
                raise ValueError(f"matrix: {name}={value} exceeds the image dimension C·H·W={n}; use 1..{n}.")
        if max_rows is None:
            max_rows = rows if rows is not None else min(MAX_ROWS, n)
        if rows is not None and rows > max_rows:
            raise ValueError(f"matrix: rows={rows} exceeds max_rows={max_rows}; use rows <= max_rows.")
        matrices = []
        for g in generators:
            active = rows if rows is not None else int(torch.randint(1, max_rows + 1, (), generator=g))
            gauss = torch.randn(active, n, generator=g, dtype=torch.float64)
            matrices.append(gauss / gauss.norm(dim=1, keepdim=True))
        return MatrixOperator(image_shape, matrices, max_rows)
