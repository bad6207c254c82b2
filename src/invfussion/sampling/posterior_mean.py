"""The posterior mean as the average of ``n`` posterior samples: a reference for the one-call
MMSE (its PSNR rises towards the true MMSE's as ``n`` grows), at ``n`` times a sample's NFE."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..degradations.base import Operator
from .solvers import posterior


def posterior_mean(
    net: Callable, op: Operator, y: Tensor, n: int, **options: object
) -> Tensor:
    """The mean of ``n ≥ 1`` posterior samples per example: ``(B, C, H, W)``.

    Args:
        net, op, y: as for :func:`~invfussion.sampling.posterior` (``y: (B, M)``).
        n: samples per example; sample ``s`` of example ``b`` is the one
            ``posterior(..., num_samples=n)`` draws, so it depends on ``(seed, indices[b], s)``.
        **options: further arguments of :func:`~invfussion.sampling.posterior` (``steps``,
            ``solver``, ``seed``, ``indices``, ``cfg``, ``progress``, …).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"posterior_mean needs n ≥ 1 samples, got {n!r}.")
    return posterior(net, op, y, num_samples=n, **options).mean(1)
