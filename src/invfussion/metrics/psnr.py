"""Peak signal-to-noise ratio on 8-bit-range images."""

from __future__ import annotations

import torch
from torch import Tensor

PSNR_MAX_DB = 100.0  # identical images get this value instead of +inf, so means stay finite


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR in dB of each image, ``(B,)`` float64, on the ``[0, 255]`` scale.

    ``x, ref: (B, C, H, W)`` in ``[-1, 1]`` are mapped to ``[0, 255]`` (``(v + 1)·127.5``, clipped,
    not rounded); ``PSNR = 10·log10(255² / MSE)`` with the MSE over one image's pixels. Every value
    is capped at :data:`PSNR_MAX_DB` (100 dB; the MSE is floored at ``255²·1e-10``), so identical
    images give 100 dB rather than +inf.
    """
    if x.shape != ref.shape or x.dim() != 4:
        raise ValueError(
            f"psnr needs two image batches of one shape (B, C, H, W), got {tuple(x.shape)} and "
            f"{tuple(ref.shape)}; pass the restorations and their references in the same order."
        )

    def to_8bit(v: Tensor) -> Tensor:
        return ((v.to(torch.float64) + 1) * 127.5).clamp(0, 255)

    mse = (to_8bit(x) - to_8bit(ref)).square().flatten(1).mean(1)
    floor = 255.0**2 * 10 ** (-PSNR_MAX_DB / 10)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(floor))
