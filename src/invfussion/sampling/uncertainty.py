"""Uncertainty from posterior samples (the principal components of the samples) and the images
that show a principal direction, whatever predicted it (sample PCA or NPPC)."""

from __future__ import annotations

import torch
from torch import Tensor


def principal_shift(mean: Tensor, directions: Tensor, stds: Tensor, k: int, scale: float = 2.0) -> tuple[Tensor, Tensor]:
    """``mean ∓ scale·σ_k·u_k``, each ``(B, C, H, W)``, from ``mean: (B, C, H, W)``,
    ``directions: (B, K, C, H, W)`` and ``stds: (B, K)``."""
    shift = scale * stds[:, k, None, None, None] * directions[:, k]
    return mean - shift, mean + shift


def sample_pca(samples: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top-``k`` principal components of ``S`` posterior samples per example.

    Args:
        samples: ``(B, S, C, H, W)`` with ``S ≥ 2``.
        k: number of components (at most ``S − 1`` are non-trivial; more raise ``ValueError``).

    Returns:
        mean ``(B, C, H, W)``, orthonormal directions ``(B, k, C, H, W)`` and the sample standard
        deviation along each direction ``(B, k)`` (unbiased, ``S − 1`` in the denominator).
    """
    b, s = samples.shape[:2]
    if samples.dim() != 5 or s < 2:
        raise ValueError(f"sample_pca needs (B, S, C, H, W) samples with S >= 2, got {tuple(samples.shape)}.")
    if not 1 <= k <= s - 1:
        raise ValueError(f"{s} samples give at most {s - 1} principal components, asked for {k}; draw more samples.")
    flat = samples.flatten(2).double()
    mean = flat.mean(1)
    _, singular, vh = torch.linalg.svd(flat - mean[:, None], full_matrices=False)
    stds = singular[:, :k] / (s - 1) ** 0.5
    directions = vh[:, :k].reshape(b, k, *samples.shape[2:])
    dtype = samples.dtype
    return mean.reshape(samples.shape[:1] + samples.shape[2:]).to(dtype), directions.to(dtype), stds.to(dtype)
