"""Helpers for the sampling tests: a dense-matrix operator and a small Gaussian problem.

(A module of its own, not conftest.py: test folders share one `conftest` module name.)
"""

from __future__ import annotations

import torch

from invfussion.degradations.base import Operator
from invfussion.sampling import GaussianDenoiser

IMAGE_SHAPE = (1, 4, 4)
N = 16


class DenseOperator(Operator):
    """``y = A x`` with one explicit matrix per example, ``A: (B, M, n)``; ``A⁺`` by float64 pinv."""

    def __init__(self, A: torch.Tensor, image_shape, noise_std: float = 0.0):
        super().__init__(image_shape, A.shape[1], torch.full((A.shape[0],), float(noise_std)))
        self.matrix = A.to(torch.float64)
        self.matrix_pinv = torch.linalg.pinv(self.matrix)

    def _apply(self, x):  # (B, K, C, H, W) -> (B, K, M)
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        return flat @ self.matrix.to(x.dtype).transpose(1, 2)

    def _pinv(self, y):  # (B, K, M) -> (B, K, C, H, W)
        flat = y @ self.matrix_pinv.to(y.dtype).transpose(1, 2)
        return flat.reshape(y.shape[0], y.shape[1], *self.image_shape)

    def _adjoint(self, y):  # (B, K, M) -> (B, K, C, H, W)
        return (y @ self.matrix.to(y.dtype)).reshape(y.shape[0], y.shape[1], *self.image_shape)

    def repeat(self, batch: int) -> DenseOperator:
        """The first example's matrix repeated ``batch`` times."""
        return DenseOperator(
            self.matrix[:1].expand(batch, -1, -1), self.image_shape, float(self.noise_std[0])
        )


def gaussian_problem(seed: int = 0, rows: int = 6, rank: int = 4, noise_std: float = 0.1):
    """A random prior on 1×4×4 images and a rank-deficient ``rows × 16`` matrix (one operator)."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(N, N, generator=g, dtype=torch.float64)
    cov = basis @ basis.T / N + 0.05 * torch.eye(N, dtype=torch.float64)
    mean = 0.3 * torch.randn(N, generator=g, dtype=torch.float64)
    A = torch.randn(rank, N, generator=g, dtype=torch.float64)
    A = torch.cat(
        [A, torch.randn(rows - rank, rank, generator=g, dtype=torch.float64) @ A]
    )  # dependent rows
    op = DenseOperator(A[None], IMAGE_SHAPE, noise_std)
    x = mean + torch.linalg.cholesky(cov) @ torch.randn(N, generator=g, dtype=torch.float64)
    y = op.measure(x.reshape(1, *IMAGE_SHAPE).float(), seed=seed)
    return GaussianDenoiser(mean, cov, IMAGE_SHAPE), mean, cov, op, y
