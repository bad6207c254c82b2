"""Measurement consistency and the consistent Fréchet distance (C-FD / C-FID, paper Sec. 4).

C-FD scores samples after projecting them onto the measurement-consistent set,
``x_proj = x̂ + A⁺(y − A x̂)``, against clean references: a sampler that ignores ``y`` is
penalised because its projections carry the measurement's content pasted onto unrelated images.
The projection is defined for noiseless measurements only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..degradations.base import Operator
from .frechet import FeatureExtractor, frechet_distance


def consistency(op: Operator, x: Tensor, y: Tensor) -> Tensor:
    """``‖y − A x‖²`` per example, ``(B,)``, for ``x: (B, C, H, W)``, ``y: (B, M)`` (float64)."""
    return (y.to(torch.float64) - op.A(x.to(torch.float64))).square().sum(1)


def projected(op: Operator, x: Tensor, y: Tensor) -> Tensor:
    """``x + A⁺(y − A x)``: ``(B, C, H, W)``; raises ValueError for noisy measurements."""
    if bool((op.noise_std > 0).any()):
        raise ValueError(
            "the consistent-set projection is undefined for noisy measurements (σ_y > 0); "
            "report PSNR and FD only, or evaluate C-FD on a noiseless operator."
        )
    return op.project(x, y)


def consistent_frechet_distance(
    op: Operator, samples: Tensor, y: Tensor, references: Tensor, extractor: FeatureExtractor
) -> float:
    """C-FD: FD between the features of ``projected(op, samples, y)`` and of ``references``.

    ``samples: (B, C, H, W)`` are restorations of ``y: (B, M)``; ``references: (N, C, H, W)``
    clean images (normally the ground truths); all in ``[-1, 1]``. Projections are not clipped.
    """
    return frechet_distance(extractor(projected(op, samples, y)), extractor(references))
