"""EDM samplers on a Gaussian prior with its exact denoiser."""

import pytest
import torch
from gaussian_problems import IMAGE_SHAPE, DenseOperator, N, gaussian_problem

from invfussion import sampling, seeding

F64 = torch.float64


def _posterior_moments(noise_std):
    net, mean, cov, op, y = gaussian_problem(noise_std=noise_std)
    post_mean, post_cov = sampling.gaussian_posterior(
        mean, cov, sampling.dense_matrix(op)[0], y[0], noise_std
    )
    return net, op, y, post_mean, post_cov


def _ideal_ode_map(x_T, post_mean, post_cov, sigma_max):
    """The exact probability-flow ODE from σ_max to 0 for a Gaussian: ``m + C^½ (C + σ²)^-½ (x_T − m)``."""
    v, V = torch.linalg.eigh(post_cov)
    S = V @ torch.diag((v.clamp_min(0) / (v.clamp_min(0) + sigma_max**2)).sqrt()) @ V.T
    return post_mean + (x_T - post_mean) @ S.T


@pytest.mark.parametrize("noise_std", [0.1, 0.0])
def test_heun_reproduces_closed_form_posterior_moments(noise_std):
    net, op, y, post_mean, post_cov = _posterior_moments(noise_std)
    batch = 4000
    samples = sampling.posterior(net, op.repeat(batch), y.expand(batch, -1), seed=7)
    flat = samples.reshape(batch, -1).double()
    # Mean: Mahalanobis distance of the sample mean (χ² with rank(C) dof, ≤ 16; P(χ²_16 > 50) ≈ 2e-5;
    # it also absorbs the O(σ_data/σ_max) bias of starting from N(0, σ_max²) instead of N(m, C + σ_max²)).
    error = flat.mean(0) - post_mean
    chi2 = error @ torch.linalg.pinv(post_cov / batch, hermitian=True, rtol=1e-8) @ error
    assert chi2 < 50
    # Covariance: the sampling error of a 4000-sample covariance is ≈ 4.4% here.
    assert (torch.cov(flat.T) - post_cov).norm() / post_cov.norm() < 0.12
    if noise_std == 0:
        A = sampling.dense_matrix(op)[0]
        assert (flat @ A.T - y.double()).abs().max() < 1e-4  # noiseless: every sample is consistent


@pytest.mark.parametrize("solver, order", [("heun", 2), ("dpmpp2m", 2), ("euler", 1)])
def test_each_sample_follows_the_exact_ode_with_the_solvers_order(solver, order):
    net, op, y, post_mean, post_cov = _posterior_moments(0.1)
    batch = 32
    x_T = seeding.randn(0, batch, (N,), "sample", dtype=F64) * 80.0
    ideal = _ideal_ode_map(x_T, post_mean, post_cov, 80.0)
    errors = []
    for steps in (32, 64):
        samples = sampling.posterior(
            net, op.repeat(batch), y.expand(batch, -1), steps=steps, solver=solver
        )
        errors.append(
            (
                (samples.reshape(batch, -1).double() - ideal).norm(dim=1)
                / (ideal - post_mean).norm(dim=1)
            ).max()
        )
    assert errors[0] < (0.03 if order == 2 else 0.1)
    ratio = errors[0] / errors[1]  # halving the step divides the error by 2^order
    assert (3.0 < ratio < 6.0) if order == 2 else (1.6 < ratio < 2.6)


def test_churn_keeps_the_posterior():
    net, op, y, post_mean, post_cov = _posterior_moments(0.1)
    batch = 2000  # churn adds discretisation error (variance +15% at 24 steps): use 64 steps
    samples = sampling.posterior(
        net,
        op.repeat(batch),
        y.expand(batch, -1),
        steps=64,
        churn=10.0,
        s_min=0.05,
        s_max=50.0,
        seed=3,
    )
    flat = samples.reshape(batch, -1).double()
    error = flat.mean(0) - post_mean
    assert error @ torch.linalg.solve(post_cov / batch, error) < 50
    assert (torch.cov(flat.T) - post_cov).norm() / post_cov.norm() < 0.15
    deterministic = sampling.posterior(net, op.repeat(4), y.expand(4, -1), steps=64, seed=3)
    assert not torch.allclose(samples[:4], deterministic)


def test_unconditional_samples_the_prior():
    net, mean, cov, _, _ = gaussian_problem()
    batch = 3000
    flat = (
        sampling.unconditional(net, batch, IMAGE_SHAPE, solver="dpmpp2m", seed=1)
        .reshape(batch, -1)
        .double()
    )
    error = flat.mean(0) - mean
    assert error @ torch.linalg.solve(cov / batch, error) < 50
    assert (torch.cov(flat.T) - cov).norm() / cov.norm() < 0.12


def test_sample_is_independent_of_the_batch():
    net, _, _, _, _ = gaussian_problem()
    g = torch.Generator().manual_seed(2)
    op = DenseOperator(torch.randn(8, 6, N, generator=g, dtype=F64), IMAGE_SHAPE, noise_std=0.1)
    y = op.measure(torch.randn(8, *IMAGE_SHAPE, generator=g), seed=0)
    for solver, churn in (("heun", 5.0), ("dpmpp2m", 0.0)):
        batched = sampling.posterior(net, op, y, steps=8, solver=solver, churn=churn, seed=11)
        single_op = DenseOperator(op.matrix[3:4], IMAGE_SHAPE, noise_std=0.1)
        single = sampling.posterior(
            net, single_op, y[3:4], steps=8, solver=solver, churn=churn, seed=11, indices=[3]
        )
        assert torch.allclose(single, batched[3:4], atol=1e-5)
        assert not torch.allclose(batched[2], batched[3])


def test_num_samples_stacks_distinct_draws_per_example():
    net, _, _, op, y = gaussian_problem()
    out = sampling.posterior(net, op.repeat(2), y.expand(2, -1), steps=4, num_samples=3)
    assert out.shape == (2, 3, *IMAGE_SHAPE)
    assert not torch.allclose(out[0, 0], out[0, 1])
    again = sampling.posterior(net, op.repeat(1), y, steps=4, num_samples=3, indices=[1])
    assert torch.allclose(again[0], out[1], atol=1e-5)


def test_cfg_with_identical_branches_is_the_plain_sample():
    net, _, _, op, y = gaussian_problem()
    counter = sampling.NFECounter(net)
    labels = torch.zeros(2, dtype=torch.long)
    plain = sampling.posterior(net, op.repeat(2), y.expand(2, -1), steps=4, class_labels=labels)
    guided = sampling.posterior(
        counter, op.repeat(2), y.expand(2, -1), steps=4, class_labels=labels, cfg=2.0
    )
    assert torch.allclose(plain, guided) and counter.nfe == 2 * 7


def test_karras_schedule():
    sigmas = sampling.karras_sigmas(32)
    assert sigmas.shape == (33,) and sigmas[-1] == 0
    assert torch.isclose(sigmas[0], torch.tensor(80.0, dtype=F64)) and torch.isclose(
        sigmas[31], torch.tensor(0.002, dtype=F64)
    )
    assert torch.all(sigmas[1:] < sigmas[:-1])
    ramp = sigmas[:32] ** (1 / 7)  # linear in σ^(1/ρ)
    assert torch.allclose(ramp[1:] - ramp[:-1], (ramp[1] - ramp[0]).expand(31), atol=1e-12)


def test_bad_arguments_are_clear_errors():
    net, _, _, op, y = gaussian_problem()
    cases = [
        ({"solver": "rk4"}, "unknown solver"),
        ({"solver": "dpmpp2m", "churn": 1.0}, "churn"),
        ({"cfg": 2.0}, "needs a class label"),
        ({"cfg": -1.0, "class_labels": torch.zeros(1, dtype=torch.long)}, "finite number ≥ 0"),
        ({"cfg": float("nan"), "class_labels": torch.zeros(1, dtype=torch.long)}, "finite number ≥ 0"),
        ({"steps": 0}, "steps"),
        ({"indices": [0, 1]}, "indices"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            sampling.posterior(net, op, y, **kwargs)
    with pytest.raises(ValueError, match="both op and y"):
        sampling.posterior(net, op, None)
    with pytest.raises(ValueError, match="shape"):
        sampling.posterior(net, None, None)
