"""The linear-MMSE floor against the closed-form Gaussian posterior mean, its two solvers, the
prior fit, and the posterior mean of n samples against the exact Gaussian posterior."""

from __future__ import annotations

import importlib

import pytest
import torch
from gaussian_problems import gaussian_problem

from invfussion import degradations as deg
from invfussion import sampling

F64 = torch.float64
# `sampling.lmmse` is the function; the module holds DENSE_LIMIT and training_prior
lmmse_module = importlib.import_module("invfussion.sampling.lmmse")
SHAPE = (1, 8, 8)
N = 64
SPECS = ["matrix:max_rows=20", "motion-blur", "sr", "inpaint-patches", "outpaint-box", "none"]


def random_prior(seed: int = 0, floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean ``(n,)`` and a singular covariance ``(n, n)``: rank 40, one pixel constant."""
    g = torch.Generator().manual_seed(seed)
    root = torch.randn(N, 40, generator=g, dtype=F64) / 40**0.5
    root[5] = 0  # a pixel without variance, like MNIST's border
    cov = 0.2 * root @ root.T + floor * torch.eye(N, dtype=F64)
    return 0.3 * torch.randn(N, generator=g, dtype=F64), cov


def with_noise(spec: str, noise: float) -> str:
    return spec if not noise else f"{spec}{',' if ':' in spec else ':'}noise={noise}"


def operators(spec: str, noise: float) -> deg.Operator:
    if spec == "mixed":
        return deg.Mixture([with_noise(s, noise) for s in SPECS]).sample(8, SHAPE, seed=1)
    return deg.from_spec(with_noise(spec, noise), SHAPE, batch=4, seed=1)


def measure(mean, cov, op, seed=2):
    g = torch.Generator().manual_seed(seed)
    root = torch.linalg.cholesky(cov + 1e-12 * torch.eye(N, dtype=F64))
    x = mean + torch.randn(op.batch_size, N, generator=g, dtype=F64) @ root.T
    return op.measure(x.view(-1, *SHAPE), seed=seed)


@pytest.mark.parametrize("noise", [0.0, 0.1])
@pytest.mark.parametrize("spec", [*SPECS, "mixed"])
def test_lmmse_is_the_gaussian_posterior_mean(spec, noise):
    mean, cov = random_prior()
    op = operators(spec, noise)
    y = measure(mean, cov, op)
    prior = sampling.GaussianPrior.from_covariance(mean.view(SHAPE), cov)
    estimate = sampling.lmmse(prior, op, y)
    expected, _ = sampling.gaussian_posterior(mean, cov, sampling.dense_matrix(op), y, op.noise_std)
    assert estimate.shape == (op.batch_size, *SHAPE) and estimate.dtype == F64
    torch.testing.assert_close(estimate.flatten(1), expected, rtol=0, atol=1e-6)
    # Padded coordinates are ignored, whatever they hold.
    garbage = y + 5.0 * (~op.measurement_mask())
    torch.testing.assert_close(sampling.lmmse(prior, op, garbage), estimate, rtol=0, atol=1e-12)


def test_lmmse_with_dependent_rows_and_no_noise_is_exact_and_consistent(dense_operator):
    """Repeated/dependent rows at σ_y = 0: a singular innovation matrix, handled exactly."""
    _, mean, cov, op, y = gaussian_problem(noise_std=0.0)
    prior = sampling.GaussianPrior.from_covariance(mean.view(op.image_shape), cov)
    estimate = sampling.lmmse(prior, op, y.double())
    A = sampling.dense_matrix(op)[0]
    expected, _ = sampling.gaussian_posterior(mean, cov, A, y[0], 0.0)
    torch.testing.assert_close(estimate.flatten(), expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(A @ estimate.flatten(), y[0].double(), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "noise"), [("matrix:max_rows=20", 0.1), ("inpaint-patches", 0.0), ("mixed", 0.05)]
)
def test_conjugate_gradients_equal_the_dense_solver(spec, noise):
    """Also with a low-rank + isotropic prior (the large-image representation)."""
    mean, cov = random_prior(floor=0.01)
    op = operators(spec, noise)
    y = measure(mean, cov, op)
    dense_prior = sampling.GaussianPrior.from_covariance(mean.view(SHAPE), cov)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    top, rest = eigenvectors[:, -40:].T, eigenvalues[-40:] - 0.01
    low_rank = sampling.GaussianPrior(mean.view(SHAPE), top, rest, 0.01)
    for prior in (dense_prior, low_rank):
        dense = sampling.lmmse(prior, op, y, solver="dense")
        cg = sampling.lmmse(prior, op, y, solver="cg", rtol=1e-12)
        torch.testing.assert_close(cg, dense, rtol=0, atol=1e-6)
    same = sampling.lmmse(low_rank, op, y, solver="dense")
    torch.testing.assert_close(same, sampling.lmmse(dense_prior, op, y), rtol=0, atol=1e-9)


def test_float32_measurements_give_float32_estimates():
    mean, cov = random_prior()
    op = operators("motion-blur", 0.0)
    y = measure(mean, cov, op)
    prior = sampling.GaussianPrior.from_covariance(mean.view(SHAPE), cov)
    estimate = sampling.lmmse(prior, op, y.float())
    assert estimate.dtype == torch.float32
    torch.testing.assert_close(estimate.double(), sampling.lmmse(prior, op, y), rtol=0, atol=1e-4)


def test_fit_is_the_sample_mean_and_covariance():
    images = torch.randn(300, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=F64)
    images = images * torch.linspace(0.1, 2, N, dtype=F64).view(SHAPE)
    prior = sampling.GaussianPrior.fit(images)
    torch.testing.assert_close(prior.mean, images.mean(0))
    torch.testing.assert_close(prior.covariance, torch.cov(images.flatten(1).T), rtol=0, atol=1e-12)
    v = torch.randn(3, N, dtype=F64)
    torch.testing.assert_close(prior.cov_apply(v), v @ prior.covariance, rtol=0, atol=1e-12)


def test_fit_above_the_dense_limit_is_probabilistic_pca(monkeypatch):
    """Top-k eigenvalues of the sample covariance kept exactly; the rest averaged into the floor."""
    monkeypatch.setattr(lmmse_module, "DENSE_LIMIT", N - 1)
    g = torch.Generator().manual_seed(0)
    loadings = torch.randn(6, N, generator=g, dtype=F64)
    images = (torch.randn(500, 6, generator=g, dtype=F64) * 3) @ loadings
    images = (images + 0.1 * torch.randn(500, N, generator=g, dtype=F64)).view(-1, *SHAPE)
    prior = sampling.GaussianPrior.fit(images, rank=6)
    sample = torch.linalg.eigvalsh(torch.cov(images.flatten(1).T)).flip(0)
    expected = torch.cat([sample[:6], torch.full((N - 6,), float(sample[6:].mean()), dtype=F64)])
    fitted = torch.linalg.eigvalsh(prior.covariance).flip(0)
    torch.testing.assert_close(fitted, expected, rtol=1e-6, atol=1e-9)
    assert prior.components.shape == (6, N)


def test_training_prior_is_the_embedded_training_split_and_cached():
    from invfussion.data import load_mnist

    prior = lmmse_module.training_prior("mnist", (1, 32, 32))
    assert lmmse_module.training_prior("mnist", (1, 32, 32)) is prior
    torch.testing.assert_close(prior.mean, load_mnist("train")[0].double().mean(0))


def test_bad_inputs_are_clear_errors():
    mean, cov = random_prior()
    prior = sampling.GaussianPrior.from_covariance(mean.view(SHAPE), cov)
    op = operators("sr", 0.0)
    with pytest.raises(ValueError, match="prior is on images"):
        sampling.lmmse(prior, deg.from_spec("sr", (1, 16, 16), batch=4), torch.zeros(4, 16))
    with pytest.raises(ValueError, match="unknown lmmse solver"):
        sampling.lmmse(prior, op, torch.zeros(4, op.measurement_size), solver="lu")
    with pytest.raises(ValueError, match="y must have shape"):
        sampling.lmmse(prior, op, torch.zeros(3, op.measurement_size))


# -- the mean of n posterior samples --------------------------------------------------------------


def test_posterior_mean_approaches_the_closed_form_mean_as_n_grows():
    """Mahalanobis error of the n-sample mean: n·eᵀC⁺e ~ χ² with rank(C) ≤ 16 dof (P(χ²_16 > 50)
    ≈ 2e-5), so the tolerance on e shrinks like 1/√n."""
    net, mean, cov, op, y = gaussian_problem(noise_std=0.1)
    A = sampling.dense_matrix(op)[0]
    post_mean, post_cov = sampling.gaussian_posterior(mean, cov, A, y[0], 0.1)
    precision = torch.linalg.pinv(post_cov, hermitian=True, rtol=1e-8)
    batch = 2
    for n in (8, 64, 512):
        ops, ys = op.repeat(batch), y.expand(batch, -1)
        estimate = sampling.posterior_mean(net, ops, ys, n, seed=n, steps=16)
        error = estimate.reshape(batch, -1).double() - post_mean
        chi2 = n * torch.einsum("bi,ij,bj->b", error, precision, error)
        assert (chi2 < 50).all(), (n, chi2)
    samples = sampling.posterior(net, op, y, num_samples=4, seed=3, steps=8)
    mean_of_4 = sampling.posterior_mean(net, op, y, 4, seed=3, steps=8)
    torch.testing.assert_close(mean_of_4, samples.mean(1))
    with pytest.raises(ValueError, match="n ≥ 1"):
        sampling.posterior_mean(net, op, y, 0)
