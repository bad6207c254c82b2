"""Pieces shared by the zero-shot samplers (variance-exploding / EDM σ-parameterisation).

The samplers drive an *unconditional* denoiser ``net(x, sigma) -> x̂₀`` on noisy images
``x_σ = x₀ + σ ε`` and enforce the measurement ``y = A x₀ + σ_y ε_y`` using only ``op.A`` and
``op.pinv``. Every random draw of example ``i`` comes from its own stream of
:mod:`invfussion.seeding`, so sample ``i`` depends on ``(seed, i)`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ... import seeding
from ...degradations.base import Operator
from ..solvers import karras_sigmas

Denoiser = Callable[..., Tensor]


def sigma_schedule(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """The EDM noise levels ``σ_max … σ_min`` followed by 0, as ``steps + 1`` floats (``ρ = 7``
    crowds them at low noise, ``ρ = 1`` spaces them evenly).

    One denoiser call per step from ``σ_i`` to ``σ_{i+1}``.
    """
    return karras_sigmas(steps, sigma_min, sigma_max, rho).tolist()


def denoise(net: Denoiser, x: Tensor, sigma: float) -> Tensor:
    """``x̂₀ = D(x; σ)`` for ``x: (B, C, H, W)`` at one noise level (passed as a ``(B,)`` tensor)."""
    return net(x, torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype))


def ddim_noise_std(sigma: float, sigma_next: float, eta: float) -> float:
    """Fresh-noise level ``s = η·σ_next·√(1 − σ_next²/σ²)`` of a DDIM(η) step ``σ → σ_next``.

    η = 0 is the deterministic DDIM/Euler step, η = 1 the ancestral (DDPM-posterior) step.
    """
    return eta * sigma_next * max(1.0 - sigma_next**2 / sigma**2, 0.0) ** 0.5


def ddim_step(
    x: Tensor, x0: Tensor, sigma: float, sigma_next: float, s: float, fresh: Tensor | None
) -> Tensor:
    """One VE DDIM step from ``σ`` to ``σ_next`` given the estimate ``x̂₀``, all ``(B, C, H, W)``.

    ``x_next = x̂₀ + √(σ_next² − s²)·(x − x̂₀)/σ + fresh`` where ``fresh`` is the step's new
    noise, normally ``s·z`` (see :func:`ddim_noise_std`); None adds nothing.
    """
    out = x0 + (sigma_next**2 - s**2) ** 0.5 / sigma * (x - x0)
    return out if fresh is None else out + fresh


def start(
    op: Operator, y: Tensor, seed: int, indices: Sequence[int] | None, method: str, sigma_max: float,
    init: Tensor | None = None,
) -> tuple[list[int], Tensor]:
    """Validate ``y: (B, M)`` against ``op`` and draw ``x_T = σ_max·ε: (B, C, H, W)``, or
    ``init + σ_max·ε`` from an estimate ``init: (B, C, H, W)`` of ``x₀`` (a trajectory that starts
    part-way, SDEdit-style, e.g. from a one-call MMSE estimate).

    Returns the global example indices and ``x_T``.
    """
    if y.dim() != 2 or y.shape[0] != op.batch_size or y.shape[1] != op.measurement_size:
        raise ValueError(
            f"y must have shape ({op.batch_size}, {op.measurement_size}) for this operator batch, "
            f"got {tuple(y.shape)}; pass one measurement per operator."
        )
    idx = seeding.as_indices(op.batch_size if indices is None else indices)
    if len(idx) != op.batch_size:
        raise ValueError(
            f"indices names {len(idx)} examples but the operator batch has {op.batch_size}; "
            "pass one index per example."
        )
    x = sigma_max * seeding.randn(seed, idx, op.image_shape, f"zeroshot/{method}/init", y.device)
    if init is not None:
        if init.shape != x.shape:
            raise ValueError(f"init must have shape {tuple(x.shape)}, got {tuple(init.shape)}; pass one estimate per example.")
        x = x + init.to(x.dtype)
    return idx, x


def steps_bar(sigmas: Sequence[float], progress: bool, method: str):
    """Pairs ``(σ_i, σ_{i+1})`` with an optional progress bar."""
    pairs = list(zip(sigmas[:-1], sigmas[1:]))
    return tqdm(pairs, desc=method, disable=not progress, leave=False)


def effective_noise_std(
    op: Operator, seed: int, indices: Sequence[int], probes: int = 16, noise_aware: bool = False
) -> Tensor:
    """SVD-free estimate of the measurement noise seen in image space, ``(B,)``.

    Without singular values, the samplers treat the range space of ``A`` as isotropic with the
    noise level ``σ_eff = σ_y·√(tr(A⁺ᵀA⁺) / rank A)`` — the root-mean-square of ``σ_y / s_k``
    over the nonzero singular values ``s_k``. Both traces are Hutchinson estimates on the same
    ``probes`` Gaussian measurement-space probes ``u`` per example (from the example's own
    stream): ``Σ‖A⁺u‖² / Σ⟨u, AA⁺u⟩``. Sharing the probes makes the ratio exact, whatever the
    probes, when all ``s_k`` are equal (``‖A⁺u‖² = ⟨u, AA⁺u⟩/s²``: masks, average pooling,
    orthonormal rows). Examples with ``σ_y = 0`` get exactly 0.

    Limitation: the RMS is dominated by the smallest kept singular values, so for badly
    conditioned operators (motion blur, whose pseudo-inverse keeps singular values down to 1e-4 of
    the largest) ``σ_eff`` is huge and DDRM's noisy updates nearly ignore ``y``; they are faithful
    for masks, random matrices and average pooling. ``noise_aware``: the level seen
    through ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹`` (``op.pinv_noisy``) instead — ``A⁺_σ`` in place of ``A⁺`` in
    both traces — whose gain ``s/(s² + λ)`` is at most ``1/(2√λ)``, so ``σ_eff ≤ σ_d`` (DDNM+).
    DPS, ΠGDM and DAPS handle the noise through the likelihood instead and do not use this estimate.
    """
    sigma_y = op.noise_std
    out = torch.zeros_like(sigma_y)
    if not bool((sigma_y > 0).any()):
        return out
    u = seeding.randn(seed, indices, (probes, op.measurement_size), "zeroshot/probes/y", sigma_y.device)
    u = u * op.measurement_mask().to(u.dtype)[:, None, :]
    pinv_u = (op.pinv_noisy if noise_aware else op.pinv)(u)  # (B, probes, C, H, W)
    inv_sq = pinv_u.square().flatten(1).sum(1)  # ∝ tr(A⁺ᵀA⁺)
    rank = (u * op.A(pinv_u)).flatten(1).sum(1)  # ∝ tr(AA⁺) = rank A
    ratio = inv_sq / rank.clamp_min(1e-12)
    return torch.where(sigma_y > 0, sigma_y * ratio.clamp_min(0).sqrt(), out)


def adjoint(op: Operator, r: Tensor) -> Tensor:
    """``Aᵀ r``: ``(B, M)`` → ``(B, C, H, W)``, the vector–Jacobian product of ``op.A``."""
    with torch.enable_grad():
        probe = torch.zeros(
            r.shape[0], *op.image_shape, device=r.device, dtype=r.dtype, requires_grad=True
        )
        (out,) = torch.autograd.grad(op.A(probe), probe, grad_outputs=r)
    return out


def per_example(v: Tensor, x: Tensor) -> Tensor:
    """Broadcast a ``(B,)`` tensor against ``x: (B, ...)``."""
    return v.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
