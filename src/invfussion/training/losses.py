"""Training objectives. Each maps a network and one batch of training examples to a per-example
loss ``(B,)``; the loop averages it over the global batch.

- ``diffusion``: the EDM2 loss with a learned log-variance (paper Eq. 8, NOTES §2); for a
  conditional model a share of the examples (``mmse_share``) is trained at the one-call MMSE end:
  pure noise at ``mmse_sigma``, exactly what ``sampling.mmse`` feeds at inference.
- ``mmse``: plain regression from a pure-noise input at a large σ (paper Eq. 9, NOTES §5), so the
  network is a direct degradation-aware MMSE estimator with the diffusion model's architecture.
- ``nppc``: the MMSE regression plus posterior principal components (NPPC, NOTES §5): the
  network's extra ``K`` directions learn the top-K principal components of ``p(x | y)``.

All randomness (σ and ε) arrives in the batch, drawn by the loop from per-example streams, so a
loss never touches a global generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..degradations.base import Operator
from ..sampling.nppc import gram_schmidt


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
        step: the 0-based training step the batch belongs to (for objectives with a ramp).
        share_draw: ``(B,)`` uniform [0, 1) per example; examples below the objective's
            ``mmse_share`` train the one-call MMSE end (``None``: none do).
    """

    images: Tensor
    noise: Tensor
    sigma_normal: Tensor
    op: Operator | None
    y: Tensor | None
    class_labels: Tensor | None
    aug_labels: Tensor | None
    indices: Tensor
    step: int = 0
    share_draw: Tensor | None = None

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
            share_draw=move(self.share_draw),
            step=self.step,
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

    The one-call MMSE end: with an operator in the batch, examples whose ``share_draw`` is below
    ``mmse_share`` get ``σ = mmse_sigma`` and the pure-noise input ``σ ε`` (no image), the input of
    ``sampling.mmse``. The log-normal alone puts about 1% of examples above σ = 20, so without
    this share the call that must return ``E[x | y]`` is barely trained.
    """

    def __init__(self, p_mean: float = -0.8, p_std: float = 1.6, sigma_data: float = 0.5,
                 mmse_share: float = 0.0, mmse_sigma: float = 100.0):
        if not 0.0 <= mmse_share <= 1.0 or not mmse_sigma > 0:
            raise ValueError(f"mmse_share must lie in [0, 1] and mmse_sigma be positive, got {mmse_share}, {mmse_sigma}.")
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)
        self.mmse_share, self.mmse_sigma = float(mmse_share), float(mmse_sigma)

    def sigma(self, sigma_normal: Tensor) -> Tensor:
        """``(B,)`` standard normal → ``(B,)`` training noise levels."""
        return (self.p_mean + self.p_std * sigma_normal.float()).exp()

    def __call__(self, net: nn.Module, batch: TrainingBatch) -> Tensor:
        sigma = self.sigma(batch.sigma_normal)
        x_noisy = batch.images + sigma[:, None, None, None].to(batch.images.dtype) * batch.noise
        if self.mmse_share > 0 and batch.op is not None and batch.share_draw is not None:
            at_end = batch.share_draw < self.mmse_share  # (B,)
            sigma = torch.where(at_end, self.mmse_sigma, sigma)
            x_noisy = torch.where(at_end[:, None, None, None], self.mmse_sigma * batch.noise, x_noisy)
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

    def estimate(self, net: nn.Module, batch: TrainingBatch, **outputs: bool):
        """The network's call on the pure-noise input ``σ ε`` (``outputs``: e.g. ``return_pcs``)."""
        sigma = torch.full((batch.images.shape[0],), self.sigma_value, device=batch.images.device)
        return net(
            self.sigma_value * batch.noise, sigma, op=batch.op, y=batch.y,
            class_labels=batch.class_labels, aug_labels=batch.aug_labels, **outputs,
        )

    def __call__(self, net: nn.Module, batch: TrainingBatch) -> Tensor:
        return _per_example_mse(self.estimate(net, batch), batch.images)


VARIANCE_FITS = ("absolute", "relative")


class NPPCLoss(MMSELoss):
    """MMSE regression plus NPPC (NOTES §5): a mean ``μ`` and ``K`` posterior principal components.

    The network is called like :class:`MMSELoss` (pure noise at a fixed large σ) with
    ``return_pcs=True``. With ``e = x − μ`` (``μ`` detached) and ``u, s = gram_schmidt(w)``, per
    example and averaged over the ``D = C·H·W`` pixels:

    - ``mse = ‖μ − x‖² / D`` (trains the mean, always on);
    - ``residual = (‖e‖² − Σ_k ⟨e, u_k⟩²) / D``: the error energy the directions miss (minimising
      it maximises the captured variance);
    - ``second_moment = Σ_k (s_k² − sg(⟨e, u_k⟩)²)² / D``: fits each predicted variance ``s_k²``
      to the variance along ``u_k`` (``sg``: stop-gradient, as the NPPC authors, so the fit moves
      the norms and never pulls a direction off the captured variance). Divided by ``D`` once,
      so its gradient on the norms is on the scale of ``residual``'s on the directions; divided
      by ``D²`` (our first version) it was ~1000× weaker at 32², and after 1,000 steps from the
      same model the predicted variances were 5.6–10.7× the measured ones on motion blur
      (2.6–4.0× with this form; the validation A/B in BENCHMARKS.md).

    ``loss = mse + r(t) · (variance_weight · residual + second_moment_weight · second_moment)``
    with the ramp ``r(t) = min(t / ramp_steps, 1)``, so the mean settles before the directions
    learn from its errors (the authors' weights: 1 and 0.1).

    That is ``variance_fit="absolute"``. The default, ``"relative"``, weighs each direction's fit
    by its own predicted variance:
    ``Σ_k ((s_k² − sg(⟨e, u_k⟩)²) / sg(s_k²))² / K``, times the batch's mean error energy per
    pixel ``sg(mean ‖e‖² / D)`` (a constant that keeps the term on ``mse``'s scale). The weight
    depends on ``y`` only, so the minimiser is still ``s_k² = E[⟨e, u_k⟩² | y]``, but examples
    with errors 100× smaller (noiseless stride-2 blur against noisy stride-8 blur) now pull as
    hard as the large ones: with the absolute form they barely register and their predicted
    variances stay at the level of the noisy examples. On validation digits, 1,000 steps from the
    absolute-fit model brought the predicted/measured variance ratio on stride-4 blur from
    1.8–3.4 to 0.87–1.04 and on stride-2 blur from 6.9–16 to 0.54–1.2, the captured error energy
    unchanged or higher (BENCHMARKS.md "NPPC on the test digits").
    """

    def __init__(self, sigma: float = 100.0, ramp_steps: int = 500, variance_weight: float = 1.0,
                 second_moment_weight: float = 0.1, variance_fit: str = "relative"):
        super().__init__(sigma)
        if ramp_steps < 0 or variance_weight < 0 or second_moment_weight < 0:
            raise ValueError("the NPPC objective needs non-negative ramp steps and weights.")
        if variance_fit not in VARIANCE_FITS:
            raise ValueError(f"unknown NPPC variance fit {variance_fit!r}; pass one of {', '.join(VARIANCE_FITS)}.")
        self.variance_fit = variance_fit
        self.ramp_steps = int(ramp_steps)
        self.variance_weight, self.second_moment_weight = float(variance_weight), float(second_moment_weight)

    def ramp(self, step: int) -> float:
        return 1.0 if self.ramp_steps == 0 else min(step / self.ramp_steps, 1.0)

    def __call__(self, net: nn.Module, batch: TrainingBatch) -> Tensor:
        mean, w = self.estimate(net, batch, return_pcs=True)
        mse = _per_example_mse(mean, batch.images)
        error = (batch.images.float() - mean.detach().float()).flatten(1)  # (B, D)
        directions, norms = gram_schmidt(w)
        along = torch.einsum("bkd,bd->bk", directions.flatten(2), error)  # ⟨e, u_k⟩: (B, K)
        d = error.shape[1]
        residual = (error.square().sum(1) - along.square().sum(1)) / d
        gap = norms.square() - along.detach().square()  # (B, K)
        if self.variance_fit == "absolute":
            second_moment = gap.square().sum(1) / d
        else:
            scale = error.square().mean().detach()
            second_moment = (gap / norms.detach().square().clamp_min(1e-3)).square().mean(1) * scale
        ramp = self.ramp(batch.step)
        return mse + ramp * (self.variance_weight * residual + self.second_moment_weight * second_moment)


Objective = Callable[[nn.Module, TrainingBatch], Tensor]

# name -> factory taking the loss options.
OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "diffusion": lambda p_mean, p_std, sigma_data, mmse_share, mmse_sigma, **_: DiffusionLoss(
        p_mean, p_std, sigma_data, mmse_share, mmse_sigma),
    "mmse": lambda mmse_sigma, **_: MMSELoss(mmse_sigma),
    "nppc": lambda mmse_sigma, nppc_ramp_steps, nppc_variance_fit, **_: NPPCLoss(
        mmse_sigma, nppc_ramp_steps, variance_fit=nppc_variance_fit),
}


def make_objective(
    name: str, p_mean: float = -0.8, p_std: float = 1.6, sigma_data: float = 0.5, mmse_sigma: float = 100.0,
    nppc_ramp_steps: int = 500, mmse_share: float = 0.0, nppc_variance_fit: str = "relative",
) -> Objective:
    """The objective called ``name`` (one of ``OBJECTIVES``); ``sigma_data`` must be the network's."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; pass one of {', '.join(sorted(OBJECTIVES))}.")
    return OBJECTIVES[name](p_mean=p_mean, p_std=p_std, sigma_data=sigma_data, mmse_sigma=mmse_sigma,
                            nppc_ramp_steps=nppc_ramp_steps, mmse_share=mmse_share,
                            nppc_variance_fit=nppc_variance_fit)
