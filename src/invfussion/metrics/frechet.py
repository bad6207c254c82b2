"""Fréchet distance between two feature sets, and the feature-extractor protocol.

``FD = ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2})`` of the Gaussians fitted
to the two sets (unbiased covariances). The trace of the matrix square root is computed without
scipy from the eigenvalues of the symmetric PSD product ``Σ_a^{1/2} Σ_b Σ_a^{1/2}`` (which has the
eigenvalues of ``Σ_a Σ_b``), all in float64; round-off negatives are clipped to 0.
With the Inception-v3 pool features this is FID; with the shipped MNIST classifier's it is the
offline "FD" of the MNIST benchmark.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps images ``(N, C, H, W)`` in ``[-1, 1]`` to features ``(N, D)``; ``name`` names it."""

    name: str

    def __call__(self, images: Tensor) -> Tensor: ...


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features: (N, D)``, in float64."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(
            "Fréchet distance needs a feature matrix (N, D) with N ≥ 2, got "
            f"{tuple(features.shape)}; "
            "pass at least two images' features."
        )
    f = features.to(torch.float64)
    mean = f.mean(0)
    centred = f - mean
    return mean, centred.T @ centred / (f.shape[0] - 1)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance_from_statistics(
    mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor
) -> float:
    """FD between ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)`` (``(D,)``, ``(D, D)``)."""
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape:
        raise ValueError(
            f"feature dimensions differ ({tuple(mean_a.shape)} vs {tuple(mean_b.shape)}); "
            "compute both sets with the same feature extractor."
        )
    mean_a, cov_a, mean_b, cov_b = (t.to(torch.float64) for t in (mean_a, cov_a, mean_b, cov_b))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_sqrt = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0).sqrt().sum()
    value = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return float(value.clamp_min(0))


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """FD between the Gaussians fitted to ``features_a: (N_a, D)`` and ``features_b: (N_b, D)``."""
    return frechet_distance_from_statistics(
        *feature_statistics(features_a), *feature_statistics(features_b)
    )


def image_frechet_distance(
    images_a: Tensor, images_b: Tensor, extractor: FeatureExtractor
) -> float:
    """FD between two image sets ``(N, C, H, W)`` in ``[-1, 1]`` under ``extractor``'s features."""
    return frechet_distance(extractor(images_a), extractor(images_b))
