"""Posterior principal components from one network call (NPPC, Nehme et al. 2023; NOTES §5).

A model built with ``pcs = K`` returns, besides its MMSE estimate ``μ``, ``K`` raw directions
``w₁..w_K``. Gram–Schmidt turns them into orthonormal ``u₁..u_K``; the length of each
orthogonalised vector is the predicted posterior standard deviation along it, ``σ_k``.
Training (``training.losses.NPPCLoss``) makes ``u_k`` the ``k``-th principal component of the
posterior ``p(x | y)`` and ``σ_k²`` the variance along it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..degradations.base import Operator
from .guidance import guided
from .mmse import pure_noise_input

GRAM_SCHMIDT_EPS = 1e-8


def gram_schmidt(w: Tensor, detach_previous: bool = True) -> tuple[Tensor, Tensor]:
    """Orthonormalise ``K`` directions per example, in order.

    Direction ``k`` loses its components along the (already orthonormal) directions ``1..k−1``
    and is then normalised. With ``detach_previous`` the earlier directions are constants in
    that step, so the gradient of a loss on direction ``k`` never moves directions ``< k``: each
    direction greedily captures what its predecessors left, which orders them like principal
    components rather than leaving an arbitrary rotation of the same subspace.

    Args:
        w: ``(B, K, C, H, W)`` raw directions (computed in float32).

    Returns:
        ``u: (B, K, C, H, W)`` orthonormal directions and ``norms: (B, K)``, the lengths of the
        orthogonalised vectors before normalisation (NPPC's predicted standard deviations).
    """
    if w.dim() != 5:
        raise ValueError(f"gram_schmidt expects (B, K, C, H, W) directions, got shape {tuple(w.shape)}.")
    flat = w.float().flatten(2)
    directions: list[Tensor] = []
    norms: list[Tensor] = []
    for k in range(flat.shape[1]):
        v = flat[:, k]
        for u in directions:
            u = u.detach() if detach_previous else u
            v = v - (v * u).sum(-1, keepdim=True) * u
        norm = v.norm(dim=-1)
        directions.append(v / (norm[:, None] + GRAM_SCHMIDT_EPS))
        norms.append(norm)
    return torch.stack(directions, 1).reshape(w.shape), torch.stack(norms, 1)


@torch.no_grad()
def nppc(
    net: Callable,
    op: Operator,
    y: Tensor,
    sigma: float = 100.0,
    seed: int = 0,
    indices: Sequence[int] | Tensor | None = None,
    class_labels: Tensor | None = None,
    cfg: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The MMSE estimate and the top posterior principal components of ``y: (B, M)``.

    One call of ``net`` on pure noise at ``sigma`` (the input of :func:`sampling.mmse`, same
    per-example noise), so the mean equals ``sampling.mmse(net, op, y, sigma, seed, indices)``.

    Args:
        net: a denoiser built with ``pcs > 0`` (e.g. ``models.load("mnist32-nppc")``).
        op: a batch of ``B`` operators.
        class_labels, cfg: a class ``(B,)`` and guidance weight, as for :func:`sampling.mmse`; with
            ``cfg = w`` the raw directions are guided like the mean (``w_null.lerp(w_c, w)``)
            before Gram–Schmidt — the principal components of the guided network's output, a
            heuristic as CFG itself is.

    Returns:
        mean ``(B, C, H, W)``, orthonormal directions ``(B, K, C, H, W)`` and the predicted
        posterior standard deviation along each direction ``(B, K)``, per example in decreasing
        order of that deviation (training makes the heads' order only approximately so).
    """
    if not getattr(net, "pcs", 0):
        raise ValueError("this model has no principal-component head; train one with --objective nppc --pcs K or load mnist32-nppc.")
    x_noisy, s = pure_noise_input(net, op, y, sigma, seed, indices)
    mean, w = guided(net, class_labels, cfg)(x_noisy, s, op=op, y=y, return_pcs=True)
    directions, stds = gram_schmidt(w)
    stds, order = stds.sort(dim=1, descending=True)
    directions = directions.gather(1, order[:, :, None, None, None].expand_as(directions))
    return mean, directions.to(mean.dtype), stds.to(mean.dtype)
