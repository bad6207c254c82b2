"""Zero-shot samplers on a 16-pixel Gaussian prior with its exact denoiser and dense operators."""

from __future__ import annotations

import pytest
import torch

from invfussion.degradations.base import Operator
from invfussion.sampling import GaussianDenoiser, NFECounter, gaussian_posterior, zeroshot
from invfussion.sampling.zeroshot.common import effective_noise_std
from invfussion.sampling.zeroshot.pigdm import guided_estimate, likelihood_gradient

IMAGE_SHAPE = (1, 4, 4)
N = 16


class DenseOperator(Operator):
    """A batch of dense matrices ``(B, M, n)`` with their float64 pseudo-inverses."""

    def __init__(self, matrices: torch.Tensor, noise_std: float = 0.0):
        batch, m, _ = matrices.shape
        super().__init__(IMAGE_SHAPE, m, torch.full((batch,), float(noise_std)))
        self.matrices = matrices.to(torch.float64)
        self.pinvs = torch.linalg.pinv(self.matrices)

    def _apply(self, x):
        flat = x.flatten(2)
        return flat @ self.matrices.to(flat.dtype).transpose(1, 2)

    def _pinv(self, y):
        flat = y @ self.pinvs.to(y.dtype).transpose(1, 2)
        return flat.reshape(*y.shape[:2], *IMAGE_SHAPE)

    def _adjoint(self, y):
        return (y @ self.matrices.to(y.dtype)).reshape(*y.shape[:2], *IMAGE_SHAPE)

    def subset(self, rows: list[int]) -> "DenseOperator":
        return DenseOperator(self.matrices[rows], float(self.noise_std[0]))


def random_operator(batch: int, rows: int, noise_std: float = 0.0, seed: int = 0) -> DenseOperator:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, rows, N, generator=g, dtype=torch.float64)
    return DenseOperator(a / a.norm(dim=2, keepdim=True), noise_std)


@pytest.fixture
def prior() -> GaussianDenoiser:
    """``N(μ, Σ)`` with a random mean and a well-conditioned random covariance (scale ≈ 0.25)."""
    g = torch.Generator().manual_seed(1)
    mean = 0.3 * torch.randn(N, generator=g, dtype=torch.float64)
    root = torch.randn(N, N, generator=g, dtype=torch.float64) / N**0.5
    cov = 0.2 * root @ root.T + 0.05 * torch.eye(N, dtype=torch.float64)
    return GaussianDenoiser(mean, cov, IMAGE_SHAPE)


def sample_prior(prior: GaussianDenoiser, batch: int, seed: int) -> torch.Tensor:
    """Exact draws ``(batch, 1, 4, 4)`` from the toy prior."""
    g = torch.Generator().manual_seed(seed)
    root = prior.eigenvectors * prior.eigenvalues.sqrt()
    x = prior.mean + torch.randn(batch, N, generator=g, dtype=torch.float64) @ root.T
    return x.to(torch.float32).reshape(batch, *IMAGE_SHAPE)


@pytest.fixture
def problem(prior):
    """``make(batch, rows, noise_std) -> (op, x, y)``: prior draws and their measurements."""

    def make(batch: int = 8, rows: int = 8, noise_std: float = 0.0):
        op = random_operator(batch, rows, noise_std)
        x = sample_prior(prior, batch, seed=2)
        return op, x, op.measure(x, seed=3)

    return make


FAST = {
    "dps": dict(steps=40, zeta=0.5),  # the default step, chosen on 32×32 digits, overshoots this 16-pixel toy
    "ddrm": dict(steps=10),
    "ddnm": dict(steps=20),
    "pigdm": dict(steps=20),
    "daps": dict(steps=10, ode_steps=2, langevin_steps=20),
}
# Options that switch the measurement off, for "guided vs unguided" comparisons.
UNGUIDED = {"dps": dict(zeta=0.0), "pigdm": dict(guidance=0.0), "daps": dict(tau=1e6)}


def residual(op, x, y) -> torch.Tensor:
    """``‖y − A x‖`` per example, ``(B,)``."""
    return torch.linalg.vector_norm(y - op.A(x), dim=1)


def test_registry_and_default_budgets():
    assert set(zeroshot.METHODS) == {"dps", "ddrm", "ddnm", "pigdm", "daps"}
    defaults = {name: zeroshot.nfe(name) for name in zeroshot.METHODS}
    assert defaults == {"dps": 1000, "ddrm": 25, "ddnm": 100, "pigdm": 100, "daps": 1000}
    assert zeroshot.NEEDS_GRAD == {"dps", "pigdm"}
    with pytest.raises(ValueError, match="unknown zero-shot method"):
        zeroshot.nfe("ddpm")


@pytest.mark.parametrize("method", sorted(FAST))
@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_nfe_is_the_number_of_denoiser_calls(method, noise_std, prior, problem):
    op, _, y = problem(batch=3, noise_std=noise_std)
    counter = NFECounter(prior)
    out = zeroshot.METHODS[method](counter, op, y, **FAST[method])
    assert out.shape == (3, *IMAGE_SHAPE) and bool(out.isfinite().all())
    assert counter.nfe == zeroshot.nfe(method, **FAST[method])


@pytest.mark.parametrize("method", ["ddnm", "ddrm"])
def test_range_replacement_is_measurement_consistent_when_noiseless(method, prior, problem):
    op, _, y = problem(batch=8, rows=8)
    out = zeroshot.METHODS[method](prior, op, y, **FAST[method])
    assert bool((residual(op, out, y) <= 1e-4 * y.norm(dim=1)).all())


@pytest.mark.parametrize("method", sorted(UNGUIDED))
def test_guidance_reduces_the_residual(method, prior, problem):
    op, _, y = problem(batch=16, rows=8)
    fn = zeroshot.METHODS[method]
    guided = residual(op, fn(prior, op, y, **FAST[method]), y).mean()
    unguided = residual(op, fn(prior, op, y, **{**FAST[method], **UNGUIDED[method]}), y).mean()
    assert guided < 0.5 * unguided


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
@pytest.mark.parametrize("sigma", [0.05, 0.5, 20.0])
def test_pigdm_estimate_is_the_exact_conditional_mean_for_an_isotropic_prior(noise_std, sigma):
    """With ``Σ = σ_d² I``, ΠGDM's guided estimate equals ``E[x₀ | x_σ, y]`` (noisy or not)."""
    iso = GaussianDenoiser(0.1 * torch.ones(N), 0.25 * torch.eye(N), IMAGE_SHAPE)
    op = random_operator(4, 6, noise_std)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *IMAGE_SHAPE, generator=g) * (0.25 + sigma**2) ** 0.5
    y = op.measure(0.5 * torch.randn(4, *IMAGE_SHAPE, generator=g), seed=1)
    estimate = guided_estimate(iso, op, y, x, sigma, sigma_data=0.5)
    torch.testing.assert_close(
        estimate, iso(x, torch.full((4,), sigma), op=op, y=y), atol=2e-4, rtol=1e-4
    )


def test_pigdm_guidance_is_the_dense_noisy_solve_and_the_pseudo_inverse_when_noiseless():
    """``g = Aᵀ(r²AAᵀ + σ_y²I)⁻¹ r`` per example (σ_y = 0 → exactly ``A⁺r/r²``)."""
    op = random_operator(3, 6)
    residual = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma_y_sq = torch.tensor([0.0, 0.01, 1.0], dtype=torch.float64)
    g = likelihood_gradient(op, residual, 0.3, sigma_y_sq)
    gram = 0.3 * op.matrices @ op.matrices.transpose(1, 2) + sigma_y_sq[:, None, None] * torch.eye(6)
    dense = (op.matrices[1:].transpose(1, 2) @ torch.linalg.solve(gram[1:], residual[1:, :, None]))[..., 0]
    torch.testing.assert_close(g[1:].flatten(1), dense)
    assert torch.equal(g[0], op.pinv(residual)[0] / 0.3)


@pytest.mark.parametrize("method", sorted(FAST))
def test_sample_depends_only_on_seed_and_index(method, prior, problem):
    op, _, y = problem(batch=4, noise_std=0.1)
    fn = zeroshot.METHODS[method]
    batch = fn(prior, op, y, seed=7, **FAST[method])
    alone = fn(prior, op.subset([2]), y[2:3], seed=7, indices=[2], **FAST[method])
    torch.testing.assert_close(alone[0], batch[2], atol=1e-5, rtol=1e-5)
    other_seed = fn(prior, op, y, seed=8, **FAST[method])
    assert not torch.allclose(other_seed, batch)


@pytest.mark.parametrize("method", sorted(FAST))
def test_noisy_measurements_pull_towards_y(method, prior, problem):
    """σ_y = 0.1: samples stay finite and fit y much better than draws from the prior do."""
    op, _, y = problem(batch=16, rows=8, noise_std=0.1)
    out = zeroshot.METHODS[method](prior, op, y, **FAST[method])
    assert bool(out.isfinite().all())
    prior_draws = zeroshot.METHODS["ddnm"](prior, DenseOperator(op.matrices * 0), y * 0, steps=20)
    assert residual(op, out, y).mean() < 0.6 * residual(op, prior_draws, y).mean()


def test_effective_noise_std_of_scaled_masks():
    """``A = c·S`` (S selects pixels): the image-space noise is ``σ_y / c``, exactly whatever the
    probes (they are shared by both traces); 0 when noiseless."""
    select = torch.eye(N)[[0, 3, 5, 6, 9, 12]].expand(2, -1, -1)
    scale = torch.tensor([1.0, 4.0])[:, None, None]
    noisy = DenseOperator(select * scale, noise_std=0.2)
    for probes in (1, 16):
        est = effective_noise_std(noisy, seed=0, indices=[0, 1], probes=probes)
        torch.testing.assert_close(est, torch.tensor([0.2, 0.05]), rtol=1e-5, atol=0)
    assert bool((effective_noise_std(DenseOperator(select), 0, [0, 1]) == 0).all())


def test_effective_noise_std_is_the_rms_of_the_inverse_singular_values():
    """Singular values ``s = (1, 2, 4)``: ``σ_eff = σ_y·√(mean 1/s²)`` (Hutchinson, 2000 probes)."""
    rows = torch.linalg.qr(torch.randn(N, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0].T
    op = DenseOperator((torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)[:, None] * rows)[None], noise_std=0.1)
    expected = 0.1 * ((1 + 1 / 4 + 1 / 16) / 3) ** 0.5
    torch.testing.assert_close(effective_noise_std(op, 0, [0], probes=2000), torch.tensor([expected]), rtol=0.05, atol=0)


def test_bad_inputs_raise_clear_errors(prior, problem):
    op, _, y = problem(batch=2)
    with pytest.raises(ValueError, match="y must have shape"):
        zeroshot.ddnm(prior, op, y[:1])
    with pytest.raises(ValueError, match="one index per example"):
        zeroshot.ddnm(prior, op, y, indices=[0])
    with pytest.raises(ValueError, match="ode_sigma_min"):
        zeroshot.daps(prior, op, y, sigma_min=0.005)


def isotropic_posterior_problem(batch: int):
    """``N(μ, σ_d² I)`` prior, one 6×16 operator for the whole batch, one noiseless measurement."""
    mean = torch.linspace(-0.4, 0.4, N, dtype=torch.float64)
    iso = GaussianDenoiser(mean, 0.25 * torch.eye(N), IMAGE_SHAPE)
    op = DenseOperator(random_operator(1, 6).matrices.expand(batch, -1, -1))
    x = (
        mean + 0.5 * torch.randn(N, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ).float()
    y = op.A(x.reshape(1, *IMAGE_SHAPE).expand(batch, -1, -1, -1))
    post_mean, post_cov = gaussian_posterior(mean, 0.25 * torch.eye(N), op.matrices[0], y[0], 0.0)
    return iso, op, y, post_mean, post_cov


@pytest.mark.parametrize("method", ["ddnm", "ddrm"])
def test_sample_mean_is_the_exact_posterior_mean_for_an_isotropic_prior(method):
    """With ``Σ = σ_d² I`` range and null space decouple: noiseless DDNM/DDRM are unbiased."""
    iso, op, y, post_mean, _ = isotropic_posterior_problem(500)
    samples = zeroshot.METHODS[method](iso, op, y, steps=30).reshape(500, N).double()
    torch.testing.assert_close(samples.mean(0), post_mean, atol=0.09, rtol=0)  # ≈ 4 standard errors


def test_ddnm_sample_covariance_approaches_the_exact_posterior():
    """Range space: no variance (consistent); null space: the prior's σ_d² = 0.25, up to the
    ancestral steps' under-dispersion (≈ 8% at 100 steps, vanishing as steps grow)."""
    iso, op, y, _, post_cov = isotropic_posterior_problem(500)
    samples = zeroshot.ddnm(iso, op, y, steps=100).reshape(500, N).double()
    null_basis = torch.linalg.eigh(post_cov).eigenvectors[:, 6:]  # post_cov = 0.25·(I − A⁺A)
    null_var = torch.linalg.eigvalsh(null_basis.T @ samples.T.cov() @ null_basis)
    range_var = torch.linalg.eigvalsh(samples.T.cov()).abs()[:6]
    assert float(range_var.max()) < 1e-8
    assert 0.85 * 0.25 < float(null_var.mean()) < 1.05 * 0.25


# Budgets of the noisy posterior-mean test; its tolerances (‖sample mean − posterior mean‖ over
# 16 pixels; ≈ 0.05 is the standard error of 1000 samples). ΠGDM (exact guidance for this prior),
# DDRM (the isotropic range space is exact for equal singular values) and DAPS (the likelihood
# with σ_y) account for the noise; DPS and DDNM+ fit y like a noiseless measurement (as their
# authors' updates do), so their mean sits near the noiseless solution: loosely near the exact one.
NOISY_BUDGET = {
    "ddrm": dict(),
    "pigdm": dict(steps=50),
    "daps": dict(steps=50, ode_steps=2, langevin_steps=50),
    "dps": dict(steps=200),
    "ddnm": dict(steps=50),
}
NOISY_TOLERANCE = {"ddrm": 0.07, "pigdm": 0.07, "daps": 0.12, "dps": 0.2, "ddnm": 0.2}
NOISE_AWARE = {"ddrm", "pigdm", "daps"}


@pytest.mark.parametrize("method", sorted(NOISY_BUDGET))
def test_noisy_sample_mean_approaches_the_exact_posterior_mean(method):
    """``N(μ, σ_d²I)`` prior, 6 orthonormal rows, σ_y = 0.2: the mean of 1000 samples against
    the exact posterior mean (0.91 from the prior mean, 0.15 from the noiseless solution's)."""
    batch, sigma_y = 1000, 0.2
    mean = torch.linspace(-0.4, 0.4, N, dtype=torch.float64)
    iso = GaussianDenoiser(mean, 0.25 * torch.eye(N), IMAGE_SHAPE)
    rows = torch.linalg.qr(torch.randn(N, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0].T
    op = DenseOperator(rows.expand(batch, -1, -1), noise_std=sigma_y)
    x = mean + 0.5 * torch.randn(N, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = op.subset([0]).measure(x.float().reshape(1, *IMAGE_SHAPE), seed=1).expand(batch, -1)
    exact, _ = gaussian_posterior(mean, 0.25 * torch.eye(N), rows, y[0], sigma_y)
    noiseless, _ = gaussian_posterior(mean, 0.25 * torch.eye(N), rows, y[0], 0.0)
    samples = zeroshot.METHODS[method](iso, op, y.contiguous(), **NOISY_BUDGET[method]).reshape(batch, N)
    error = float((samples.double().mean(0) - exact).norm())
    assert error < NOISY_TOLERANCE[method]
    if method in NOISE_AWARE:
        assert error < float((samples.double().mean(0) - noiseless).norm())


def test_noisy_ddnm_reads_an_ill_conditioned_measurement_through_the_noise_aware_inverse(prior):
    """Singular values from 1 down to 1e-4 (a blur's range) and σ_y = 0.1: through the exact A⁺
    the correction would carry the noise amplified up to 10⁴-fold; through A⁺_σ the samples stay
    within the prior's scale of the truth."""
    batch = 32
    basis = torch.linalg.qr(torch.randn(N, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64))[0].T
    rows = torch.logspace(0, -4, 8, dtype=torch.float64)[:, None] * basis
    op = DenseOperator(rows.expand(batch, -1, -1).contiguous(), noise_std=0.1)
    x = sample_prior(prior, batch, seed=2)
    out = zeroshot.ddnm(prior, op, op.measure(x, seed=3), steps=20)
    assert float((out - x).square().mean().sqrt()) < 0.8  # 1.3 through the exact A⁺


def test_ddrm_starts_from_the_measurement_in_the_range_space(prior):
    """The authors' start: ``x_T = (I − P)σ_T ε + P(ȳ + σ_T ε)`` noiseless, so over many draws the
    range part of the first network input averages to ``ȳ = A⁺y`` and the null part to 0."""
    batch, sigma_max = 400, 0.5
    op = DenseOperator(random_operator(1, 6).matrices.expand(batch, -1, -1).contiguous())
    y = op.subset([0]).measure(sample_prior(prior, 1, seed=2), seed=3).expand(batch, -1).contiguous()
    inputs = []

    def recording(x, sigma):
        inputs.append(x)
        return prior(x, sigma)

    zeroshot.ddrm(recording, op, y, steps=3, sigma_max=sigma_max)
    start = inputs[0]
    range_part = op.pinv(op.A(start))
    tolerance = 4 * sigma_max / batch**0.5  # four standard errors per pixel
    torch.testing.assert_close(range_part.mean(0), op.pinv(y)[0], atol=tolerance, rtol=0)
    torch.testing.assert_close((start - range_part).mean(0), torch.zeros(IMAGE_SHAPE), atol=tolerance, rtol=0)
    assert abs(float(start.std()) - sigma_max) < 0.1 * sigma_max
