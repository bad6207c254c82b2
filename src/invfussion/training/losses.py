"""Training objectives. Each maps a network and one batch of training examples to a per-example
loss ``(B,)``; the loop averages it over the global batch.

- ``diffusion``: the EDM2 loss with a learned log-variance (paper Eq. 8, NOTES §2).
- ``mmse``: plain regression from a pure-noise input at a large σ (paper Eq. 9, NOTES §5), so the
  network is a direct degradation-aware MMSE estimator with the diffusion model's architecture.
- ``nppc``: reserved for the NPPC objective (issue 6); not implemented here.

All randomness (σ and ε) arrives in the batch, drawn by the loop from per-example streams, so a
loss never touches a global generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..degradations.base import Operator


@dataclass
class TrainingBatch:
    """The examples one process trains on in one step.

    Attributes:
        images: ``(B, C, H, W)`` clean images in [-1, 1].
        noise: ``(B, C, H, W)`` standard normal ε.
        sigma_normal: ``(B,)`` standard normal draw that sets each example's σ.
        op: the batch of degradation operators (``None``: the zero operator).
        y: ``(B, M)`` measurements ``A x + σ_y ε`` (``None`` with ``op=None``).
        class_labels: ``(B,)`` int64 class indices, the null class where dropped (or ``None``).
        aug_labels: ``(B, D)`` augmentation labels (or ``None``).
        indices: ``(B,)`` int64 global example indices (for logging and checks only).
    """

    images: Tensor
    noise: Tensor
    sigma_normal: Tensor
    op: Operator | None
    y: Tensor | None
    class_labels: Tensor | None
    aug_labels: Tensor | None
    indices: Tensor

    def to(self, device: torch.device, non_blocking: bool = False) -> TrainingBatch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return TrainingBatch(
            images=move(self.images),
            noise=move(self.noise),
            sigma_normal=move(self.sigma_normal),
            op=None if self.op is None else self.op.to(device),
            y=move(self.y),
            class_labels=move(self.class_labels),
            aug_labels=move(self.aug_labels),
            indices=self.indices,
        )


def _per_example_mse(denoised: Tensor, images: Tensor) -> Tensor:
    """``(B, C, H, W)`` pair → ``(B,)`` mean squared error per example, in float32."""
    return (denoised.float() - images.float()).square().flatten(1).mean(dim=1)


class DiffusionLoss:
    """EDM2 denoising loss with learned uncertainty (paper Eq. 8).

    ``ln σ = P_mean + P_std · n`` with ``n ~ N(0, 1)``; ``x_σ = x + σ ε``;
    ``loss = λ(σ) / e^{u} · mean‖D(x_σ; σ, y, A, c) − x‖² + u`` with
    ``λ(σ) = (σ² + σ_d²) / (σ σ_d)²`` and ``u`` the network's log-variance output.
    The squared error is averaged over pixels rather than summed: EDM2 adds ``u`` once per pixel,
    which is the same objective up to the constant factor ``C·H·W``.
    """

    def __init__(self, p_mean: float = -0.8, p_std: float = 1.6, sigma_data: float = 0.5):
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)

    def sigma(self, sigma_normal: Tensor) -> Tensor:
        """``(B,)`` standard normal → ``(B,)`` training noise levels."""
        return (self.p_mean + self.p_std * sigma_normal.float()).exp()

    def __call__(self, net: nn.Module, batch: TrainingBatch) -> Tensor:
        sigma = self.sigma(batch.sigma_normal)
        x_noisy = batch.images + sigma[:, None, None, None].to(batch.images.dtype) * batch.noise
        denoised, logvar = net(
            x_noisy, sigma, op=batch.op, y=batch.y, class_labels=batch.class_labels,
            aug_labels=batch.aug_labels, return_logvar=True,
        )
        logvar = logvar.float().reshape(sigma.shape[0])
        weight = (sigma.square() + self.sigma_data**2) / (sigma * self.sigma_data).square()
        return weight / logvar.exp() * _per_example_mse(denoised, batch.images) + logvar


class MMSELoss:
    """Direct MMSE regression (paper Eq. 9): ``mean‖D(σ ε; σ, y, A, c) − x‖²`` at a fixed large σ.

    The input is pure noise (no image), exactly what ``sampling.mmse`` feeds at inference, so the
    same architecture serves as a one-call MMSE estimator.
    """

    def __init__(self, sigma: float = 100.0):
        if not sigma > 0:
            raise ValueError(f"the MMSE objective needs a positive σ, got {sigma}; pass e.g. 100.")
        self.sigma_value = float(sigma)

    def __call__(self, net: nn.Module, batch: TrainingBatch) -> Tensor:
        batch_size = batch.images.shape[0]
        sigma = torch.full((batch_size,), self.sigma_value, device=batch.images.device)
        denoised = net(
            self.sigma_value * batch.noise, sigma, op=batch.op, y=batch.y,
            class_labels=batch.class_labels, aug_labels=batch.aug_labels,
        )
        return _per_example_mse(denoised, batch.images)


Objective = Callable[[nn.Module, TrainingBatch], Tensor]

# name -> factory taking the loss options. Issue 6 adds "nppc" here.
OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "diffusion": lambda p_mean, p_std, sigma_data, mmse_sigma: DiffusionLoss(p_mean, p_std, sigma_data),
    "mmse": lambda p_mean, p_std, sigma_data, mmse_sigma: MMSELoss(mmse_sigma),
}


def make_objective(
    name: str, p_mean: float = -0.8, p_std: float = 1.6, sigma_data: float = 0.5, mmse_sigma: float = 100.0
) -> Objective:
    """The objective called ``name`` (one of ``OBJECTIVES``); ``sigma_data`` must be the network's."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; pass one of {', '.join(sorted(OBJECTIVES))}.")
    return OBJECTIVES[name](p_mean=p_mean, p_std=p_std, sigma_data=sigma_data, mmse_sigma=mmse_sigma)
