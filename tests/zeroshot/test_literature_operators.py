"""Zero-shot samplers on the literature's operators (zero-padded Gaussian blur, CG-solved kernel
blur) against the exact posterior of an isotropic Gaussian prior on 8×8 images."""

from __future__ import annotations

import pytest
import torch

from invfussion import degradations as deg
from invfussion.sampling import GaussianDenoiser, dense_matrix, zeroshot
from invfussion.sampling.gaussian import gaussian_posterior

SHAPE, N, BATCH = (1, 8, 8), 64, 400


def problem(spec: str, sigma_y: float):
    """``N(μ, 0.25 I)`` prior; one operator (example 0 of ``spec``) repeated over the batch; one y."""
    mean = torch.linspace(-0.4, 0.4, N, dtype=torch.float64)
    prior = GaussianDenoiser(mean, 0.25 * torch.eye(N), SHAPE)
    one = deg.from_spec(f"{spec},noise={sigma_y}", SHAPE, indices=[0], seed=0)
    op = deg.from_spec(f"{spec},noise={sigma_y}", SHAPE, indices=[0] * BATCH, seed=0)
    x = mean + 0.5 * torch.randn(N, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = one.measure(x.float().reshape(1, *SHAPE), seed=1).expand(BATCH, -1).contiguous()
    A = dense_matrix(one)[0]
    exact, _ = gaussian_posterior(mean, 0.25 * torch.eye(N), A, y[0].double(), sigma_y)
    return prior, op, y, exact


@pytest.mark.parametrize("spec", ["gaussian-blur:size=5,std=1", "kernel-blur:boundary=same"])
def test_noiseless_ddnm_is_consistent_and_unbiased(spec):
    """Noiseless: DDNM's samples meet y (through A⁺ — closed form, or CG on the normal
    equations) and their mean is the exact posterior mean (range and null space decouple for an
    isotropic prior), to ≈ 4 standard errors per pixel."""
    prior, op, y, exact = problem(spec, 0.0)
    samples = zeroshot.ddnm(prior, op, y, steps=30)
    residual = (op.A(samples) - y).norm(dim=1) / y.norm(dim=1)
    assert float(residual.max()) < 2e-3
    torch.testing.assert_close(samples.reshape(BATCH, N).double().mean(0), exact, atol=0.1, rtol=0)


@pytest.mark.parametrize("spec", ["gaussian-blur:size=5,std=1", "kernel-blur:boundary=same"])
def test_noisy_pigdm_approaches_the_exact_posterior_mean(spec):
    """σ_y = 0.1: ΠGDM's guidance Aᵀ(r²AAᵀ + σ_y²I)⁻¹ (closed form / CG) makes its sample mean
    approach the exact posterior mean, closer than to the noiseless solution's."""
    prior, op, y, exact = problem(spec, 0.1)
    _, _, _, noiseless = problem(spec, 0.0)
    samples = zeroshot.pigdm(prior, op, y, steps=50).reshape(BATCH, N).double()
    error = float((samples.mean(0) - exact).norm())
    assert error < 0.3  # ≈ 0.2 is the standard error of 400 samples over 64 pixels
    assert error < float((samples.mean(0) - noiseless).norm())
