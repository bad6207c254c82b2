"""EDM samplers for a denoiser ``net(x_noisy, sigma, op, y, class_labels) → x̂₀``.

Schedule (Karras et al. 2022): ``σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ``
for ``i = 0..N−1``, then ``σ_N = 0``. The probability-flow ODE ``dx/dσ = (x − D(x; σ))/σ`` is
integrated from ``x_0 = σ_max·ε``:

- ``"heun"``: Heun's 2nd-order method, no correction on the last step to ``σ = 0``
  (``2N − 1`` denoiser calls; 32 steps = 63 NFE, the paper's setting).
- ``"euler"``: 1st order (``N`` calls).
- ``"dpmpp2m"``: DPM-Solver++(2M) (Lu et al. 2022), multistep 2nd order in ``log σ`` on the
  data prediction, 1st order on the first step and on the final step to ``σ = 0`` (``N`` calls).

Stochastic churn (EDM Alg. 2; Heun and Euler): at steps with ``S_min ≤ σ_i ≤ S_max`` the noise
level is raised to ``σ̂ = σ_i(1 + γ)``, ``γ = min(churn/N, √2 − 1)``, by adding fresh noise of
std ``S_noise·√(σ̂² − σ_i²)``.

Classifier-free guidance: with ``cfg = w``, ``D = D_null.lerp(D_c, w)`` where ``D_null`` is the
network called with ``class_labels=None`` (its null class); two calls per evaluation
(:mod:`.guidance`).

Seeds: example ``b`` draws its initial and churn noise from one generator seeded by
``(seed, indices[b])`` (stream ``"sample"``; ``"sample/j"`` for its ``j``-th sample when
``num_samples`` is given), so a sample does not depend on the batch it was drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from .. import seeding
from ..degradations.base import Operator
from .guidance import guided

SOLVERS = ("heun", "euler", "dpmpp2m")


def karras_sigmas(
    steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """The EDM noise levels ``(steps + 1,)``, decreasing from ``σ_max`` to ``σ_min``, then 0."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}."
        )
    ramp = (
        torch.linspace(0, 1, steps, dtype=torch.float64)
        if steps > 1
        else torch.zeros(1, dtype=torch.float64)
    )
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(dtype)


def _guided(
    net: Callable, op: Operator | None, y: Tensor | None, class_labels, cfg: float | None
) -> Callable:
    """``D(x, σ)`` with the conditioning bound and CFG applied; ``σ`` is a float."""

    guided_net = guided(net, class_labels, cfg)

    def denoise(x: Tensor, sigma: float) -> Tensor:
        s = torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device)
        return guided_net(x, s, op=op, y=y)

    return denoise


def _integrate(
    denoise: Callable[[Tensor, float], Tensor],
    x: Tensor,
    noise: seeding.ExampleNoise,
    sigmas: list[float],
    solver: str,
    churn: float,
    s_min: float,
    s_max: float,
    s_noise: float,
    progress: bool,
) -> Tensor:
    """Integrate from ``x`` at ``σ_0`` to ``σ = 0`` (``x``: ``(B, C, H, W)``, float32)."""
    steps = len(sigmas) - 1
    previous_denoised, previous_h = None, None
    for i in tqdm(range(steps), desc=f"sampling ({solver})", disable=not progress, leave=False):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if solver == "dpmpp2m":
            denoised = denoise(x, sigma)
            if sigma_next == 0:
                x = denoised
                continue
            h = math.log(sigma / sigma_next)
            estimate = denoised
            if previous_denoised is not None:
                r = previous_h / h
                estimate = (1 + 1 / (2 * r)) * denoised - 1 / (2 * r) * previous_denoised
            x = (sigma_next / sigma) * x + (1 - sigma_next / sigma) * estimate
            previous_denoised, previous_h = denoised, h
            continue
        gamma = (
            min(churn / steps, math.sqrt(2) - 1) if churn > 0 and s_min <= sigma <= s_max else 0.0
        )
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            fresh = noise.draw().to(x.dtype)
            x = x + s_noise * math.sqrt(sigma_hat**2 - sigma**2) * fresh
        slope = (x - denoise(x, sigma_hat)) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * slope
        if solver == "heun" and sigma_next > 0:
            slope_next = (x_next - denoise(x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * 0.5 * (slope + slope_next)
        x = x_next
    return x


def posterior(
    net: Callable,
    op: Operator | None,
    y: Tensor | None,
    steps: int = 32,
    solver: str = "heun",
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    churn: float = 0.0,
    s_min: float = 0.0,
    s_max: float = float("inf"),
    s_noise: float = 1.0,
    cfg: float | None = None,
    class_labels: Tensor | None = None,
    seed: int = 0,
    indices: Sequence[int] | Tensor | None = None,
    num_samples: int | None = None,
    shape: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Tensor:
    """Posterior samples ``x ~ p(x | y, A)`` from an EDM-preconditioned denoiser.

    Args:
        net: denoiser ``net(x_noisy, sigma (B,), op=, y=, class_labels=) → x̂₀``.
        op: a batch of ``B`` operators, or ``None`` for unconditional sampling (then ``y`` must be
            ``None`` and ``shape = (B, C, H, W)`` is required; see :func:`unconditional`).
        y: ``(B, M)`` measurements.
        steps, solver, sigma_min, sigma_max, rho: the schedule and integrator (module docstring).
        churn, s_min, s_max, s_noise: EDM stochasticity (Heun/Euler only).
        cfg: guidance weight ``w`` (needs ``class_labels``); ``None`` disables guidance.
        class_labels: passed to ``net`` as is (whatever the network takes, e.g. ``(B,)`` ints).
        seed, indices: example ``b`` uses noise from ``(seed, indices[b])``; default ``0..B-1``.
        num_samples: draw this many samples per example and return ``(B, num_samples, C, H, W)``;
            ``None`` returns one sample ``(B, C, H, W)``.
        device: where to sample; default ``y``'s device, else ``net``'s parameters', else CPU.
        progress: show a progress bar over steps.

    Returns:
        ``(B, C, H, W)`` float32 samples (``(B, N, C, H, W)`` with ``num_samples``).
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; use one of {', '.join(SOLVERS)}.")
    if churn < 0:
        raise ValueError(f"churn must be non-negative, got {churn}.")
    if churn > 0 and solver == "dpmpp2m":
        raise ValueError(
            "churn is not supported by the multistep dpmpp2m solver; use heun or euler."
        )
    if (op is None) != (y is None):
        raise ValueError(
            "pass both op and y for posterior sampling, or neither (with shape) for unconditional."
        )
    if op is not None:
        batch_shape = (op.batch_size, *op.image_shape)
        if shape is not None and tuple(shape) != batch_shape:
            raise ValueError(
                f"shape {tuple(shape)} disagrees with the operator batch {batch_shape}; drop shape."
            )
    elif shape is None or len(shape) != 4:
        raise ValueError(
            "unconditional sampling needs shape=(B, C, H, W); pass it or use sampling.unconditional."
        )
    else:
        batch_shape = tuple(int(s) for s in shape)
    index_list = seeding.as_indices(batch_shape[0] if indices is None else indices)
    if len(index_list) != batch_shape[0]:
        raise ValueError(
            f"got {len(index_list)} indices for a batch of {batch_shape[0]}; pass one per example."
        )
    device = torch.device(device) if device is not None else default_device(net, y)

    sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho).tolist()
    denoise = _guided(net, op, y, class_labels, cfg)
    samples = []
    for j in range(1 if num_samples is None else num_samples):
        stream = "sample" if num_samples is None else f"sample/{j}"
        noise = seeding.ExampleNoise(seed, index_list, batch_shape[1:], stream, device)
        x = noise.draw() * sigmas[0]
        samples.append(
            _integrate(denoise, x, noise, sigmas, solver, churn, s_min, s_max, s_noise, progress)
        )
    return samples[0] if num_samples is None else torch.stack(samples, dim=1)


def unconditional(net: Callable, batch: int, image_shape: Sequence[int], **kwargs) -> Tensor:
    """Unconditional (or class-conditional) samples ``(batch, C, H, W)``: :func:`posterior` with
    ``op=None`` (the network's zero operator). Keyword arguments are those of :func:`posterior`."""
    return posterior(net, None, None, shape=(int(batch), *image_shape), **kwargs)


def default_device(net: Callable, y: Tensor | None) -> torch.device:
    """``y``'s device, else that of ``net``'s first parameter or buffer, else the CPU."""
    if y is not None:
        return y.device
    for tensors in ("parameters", "buffers"):
        first = next(iter(getattr(net, tensors, list)()), None)
        if first is not None:
            return first.device
    return torch.device("cpu")
