"""The MMSE estimate from one denoiser call on pure noise (paper Eq. 10, NOTES §5).

At a noise level far above the data scale the noisy input carries almost no information about
``x``, so ``D(σ ε; σ, y, A) ≈ E[x | y]``. The authors use ``σ = 100``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import seeding
from ..degradations.base import Operator
from .guidance import guided
from .solvers import default_device


def mmse(
    net: Callable,
    op: Operator,
    y: Tensor,
    sigma: float = 100.0,
    seed: int = 0,
    indices: Sequence[int] | Tensor | None = None,
    class_labels: Tensor | None = None,
    cfg: float | None = None,
) -> Tensor:
    """``x̂_MMSE ≈ D(σ ε; σ, y, A)``: ``(B, C, H, W)`` from one call of ``net`` (two with ``cfg``).

    Args:
        net: denoiser ``net(x_noisy, sigma (B,), op=, y=, class_labels=) → x̂₀``.
        op: a batch of ``B`` operators; y: ``(B, M)``.
        sigma: the noise level of the single call.
        seed, indices: example ``b``'s noise ``ε`` comes from ``(seed, indices[b])`` (stream ``"mmse"``).
        class_labels, cfg: a class ``(B,)`` and classifier-free guidance weight, as for
            :func:`~invfussion.sampling.posterior`: with ``cfg = w`` the estimate is
            ``D_null.lerp(D_c, w)`` of the null- and class-conditional calls on the same input.
    """
    x_noisy, s = pure_noise_input(net, op, y, sigma, seed, indices)
    return guided(net, class_labels, cfg)(x_noisy, s, op=op, y=y)


def pure_noise_input(
    net: Callable, op: Operator, y: Tensor, sigma: float, seed: int, indices: Sequence[int] | Tensor | None
) -> tuple[Tensor, Tensor]:
    """The one-call estimators' input: ``σ ε: (B, C, H, W)`` with example ``b``'s ``ε`` from
    ``(seed, indices[b])`` (stream ``"mmse"``), and ``σ: (B,)``."""
    if sigma <= 0:
        raise ValueError(f"the noise level of a one-call estimate must be positive, got sigma={sigma}.")
    index_list = seeding.as_indices(op.batch_size if indices is None else indices)
    if len(index_list) != op.batch_size:
        raise ValueError(
            f"got {len(index_list)} indices for a batch of {op.batch_size}; pass one per example."
        )
    device = default_device(net, y)
    noise = seeding.randn(seed, index_list, op.image_shape, "mmse", device)
    return sigma * noise, torch.full((op.batch_size,), float(sigma), dtype=torch.float32, device=device)
