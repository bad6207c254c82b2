"""Random matrix operators (paper App. A.2.3): Gaussian rows of unit norm, zero-padded.

Example ``b`` has ``m_b`` active rows (the rest of its ``M`` rows are zero and masked out).
The operator is the float32-stored matrix. Its pseudo-inverse is precomputed in float64 at
construction in the factored form ``A⁺ = Aᵀ (A Aᵀ)⁺``: only the small ``(M, M)`` matrix
``G = (A Aᵀ)⁺`` is stored next to ``A`` (in float32 and float64), which halves memory against a
dense ``A⁺`` and costs the same to apply.

The noise-aware inverse ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹`` needs ``(AAᵀ + λI)⁻¹`` for a ``λ`` known only
when it is applied (``noise_std`` is set after construction and may change), so the eigenvalues
``d`` and eigenvectors ``V`` of ``AAᵀ`` are computed in float64 at construction, next to ``G``:
``(AAᵀ + λI)⁻¹ = V diag(1/(d + λ)) Vᵀ`` (padded rows give ``d = 0`` and meet zero measurements).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .base import Operator
from .spec import Param

MAX_ROWS = 128


def gram_pinv(gram: Tensor, rows: Tensor) -> Tensor:
    """Pseudo-inverses of Gram matrices ``gram: (B, M, M)`` whose rows/columns outside ``rows``
    ``(B, M)`` are zero padding: a batched Cholesky inverse with the padding set to identity (and
    zeroed again after), falling back to an eigendecomposition if a Gram matrix is singular."""
    padding = torch.diag_embed((~rows).to(gram.dtype))
    factor, info = torch.linalg.cholesky_ex(gram + padding)
    if bool((info == 0).all()):
        inverse = torch.cholesky_inverse(factor)
    else:
        inverse = torch.linalg.pinv(gram, hermitian=True)
    keep = rows.to(gram.dtype)
    return inverse * keep[:, :, None] * keep[:, None, :]


class MatrixOperator(Operator):
    """``A_b x = matrix_b @ vec(x)``, zero-padded to ``M`` rows.

    Args:
        image_shape: ``(C, H, W)``.
        matrices: ``batch`` matrices ``(m_b, C·H·W)``, ``1 <= m_b <= M``, stored in float32 and
            consumed one at a time (an iterator keeps only one in memory besides the batch).
        batch: ``B``.
        measurement_size: ``M``.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        matrices: Iterable[Tensor],
        batch: int,
        measurement_size: int,
    ):
        B, M = batch, measurement_size
        n = image_shape[0] * image_shape[1] * image_shape[2]
        super().__init__(image_shape, M, torch.zeros(B))
        self.matrix32 = torch.zeros(B, M, n)
        self.rows = torch.zeros(B, M, dtype=torch.bool)
        gram = torch.zeros(B, M, M, dtype=torch.float64)
        for b, matrix in enumerate(matrices):
            m = matrix.shape[0]
            if matrix.shape[1] != n or not 1 <= m <= M:
                raise ValueError(
                    f"matrix operator {b} must have 1..{M} rows of length {n}, got {tuple(matrix.shape)}."
                )
            self.matrix32[b, :m] = matrix
            stored = self.matrix32[b, :m].to(
                torch.float64
            )  # the operator is the float32-stored matrix
            gram[b, :m, :m] = stored @ stored.mT
            self.rows[b, :m] = True
        if b != B - 1:
            raise ValueError(f"matrix operator expected {B} matrices, got {b + 1}.")
        # Finite with a positive diagonal iff every matrix is finite and has no all-zero row.
        if not bool(torch.isfinite(gram).all()) or not bool(
            (gram.diagonal(dim1=1, dim2=2) > 0)[self.rows].all()
        ):
            raise ValueError("matrix operators must be finite with no all-zero row.")
        self.gram64 = gram_pinv(gram, self.rows)
        self.gram32 = self.gram64.to(torch.float32)
        self.eigenvalues64, self.eigenvectors64 = torch.linalg.eigh(gram)  # (B, M), (B, M, M)
        self.eigenvalues32 = self.eigenvalues64.to(torch.float32)
        self.eigenvectors32 = self.eigenvectors64.to(torch.float32)
        self.matrix64: Tensor | None = None  # float64 copy of matrix32, made on first float64 call

    def _factors(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        if dtype != torch.float64:
            return self.matrix32, self.gram32
        if self.matrix64 is None:
            self.matrix64 = self.matrix32.to(torch.float64)
        return self.matrix64, self.gram64

    def _eigen(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``d: (B, M)`` and ``V: (B, M, M)`` with ``AAᵀ = V diag(d) Vᵀ``, in ``dtype``'s precision."""
        if dtype == torch.float64:
            return self.eigenvalues64, self.eigenvectors64
        return self.eigenvalues32, self.eigenvectors32

    def _apply(self, x: Tensor) -> Tensor:
        matrix, _ = self._factors(x.dtype)
        return x.flatten(2) @ matrix.mT  # (B, K, n) @ (B, n, M)

    def _pinv(self, y: Tensor) -> Tensor:
        _, gram = self._factors(y.dtype)
        return self._adjoint(y @ gram)  # A⁺ y = Aᵀ (G y), G symmetric

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        _, gram = self._factors(y.dtype)
        values, vectors = self._eigen(y.dtype)
        noisy = lam > 0
        inverse = 1 / (values + torch.where(noisy, lam, 1.0)[:, None])  # finite where λ = 0 too
        solved = (y @ vectors) * inverse[:, None] @ vectors.mT  # (AAᵀ + λI)⁻¹ y
        return self._adjoint(torch.where(noisy[:, None, None], solved, y @ gram))

    def _adjoint(self, y: Tensor) -> Tensor:
        matrix, _ = self._factors(y.dtype)
        return (y @ matrix).unflatten(2, self.image_shape)  # padded rows of A are zero

    def measurement_mask(self) -> Tensor:
        return self.rows


class RandomMatrix:
    """``matrix``: random Gaussian rows normalised to unit norm (paper App. A.2.3).

    Parameters (left out: drawn per example):
        rows: number of active rows, 1..C·H·W; drawn ~U{min_rows..max_rows}.
        min_rows: the fewest rows a draw gives (default 1), e.g. ``min_rows=64`` to train on
            measurement-rich matrices.
        max_rows: ``M``, rows after zero-padding, 1..C·H·W; 128 (capped at C·H·W) when left out,
            or ``rows`` when only ``rows`` is given.
    """

    params = (
        Param("rows", int, "active rows; drawn ~U{min_rows..max_rows}", low=1),
        Param("min_rows", int, "fewest active rows of a draw; default 1", low=1),
        Param("max_rows", int, "measurement length M (zero-padded rows); default 128", low=1),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> MatrixOperator:
        n = image_shape[0] * image_shape[1] * image_shape[2]
        rows, max_rows, min_rows = values["rows"], values["max_rows"], values["min_rows"]
        if rows is not None and min_rows is not None:
            raise ValueError("matrix: give rows (a fixed count) or min_rows (a range), not both.")
        min_rows = min_rows or 1
        for name, value in (("rows", rows), ("max_rows", max_rows), ("min_rows", min_rows)):
            if value is not None and value > n:
                raise ValueError(
                    f"matrix: {name}={value} exceeds the image dimension C·H·W={n}; use 1..{n}."
                )
        if max_rows is None:
            max_rows = rows if rows is not None else min(MAX_ROWS, n)
        if rows is not None and rows > max_rows:
            raise ValueError(
                f"matrix: rows={rows} exceeds max_rows={max_rows}; use rows <= max_rows."
            )
        if min_rows > max_rows:
            raise ValueError(
                f"matrix: min_rows={min_rows} exceeds max_rows={max_rows}; use min_rows <= max_rows."
            )

        def draw(g: torch.Generator) -> Tensor:
            active = (
                rows
                if rows is not None
                else int(torch.randint(min_rows, max_rows + 1, (), generator=g))
            )
            gauss = torch.randn(active, n, generator=g)
            return gauss / gauss.norm(dim=1, keepdim=True)

        return MatrixOperator(image_shape, map(draw, generators), len(generators), max_rows)
