"""Metrics (paper Sec. 4): PSNR, Fréchet distance (offline MNIST features or Inception FID),
consistency ``‖y − A x̂‖²``, C-FD on projected samples, and cost (seconds per image, NFE).

- :func:`psnr`: per image on ``[0, 255]``; identical images give 100 dB.
- :func:`ssim`: per image, the standard 11×11 Gaussian window (std 1.5, K1 = 0.01, K2 = 0.03) on
  images mapped to ``[0, 1]``; :class:`LPIPS`: the LPIPS distance from local weight files.
- :func:`frechet_distance` on features ``(N, D)``; :func:`image_frechet_distance` on images
  with a :class:`FeatureExtractor` — :class:`MnistFeatures` (shipped, offline) or
  :class:`InceptionFeatures` (optional torch-fidelity backend, local weights only).
- :func:`consistency`, :func:`projected`, :func:`consistent_frechet_distance` (noiseless only).
- :func:`measure_cost` → :class:`Cost`.
"""

from .consistency import consistency, consistent_frechet_distance, projected
from .cost import Cost, measure_cost
from .frechet import (
    FeatureExtractor,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    image_frechet_distance,
)
from .inception import InceptionFeatures
from .mnist_features import MnistClassifier, MnistFeatures
from .lpips import LPIPS
from .psnr import PSNR_MAX_DB, psnr
from .ssim import SSIM_MIN_SIZE, ssim

__all__ = [
    "PSNR_MAX_DB",
    "SSIM_MIN_SIZE",
    "Cost",
    "FeatureExtractor",
    "InceptionFeatures",
    "LPIPS",
    "MnistClassifier",
    "MnistFeatures",
    "consistency",
    "consistent_frechet_distance",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "image_frechet_distance",
    "measure_cost",
    "projected",
    "psnr",
    "ssim",
]
