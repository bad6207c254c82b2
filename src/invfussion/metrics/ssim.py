"""Structural similarity (SSIM, Wang et al. 2004) with the standard Gaussian window.

Settings (those of the DPS/DAPS/DDNM tables and of Wang et al.'s reference code): an 11×11
Gaussian window of std 1.5, ``K1 = 0.01``, ``K2 = 0.03``, population (not sample) covariances, the
SSIM map computed where the window fits inside the image ("valid") and averaged over its pixels
and the channels. Images in ``[-1, 1]`` are mapped to ``[0, 1]`` (``(v + 1)/2``, clipped) and
compared with data range 1 — the value the literature reports for images on ``[0, 1]`` or
``[0, 255]``. (SSIM is not invariant to a shift of the intensities, so ``[-1, 1]`` with data range
2 would give a different number.)

Dependencies. ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=0)`` computes the same value (its
``truncate=3.5`` gives the 11-tap window; it crops the border the valid map leaves out); the tests
check ours against it. It is not used here because it works on one NumPy image at a time on the CPU
and would make scikit-image (with SciPy) a core dependency; ``torchmetrics``/``piq`` compute it in
torch but bring their own dependency trees for ~30 lines. So scikit-image is only a test reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW, SSIM_STD, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
SSIM_MIN_SIZE = SSIM_WINDOW
"""The smallest image side SSIM accepts (its window)."""


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(11,)``: the normalised Gaussian of std 1.5 sampled at offsets −5..5."""
    t = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - SSIM_WINDOW // 2
    g = torch.exp(-(t**2) / (2 * SSIM_STD**2))
    return g / g.sum()


def ssim(x: Tensor, ref: Tensor) -> Tensor:
    """SSIM of each image, ``(B,)`` float64, in ``[-1, 1]`` (1: identical).

    ``x, ref: (B, C, H, W)`` in ``[-1, 1]`` (mapped to ``[0, 1]``, see the module docstring), with
    ``H, W ≥ 11``.
    """
    if x.shape != ref.shape or x.dim() != 4:
        raise ValueError(
            f"ssim needs two image batches of one shape (B, C, H, W), got {tuple(x.shape)} and "
            f"{tuple(ref.shape)}; pass the restorations and their references in the same order."
        )
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels (its window), got "
            f"{x.shape[-2]}×{x.shape[-1]}; use psnr for smaller images."
        )
    a = ((x.to(torch.float64) + 1) / 2).clamp(0, 1)
    b = ((ref.to(torch.float64) + 1) / 2).clamp(0, 1)
    B, C, H, W = a.shape
    g = _gaussian_window(torch.float64, a.device)

    def blur(v: Tensor) -> Tensor:  # (B, C, H, W) -> valid separable Gaussian filter
        v = v.reshape(B * C, 1, H, W)
        v = F.conv2d(v, g.view(1, 1, -1, 1))
        return F.conv2d(v, g.view(1, 1, 1, -1))

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
    )
    return index.reshape(B, -1).mean(1)
