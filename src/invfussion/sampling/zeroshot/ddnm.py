"""Denoising Diffusion Null-space Model (DDNM / DDNM+; Wang et al., 2023) on a VE / EDM denoiser.

Each step replaces the range-space content of the estimate by the measurement's,
``x̂₀ ← x̂₀ + λ·A⁺(y − A x̂₀)``, then takes a DDIM(η) step to ``σ_next``:
``x_next = a·x̂₀ + (1 − a)·x + s·z`` with ``a = 1 − √(σ_next² − s²)/σ`` and fresh noise ``s``.

Noiseless (``σ_y = 0``): ``λ = 1``, so the final sample satisfies ``A x̂ = A A⁺ y`` exactly.
Noisy (DDNM+, Wang et al. Sec. 3.3): the correction reads the measurement through the
noise-aware inverse ``A⁺_σ = Aᵀ(AAᵀ + σ_y²/σ_d²·I)⁻¹`` (``op.pinv_noisy``) instead of ``A⁺``, whose
smallest singular values would amplify the noise 10⁴-fold on a blur (the authors' SVD form drops
those components instead); it carries the measurement noise ``λ·A⁺_σε_y``, of image-space level
``σ_eff`` (see :func:`.common.effective_noise_std`; the SVD-free isotropic approximation), which
reaches ``x_next`` as ``a·λ·σ_eff`` and is taken out of the step's fresh noise: ``λ = 1`` where
``s ≥ a·σ_eff``, else ``λ = s/(a·σ_eff)``, and the fresh noise is ``√(s² − (a·λ·σ_eff)²)``, so
``x_next`` keeps its noise level. The authors' "time-travel" trick is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ... import seeding
from ...degradations.base import Operator
from .common import (
    Denoiser,
    ddim_noise_std,
    ddim_step,
    denoise,
    effective_noise_std,
    per_example,
    sigma_schedule,
    start,
    steps_bar,
)

DEFAULT_STEPS = 100


@torch.no_grad()
def ddnm(
    net: Denoiser,
    op: Operator,
    y: Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    sigma_max: float = 80.0,
    sigma_min: float = 0.002,
    progress: bool = False,
    init: Tensor | None = None,
    eta: float = 0.85,
) -> Tensor:
    """Posterior samples ``(B, C, H, W)`` for the measurements ``y: (B, M)`` of operators ``op``.

    Args:
        init: ``(B, C, H, W)`` an estimate of ``x₀`` to start from at ``sigma_max`` (``init + σ_max·ε``);
            ``None``: pure noise.
        eta: DDIM stochasticity (0 deterministic, 1 ancestral).
    """
    idx, x = start(op, y, seed, indices, "ddnm", sigma_max, init)
    noise = seeding.ExampleNoise(seed, idx, op.image_shape, "zeroshot/ddnm/step", y.device)
    sigma_eff = effective_noise_std(op, seed, idx, noise_aware=True).to(x.dtype)
    for sigma, sigma_next in steps_bar(
        sigma_schedule(steps, sigma_min, sigma_max), progress, "ddnm"
    ):
        x0 = denoise(net, x, sigma)
        s = ddim_noise_std(sigma, sigma_next, eta)
        carried = (1 - (sigma_next**2 - s**2) ** 0.5 / sigma) * sigma_eff  # a·σ_eff
        lam = torch.where(carried > s, s / carried.clamp_min(1e-12), torch.ones_like(carried))
        x0 = x0 + per_example(lam, x0) * op.pinv_noisy(y - op.A(x0))
        fresh = None
        if s > 0:
            fresh_std = (s**2 - (lam * carried) ** 2).clamp_min(0).sqrt()
            fresh = per_example(fresh_std, x) * noise.draw()
        x = ddim_step(x, x0, sigma, sigma_next, s, fresh)
    return x


def nfe(steps: int = DEFAULT_STEPS, **_: object) -> int:
    """Denoiser calls (no gradients) of one :func:`ddnm` run."""
    return steps
