"""Denoising Diffusion Restoration Models (DDRM; Kawar et al., 2022), SVD-free, VE / EDM.

DDRM updates each spectral component of ``x`` separately. Without an SVD we split image space
with the projector ``P = A⁺A`` into the range of ``Aᵀ`` and the null space of ``A``, and treat the
range space as isotropic with the image-space measurement noise ``σ_eff``
(:func:`.common.effective_noise_std`; 0 when noiseless, exact for masks). With ``ȳ = A⁺y``,
``ε̂ = (x − x̂₀)/σ`` and a fresh ``z`` per step, the step from ``σ`` to ``σ'`` is

- null space:  ``(I − P)[x̂₀ + √(1−η²)·σ'·ε̂ + η·σ'·z]``
- range space, ``σ' ≥ σ_eff``: ``P[(1 − η_b)·x̂₀ + √(σ'² − η_b²σ_eff²)·z] + η_b·ȳ``
- range space, ``σ' < σ_eff``: ``P[x̂₀ + √(1−η²)·σ'·(ȳ − x̂₀)/σ_eff + η·σ'·z]``.

The start is the authors' too: ``x_T = (I − P)σ_T ε + P[ȳ + √(σ_T² − σ_eff²)·ε]`` where
``σ_T ≥ σ_eff`` (else ``σ_T ε``), so a schedule may start low (``sigma_max``) from the measurement.
These are Kawar et al.'s per-singular-value updates (their ``σ_y/s_i`` replaced by one
``σ_eff``), so the method is exact where the nonzero singular values are equal (masks, average
pooling, orthonormal rows) — the InvFussion paper's SVD-free form assumes them equal to 1, i.e.
``σ_eff = σ_y``; the estimate here also covers other scales. Noiseless (``σ_eff = 0``) it is the
original DDRM. With ``η_b = 1`` the range content is then ``A⁺y`` at every step, so the final sample
satisfies ``A x̂ = A A⁺ y`` exactly. Cost: one denoiser call per step, no gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ... import seeding
from ...degradations.base import Operator
from .common import (
    Denoiser,
    denoise,
    effective_noise_std,
    per_example,
    sigma_schedule,
    start,
    steps_bar,
)

DEFAULT_STEPS = 25
DEFAULT_SIGMA_MAX = 5.0


@torch.no_grad()
def ddrm(
    net: Denoiser,
    op: Operator,
    y: Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    sigma_max: float = DEFAULT_SIGMA_MAX,
    sigma_min: float = 0.002,
    progress: bool = False,
    eta: float = 0.85,
    eta_b: float = 1.0,
    rho: float = 7.0,
) -> Tensor:
    """Posterior samples ``(B, C, H, W)`` for the measurements ``y: (B, M)`` of operators ``op``.

    Args:
        sigma_max: the first noise level; the default, 5, starts from the measurement's range
            space rather than from near-pure noise (σ = 80), chosen on validation digits
            (BENCHMARKS.md, "Baselines as strong as the public ones").
        eta: stochasticity of the null-space (and noise-dominated range-space) updates.
        eta_b: weight of the measurement in the range-space update where it is trusted.
        rho: spacing of the noise levels (7: EDM's; 1: even, as deepinv's DDRM spaces them).
    """
    idx, x = start(op, y, seed, indices, "ddrm", sigma_max)
    noise = seeding.ExampleNoise(seed, idx, op.image_shape, "zeroshot/ddrm/step", y.device)
    sigma_eff = per_example(effective_noise_std(op, seed, idx), x)
    y_bar = op.pinv(y)

    def range_part(v: Tensor) -> Tensor:
        return op.pinv(op.A(v))

    measured_start = (sigma_max**2 - sigma_eff**2).clamp_min(0).sqrt() / sigma_max
    x = torch.where(sigma_max >= sigma_eff, x + y_bar + (measured_start - 1) * range_part(x), x)

    for sigma, sigma_next in steps_bar(
        sigma_schedule(steps, sigma_min, sigma_max, rho), progress, "ddrm"
    ):
        x0 = denoise(net, x, sigma)
        z = noise.draw() if sigma_next > 0 else torch.zeros_like(x)
        keep = (1 - eta**2) ** 0.5 * sigma_next
        null_new = x0 + keep * (x - x0) / sigma + eta * sigma_next * z
        trusted = (1 - eta_b) * x0 + (sigma_next**2 - eta_b**2 * sigma_eff**2).clamp_min(
            0
        ).sqrt() * z
        noisy = x0 + keep * (y_bar - x0) / sigma_eff.clamp_min(1e-12) + eta * sigma_next * z
        range_new = torch.where(sigma_next >= sigma_eff, trusted, noisy)
        measured = torch.where(sigma_next >= sigma_eff, eta_b * y_bar, torch.zeros_like(y_bar))
        x = null_new - range_part(null_new) + range_part(range_new) + measured
    return x


def nfe(steps: int = DEFAULT_STEPS, **_: object) -> int:
    """Denoiser calls (no gradients) of one :func:`ddrm` run."""
    return steps
