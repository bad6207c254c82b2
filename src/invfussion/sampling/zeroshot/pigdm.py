"""Pseudo-inverse-guided diffusion models (ΠGDM; Song et al., 2023) on a VE / EDM denoiser.

ΠGDM approximates ``p(x₀ | x_σ) ≈ N(x̂₀, r²I)`` so that
``∇ log p(y | x_σ) = Jᵀ Aᵀ(r²AAᵀ + σ_y²I)⁻¹(y − A x̂₀)`` with ``J = ∂x̂₀/∂x_σ``. SVD-free, with the
range space treated as isotropic at the image-space noise level ``σ_eff``
(:func:`.common.effective_noise_std`; 0 when noiseless, where the formula is exact),
``Aᵀ(r²AAᵀ + σ_y²)⁻¹ ≈ A⁺/(r² + σ_eff²)``: the guidance is the vector–Jacobian product
``g = ∇_{x_σ}⟨sg(A⁺(y − A x̂₀)), x̂₀⟩ / (r² + σ_eff²)``.

The score correction ``g`` turns into a corrected estimate ``x̂₀ + σ²·g`` (Tweedie), followed by a
DDIM(η) step. ``r² = σ²σ_d²/(σ² + σ_d²)`` is the posterior variance of a prior with variance
``σ_d²`` per pixel (the VE form of the paper's ``r_t² = σ_t²/(1 + σ_t²)``, with EDM's
``σ_d = 0.5``); for that isotropic Gaussian prior, noiseless, one step lands exactly on the
consistent set. Cost: one denoiser call with a backward pass per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ...degradations.base import Operator
from .common import (
    Denoiser,
    ExampleNoise,
    ddim_noise_std,
    ddim_step,
    denoise,
    effective_noise_std,
    sigma_schedule,
    per_example,
    start,
    steps_bar,
)

DEFAULT_STEPS = 100


def pigdm(
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
    eta: float = 1.0,
    sigma_data: float = 0.5,
    guidance: float = 1.0,
) -> Tensor:
    """Posterior samples ``(B, C, H, W)`` for measurements ``y: (B, M)`` of the operator batch ``op``.

    Args:
        eta: DDIM stochasticity (0 deterministic, 1 ancestral).
        sigma_data: prior standard deviation per pixel in ``r²`` (EDM's σ_d).
        guidance: multiplier of the guidance term (1 is the method; 0 gives unguided DDIM).
    """
    idx, x = start(op, y, seed, indices, "pigdm", sigma_max)
    noise = ExampleNoise(seed, idx, op.image_shape, "zeroshot/pigdm/step", y.device)
    sigma_eff_sq = per_example(effective_noise_std(op, seed, idx), x).square()
    for sigma, sigma_next in steps_bar(sigma_schedule(steps, sigma_min, sigma_max), progress, "pigdm"):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0 = denoise(net, x_in, sigma)
            target = op.pinv(y - op.A(x0)).detach()
            (vjp,) = torch.autograd.grad((target * x0).sum(), x_in)
        r_sq = sigma**2 * sigma_data**2 / (sigma**2 + sigma_data**2)
        x0 = x0.detach() + guidance * sigma**2 * vjp / (r_sq + sigma_eff_sq)
        s = ddim_noise_std(sigma, sigma_next, eta)
        fresh = s * noise.draw() if s > 0 else None
        x = ddim_step(x_in.detach(), x0, sigma, sigma_next, s, fresh)
    return x


def nfe(steps: int = DEFAULT_STEPS, **_: object) -> int:
    """Denoiser calls (each with a backward pass) of one :func:`pigdm` run."""
    return steps
