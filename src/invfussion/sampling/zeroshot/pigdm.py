"""Pseudo-inverse-guided diffusion models (ΠGDM; Song et al., 2023) on a VE / EDM denoiser.

ΠGDM approximates ``p(x₀ | x_σ) ≈ N(x̂₀, r²I)``, so that
``∇ log p(y | x_σ) = Jᵀ g`` with ``J = ∂x̂₀/∂x_σ`` and ``g = Aᵀ(r²AAᵀ + σ_y²I)⁻¹(y − A x̂₀)``:

- noiseless: ``g = A⁺(y − A x̂₀)/r²`` (the paper's pseudo-inverse form);
- noisy (ΠGDM's noisy guidance, ``r²`` adjusted by ``σ_y²``): ``g = Aᵀ(AAᵀ + λI)⁻¹(y − A x̂₀)/r²``
  with ``λ = σ_y²/r²``, i.e. the operator's Tikhonov inverse ``op.pinv_noisy(·, λ)/r²``: exact and
  in closed form for every built-in family (the InvFussion paper approximated it by assuming unit
  singular values for the matrix family); conjugate gradients for users' operators.

``Jᵀg`` is the vector–Jacobian product of ``⟨sg(g), x̂₀⟩``. The score correction turns into a
corrected estimate ``x̂₀ + σ²·Jᵀg`` (Tweedie), followed by a DDIM(η) step.
``r² = σ²σ_d²/(σ² + σ_d²)`` is the posterior variance of a prior with variance ``σ_d²`` per pixel
(the VE form of the paper's ``r_t² = σ_t²/(1 + σ_t²)``, with EDM's ``σ_d = 0.5``); for that
isotropic Gaussian prior, noiseless, one step lands exactly on the consistent set.
Cost: one denoiser call with a backward pass per step.
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
    sigma_schedule,
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
    init: Tensor | None = None,
    eta: float = 1.0,
    sigma_data: float = 0.5,
    guidance: float = 1.0,
) -> Tensor:
    """Posterior samples ``(B, C, H, W)`` for the measurements ``y: (B, M)`` of operators ``op``.

    Args:
        init: ``(B, C, H, W)`` an estimate of ``x₀`` to start from at ``sigma_max`` (``init + σ_max·ε``);
            ``None``: pure noise.
        eta: DDIM stochasticity (0 deterministic, 1 ancestral).
        sigma_data: prior standard deviation per pixel in ``r²`` (EDM's σ_d).
        guidance: multiplier of the guidance term (1 is the method; 0 gives unguided DDIM).
    """
    idx, x = start(op, y, seed, indices, "pigdm", sigma_max, init)
    noise = seeding.ExampleNoise(seed, idx, op.image_shape, "zeroshot/pigdm/step", y.device)
    for sigma, sigma_next in steps_bar(
        sigma_schedule(steps, sigma_min, sigma_max), progress, "pigdm"
    ):
        x0 = guided_estimate(net, op, y, x, sigma, sigma_data, guidance)
        s = ddim_noise_std(sigma, sigma_next, eta)
        fresh = s * noise.draw() if s > 0 else None
        x = ddim_step(x, x0, sigma, sigma_next, s, fresh)
    return x


def guided_estimate(
    net: Denoiser,
    op: Operator,
    y: Tensor,
    x: Tensor,
    sigma: float,
    sigma_data: float = 0.5,
    guidance: float = 1.0,
) -> Tensor:
    """``x̂₀ + σ²·Jᵀg`` at ``x: (B, C, H, W)``, noise level ``σ``: one denoiser call and its VJP.

    For the isotropic Gaussian prior ``N(μ, σ_d²I)`` this is exactly ``E[x₀ | x_σ, y]``.
    """
    sigma_y_sq = op.noise_std.to(y.device, y.dtype).square()
    r_sq = sigma**2 * sigma_data**2 / (sigma**2 + sigma_data**2)
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        x0 = denoise(net, x_in, sigma)
        g = likelihood_gradient(op, (y - op.A(x0)).detach(), r_sq, sigma_y_sq)
        (vjp,) = torch.autograd.grad((g * x0).sum(), x_in)
    return x0.detach() + guidance * sigma**2 * vjp


def likelihood_gradient(op: Operator, residual: Tensor, r_sq: float, sigma_y_sq: Tensor) -> Tensor:
    """``g = Aᵀ(r²AAᵀ + σ_y²I)⁻¹ residual = A⁺_λ residual / r²`` with ``λ = σ_y²/r²``:
    ``(B, M)`` → ``(B, C, H, W)``. Where σ_y = 0 this is exactly ``A⁺ residual / r²``."""
    return op.pinv_noisy(residual, sigma_y_sq / r_sq) / r_sq


def nfe(steps: int = DEFAULT_STEPS, **_: object) -> int:
    """Denoiser calls (each with a backward pass) of one :func:`pigdm` run."""
    return steps
