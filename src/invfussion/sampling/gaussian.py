"""Exact denoiser and closed-form posterior for a Gaussian prior: the analytic test reference.

Prior ``x ~ N(μ, Σ)`` on ``R^n`` (images of shape ``(C, H, W)``, ``n = C·H·W``, flattened in
C-order). Observations: the noisy image ``x_σ = x + σ ε`` and the measurement
``y = A x + σ_y η`` (``ε, η`` standard normal). Everything is computed in float64.

- :func:`gaussian_posterior` conditions the prior on ``y`` alone: the mean and covariance of
  ``p(x | y)``, the target of posterior sampling.
- :class:`GaussianDenoiser` returns ``E[x | x_σ, y]`` with the network's call signature, so any
  sampler run on it must reproduce :func:`gaussian_posterior` (up to its discretisation error).

Conditioning uses the pseudo-inverse of the innovation covariance ``A Σ Aᵀ + σ_y² I``, which is
exact for jointly Gaussian variables even when it is singular (noiseless measurements,
rank-deficient ``A``, or zero rows from measurement padding: a zero row with ``y = 0`` carries no
information whatever ``σ_y``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..degradations.base import Operator

PINV_RTOL = 1e-10  # relative eigenvalue cut-off of the innovation covariance (float64)


def measurement_gain(cov: Tensor, A: Tensor, sigma_y: Tensor | float) -> tuple[Tensor, Tensor]:
    """The Kalman gain ``Σ Aᵀ (A Σ Aᵀ + σ_y² I)⁺`` ``(..., n, M)`` and ``Σ Aᵀ`` ``(..., n, M)``.

    Args:
        cov: ``(..., n, n)``; A: ``(..., M, n)``; sigma_y: scalar or ``(...)`` (float64 maths).
    """
    sigma_y = torch.as_tensor(sigma_y, dtype=torch.float64, device=cov.device)
    cov_At = cov @ A.transpose(-1, -2)
    eye = torch.eye(A.shape[-2], dtype=torch.float64, device=cov.device)
    innovation = A @ cov_At + sigma_y[..., None, None] ** 2 * eye
    return cov_At @ torch.linalg.pinv(innovation, rtol=PINV_RTOL, hermitian=True), cov_At


def condition_on_measurement(
    mean: Tensor, cov: Tensor, A: Tensor, y: Tensor, sigma_y: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Condition ``x ~ N(mean, cov)`` on ``y = A x + σ_y η`` (batched, float64).

    Args:
        mean: ``(..., n)``; cov: ``(..., n, n)``; A: ``(..., M, n)``; y: ``(..., M)``;
        sigma_y: scalar or ``(...)`` (leading dims broadcast).

    Returns:
        posterior mean ``(..., n)`` and covariance ``(..., n, n)`` (symmetrised).
    """
    gain, cov_At = measurement_gain(cov, A, sigma_y)
    residual = y - (A @ mean.unsqueeze(-1)).squeeze(-1)
    post_mean = mean + (gain @ residual.unsqueeze(-1)).squeeze(-1)
    post_cov = cov - gain @ cov_At.transpose(-1, -2)
    return post_mean, 0.5 * (post_cov + post_cov.transpose(-1, -2))


def gaussian_posterior(
    mean: Tensor, cov: Tensor, A_dense: Tensor, y: Tensor, sigma_y: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Mean and covariance of ``p(x | y)`` for ``x ~ N(mean, cov)``, ``y = A x + σ_y η``.

    Args:
        mean: ``(n,)``; cov: ``(n, n)``; A_dense: ``(M, n)`` or ``(B, M, n)``;
        y: ``(M,)`` or ``(B, M)``; sigma_y: float or ``(B,)``.

    Returns:
        ``(post_mean, post_cov)``: ``(n,)``, ``(n, n)`` — or ``(B, n)``, ``(B, n, n)`` when batched —
        in float64.
    """
    f64 = {"dtype": torch.float64}
    return condition_on_measurement(
        mean.to(**f64), cov.to(**f64), A_dense.to(**f64), y.to(**f64), sigma_y
    )


def dense_matrix(op: Operator) -> Tensor:
    """The matrices of an operator batch, ``(B, M, n)`` in float64 (``op.A`` on the identity basis)."""
    n = 1
    for size in op.image_shape:
        n *= size
    basis = torch.eye(n, dtype=torch.float64, device=op.device).reshape(1, n, *op.image_shape)
    columns = op.A(basis.expand(op.batch_size, -1, -1, -1, -1).contiguous())  # (B, n, M)
    return columns.transpose(1, 2).contiguous()


class GaussianDenoiser(torch.nn.Module):
    """The exact posterior-mean denoiser of a Gaussian prior, with the network's call signature.

    ``net(x_noisy, sigma, op=None, y=None, class_labels=None)`` returns ``E[x | x_σ, y]``:
    ``x_noisy: (B, C, H, W)``, ``sigma: (B,)`` or scalar, ``op`` a batch of ``B`` operators (or
    ``None``: no measurement), ``y: (B, M)``. ``class_labels`` is accepted and ignored (the prior
    has no classes). The result has ``x_noisy``'s dtype; the maths runs in float64.

    Args:
        mean: ``(n,)`` prior mean; cov: ``(n, n)`` prior covariance (symmetric PSD, may be
        singular); image_shape: ``(C, H, W)`` with ``C·H·W = n``.
    """

    def __init__(self, mean: Tensor, cov: Tensor, image_shape: tuple[int, int, int]):
        super().__init__()
        n = mean.numel()
        self.image_shape = tuple(int(s) for s in image_shape)
        if (
            cov.shape != (n, n)
            or n != self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        ):
            raise ValueError(
                f"mean {tuple(mean.shape)}, cov {tuple(cov.shape)} and image_shape {self.image_shape} "
                "disagree; pass mean (n,), cov (n, n) with n = C·H·W."
            )
        cov = cov.to(torch.float64)
        eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (cov + cov.T))
        self.register_buffer("mean", mean.to(torch.float64).reshape(n))
        self.register_buffer("cov", cov)
        self.register_buffer("eigenvalues", eigenvalues.clamp_min(0.0))
        self.register_buffer("eigenvectors", eigenvectors)
        self._dense_cache: tuple[Operator, tuple[Tensor, Tensor, Tensor]] | None = None

    def forward(
        self,
        x_noisy: Tensor,
        sigma: Tensor | float,
        op: Operator | None = None,
        y: Tensor | None = None,
        class_labels: Tensor | None = None,
    ) -> Tensor:
        batch = x_noisy.shape[0]
        x = x_noisy.reshape(batch, -1).to(torch.float64)
        sigma = (
            torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1).expand(batch)
        )
        # Condition on x_σ in the prior's eigenbasis (stable for σ → 0 and singular Σ): gain
        # λ/(λ+σ²) and variance λσ²/(λ+σ²) per eigendirection, once per distinct σ.
        levels, level_of = torch.unique(sigma, return_inverse=True)
        lam, U = self.eigenvalues, self.eigenvectors
        var = levels[:, None] ** 2
        denominator = (lam + var).clamp_min(torch.finfo(torch.float64).tiny)  # (S, n)
        mean = self.mean + ((x - self.mean) @ U * (lam / denominator)[level_of]) @ U.T
        if op is None:
            return mean.reshape(x_noisy.shape).to(x_noisy.dtype)
        if y is None:
            raise ValueError(
                "an operator was given without its measurement y; pass y = op.measure(x)."
            )
        # Then on y, with one gain per distinct (σ, operator) pair in the batch.
        matrices, noise_stds, operator_of = self._distinct_operators(op)
        pairs, pair_of = torch.unique(level_of * len(matrices) + operator_of, return_inverse=True)
        level, operator = pairs // len(matrices), pairs % len(matrices)
        cov = (U * (lam * var / denominator)[level, None, :]) @ U.T  # (P, n, n)
        gain, _ = measurement_gain(cov, matrices[operator], noise_stds[operator])
        A = matrices[operator_of]
        residual = y.to(torch.float64) - (A @ mean.unsqueeze(-1)).squeeze(-1)
        mean = mean + (gain[pair_of] @ residual.unsqueeze(-1)).squeeze(-1)
        return mean.reshape(x_noisy.shape).to(x_noisy.dtype)

    def _distinct_operators(self, op: Operator) -> tuple[Tensor, Tensor, Tensor]:
        """``op``'s distinct dense matrices ``(Q, M, n)``, their ``σ_y`` ``(Q,)``, and which one
        each example uses ``(B,)``; cached for repeated calls with the same operator object."""
        if self._dense_cache is None or self._dense_cache[0] is not op:
            dense = dense_matrix(op)
            noise = op.noise_std.to(dense)
            key = torch.cat([dense.flatten(1), noise[:, None]], dim=1)
            distinct, operator_of = torch.unique(key, dim=0, return_inverse=True)
            self._dense_cache = (
                op,
                (distinct[:, :-1].reshape(-1, *dense.shape[1:]), distinct[:, -1], operator_of),
            )
        return self._dense_cache[1]
