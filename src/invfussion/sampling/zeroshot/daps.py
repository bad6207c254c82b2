"""Decoupled Annealing Posterior Sampling (DAPS; Zhang et al., 2025) on a VE / EDM denoiser.

For each annealing level ``σ_i`` (``levels`` values on the EDM ρ = 7 schedule from ``sigma_max``
down to ``sigma_min``):

1. ``x̂₀``: integrate the probability-flow ODE from ``x_{σ_i}`` down to ``ode_sigma_min`` with
   ``ode_steps`` Euler steps (one denoiser call each);
2. ``x₀ ~ p(x₀ | x_{σ_i}, y)`` by ``langevin_steps`` of Langevin dynamics on
   ``U(x₀) = ‖A x₀ − y‖²/(2τ²) + ‖x₀ − x̂₀‖²/(2σ_i²)`` (``Aᵀ`` through autograd of ``op.A``; no
   denoiser calls), with ``τ = max(tau, σ_y)`` per example;
3. ``x_{σ_{i+1}} = x₀ + σ_{i+1}·z``; the last level returns ``x₀``.

The Langevin step decays linearly over the levels from ``lr`` to ``lr·lr_min_ratio`` (the
authors' schedule). Two normalisations make ``lr`` mean what it meant for the authors' operators
(``‖A‖ ≈ 1``, ``τ = tau``): it is multiplied by ``(τ/tau)²/‖A‖²`` (``‖A‖²`` by power iteration),
so that the data term moves at the authors' rate for noisy measurements and for operators of
another norm (our strided blur and average pooling have ``‖A‖² ≈ 1/stride²``); and it is capped
at ``1/L``, ``L = ‖A‖²/τ² + 1/σ_i²`` the Lipschitz constant of ``∇U``, so that it cannot diverge.
Defaults follow the authors' pixel-space "DAPS-1K" configuration: 200 levels from σ = 100 to
0.1, 5 ODE steps to σ = 0.01, 100 Langevin steps, lr 1e-4, τ = 0.01, ``lr_min_ratio`` 0.01:
1000 denoiser calls. Noisy measurements enter through ``τ``: the likelihood is the true Gaussian
one wherever ``σ_y ≥ tau`` (the authors keep ``τ`` a fixed hyperparameter; a τ below σ_y would
over-fit the noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ... import seeding
from ...degradations.base import Operator
from .common import (
    Denoiser,
    adjoint,
    denoise,
    per_example,
    sigma_schedule,
    start,
    steps_bar,
)

DEFAULT_LEVELS = 200
DEFAULT_ODE_STEPS = 5


def _operator_norm_sq(
    op: Operator, seed: int, indices: Sequence[int], iterations: int = 30
) -> Tensor:
    """``‖A_b‖²`` per example, ``(B,)``, by power iteration on ``AᵀA`` (slightly over-estimated)."""
    v = seeding.randn(seed, indices, op.image_shape, "zeroshot/daps/power", op.device)
    norm_sq = torch.zeros(v.shape[0], device=v.device)
    for _ in range(iterations):
        v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(-1, 1, 1, 1)
        w = adjoint(op, op.A(v))
        norm_sq = (v * w).flatten(1).sum(1)
        v = w
    return norm_sq * 1.05


@torch.no_grad()
def daps(
    net: Denoiser,
    op: Operator,
    y: Tensor,
    *,
    steps: int = DEFAULT_LEVELS,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    sigma_max: float = 100.0,
    sigma_min: float = 0.1,
    progress: bool = False,
    ode_steps: int = DEFAULT_ODE_STEPS,
    ode_sigma_min: float = 0.01,
    langevin_steps: int = 100,
    lr: float = 1e-4,
    lr_min_ratio: float = 0.01,
    tau: float = 0.01,
) -> Tensor:
    """Posterior samples ``(B, C, H, W)`` for the measurements ``y: (B, M)`` of operators ``op``.

    Args:
        steps: number of annealing levels.
        ode_steps: Euler steps (denoiser calls) of the inner ODE per level.
        ode_sigma_min: where the inner ODE stops; must be below ``sigma_min``.
        langevin_steps: Langevin steps per level (no denoiser calls).
        lr, lr_min_ratio: Langevin step size at the first level and its final fraction.
        tau: assumed measurement noise for noiseless measurements.
    """
    if not 0 < ode_sigma_min < sigma_min:
        raise ValueError(
            f"DAPS needs 0 < ode_sigma_min < sigma_min, got {ode_sigma_min} and {sigma_min}; "
            "lower ode_sigma_min or raise sigma_min."
        )
    idx, x = start(op, y, seed, indices, "daps", sigma_max)
    langevin_noise = seeding.ExampleNoise(seed, idx, op.image_shape, "zeroshot/daps/langevin", y.device)
    renoise = seeding.ExampleNoise(seed, idx, op.image_shape, "zeroshot/daps/renoise", y.device)
    tau_sq = per_example(op.noise_std.clamp_min(tau), x).square()
    a_norm_sq = per_example(_operator_norm_sq(op, seed, idx), x)
    unit = torch.where(a_norm_sq > 0, a_norm_sq, torch.ones_like(a_norm_sq))  # A = 0: as authors
    levels = sigma_schedule(steps, sigma_min, sigma_max)[:-1]
    x0 = x
    for i, (sigma, sigma_next) in enumerate(steps_bar(levels + [0.0], progress, "daps")):
        x0_hat = x
        ode = sigma_schedule(ode_steps + 1, ode_sigma_min, sigma)[:-1]  # σ_i → ode_sigma_min
        for t, t_next in zip(ode[:-1], ode[1:]):
            x0_hat = x0_hat + (t_next - t) / t * (x0_hat - denoise(net, x0_hat, t))
        ratio = i / steps
        step = lr * (1 + ratio * (lr_min_ratio - 1)) * tau_sq / tau**2 / unit
        step = torch.minimum(step, 1 / (a_norm_sq / tau_sq + 1 / sigma**2))
        x0 = x0_hat
        kicks = langevin_noise.draw(langevin_steps) if langevin_steps > 0 else None
        for k in range(langevin_steps):
            grad = adjoint(op, op.A(x0) - y) / tau_sq + (x0 - x0_hat) / sigma**2
            x0 = x0 - step * grad + (2 * step).sqrt() * kicks[k]
        if sigma_next > 0:
            x = x0 + sigma_next * renoise.draw()
    return x0


def nfe(steps: int = DEFAULT_LEVELS, ode_steps: int = DEFAULT_ODE_STEPS, **_: object) -> int:
    """Denoiser calls (no gradients) of one :func:`daps` run: ``steps × ode_steps``."""
    return steps * ode_steps
