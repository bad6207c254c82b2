"""The analytic reference itself: closed-form posterior and exact denoiser against naive formulas."""

import torch
from gaussian_problems import IMAGE_SHAPE, DenseOperator, N, gaussian_problem

from invfussion import sampling

F64 = torch.float64


def _joint_conditional_mean(mean, cov, G, obs, noise_var):
    """``E[x | G x + noise = obs]`` by the textbook formula with an invertible innovation matrix."""
    S = G @ cov @ G.T + torch.diag(noise_var)
    return mean + cov @ G.T @ torch.linalg.solve(S, obs - G @ mean)


def test_closed_form_posterior_matches_textbook_and_noiseless_limit():
    _, mean, cov, op, y = gaussian_problem(noise_std=0.1)
    A = sampling.dense_matrix(op)[0]
    post_mean, post_cov = sampling.gaussian_posterior(mean, cov, A, y[0], 0.1)
    S = A @ cov @ A.T + 0.01 * torch.eye(A.shape[0], dtype=F64)
    gain = cov @ A.T @ torch.linalg.inv(S)
    assert torch.allclose(post_mean, mean + gain @ (y[0].double() - A @ mean), atol=1e-10)
    assert torch.allclose(post_cov, cov - gain @ A @ cov, atol=1e-10)
    assert torch.linalg.eigvalsh(post_cov).min() > 0

    # Noiseless with dependent rows: the innovation matrix is singular; the pseudo-inverse gives the
    # limit σ_y → 0 of the regular formula, consistency A m = y, and no variance along A's rows.
    x = torch.randn(N, generator=torch.Generator().manual_seed(3), dtype=F64)
    y0 = A @ x
    m0, c0 = sampling.gaussian_posterior(mean, cov, A, y0, 0.0)
    m_eps, c_eps = sampling.gaussian_posterior(mean, cov, A, y0, 1e-5)
    assert torch.allclose(m0, m_eps, atol=1e-6) and torch.allclose(c0, c_eps, atol=1e-6)
    assert torch.allclose(A @ m0, y0, atol=1e-9)
    assert (A @ c0 @ A.T).abs().max() < 1e-9


def test_batched_closed_form_equals_loop():
    g = torch.Generator().manual_seed(0)
    _, mean, cov, _, _ = gaussian_problem()
    A = torch.randn(3, 5, N, generator=g, dtype=F64)
    y = torch.randn(3, 5, generator=g, dtype=F64)
    sigma_y = torch.tensor([0.1, 0.5, 0.0], dtype=F64)
    means, covs = sampling.gaussian_posterior(mean, cov, A, y, sigma_y)
    for b in range(3):
        m, c = sampling.gaussian_posterior(mean, cov, A[b], y[b], float(sigma_y[b]))
        assert torch.allclose(means[b], m, atol=1e-10) and torch.allclose(covs[b], c, atol=1e-10)


def test_denoiser_matches_stacked_observation_formula_per_example():
    net, mean, cov, _, _ = gaussian_problem()
    g = torch.Generator().manual_seed(1)
    A = torch.randn(5, 6, N, generator=g, dtype=F64)
    A[2, 4:] = 0  # zero-padded rows
    op = DenseOperator(A, IMAGE_SHAPE, noise_std=0.05)
    x = torch.randn(5, *IMAGE_SHAPE, generator=g, dtype=F64)
    y = op.measure(x, seed=1)
    sigma = torch.tensor([0.1, 3.0, 0.1, 50.0, 3.0], dtype=F64)
    x_noisy = x + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g, dtype=F64)
    out = net(x_noisy, sigma, op, y)
    assert out.shape == x.shape and out.dtype == F64
    for b in range(5):
        G = torch.cat([torch.eye(N, dtype=F64), A[b]])
        obs = torch.cat([x_noisy[b].reshape(-1), y[b]])
        noise_var = torch.cat(
            [torch.full((N,), float(sigma[b]) ** 2), torch.full((6,), 0.05**2)]
        ).to(F64)
        expected = _joint_conditional_mean(mean, cov, G, obs, noise_var)
        assert torch.allclose(out[b].reshape(-1), expected, atol=1e-7)


def test_denoiser_without_operator_is_prior_denoiser_and_zero_operator():
    net, mean, cov, _, _ = gaussian_problem()
    x_noisy = torch.randn(4, *IMAGE_SHAPE, dtype=F64)
    sigma = torch.full((4,), 0.7, dtype=F64)
    expected = mean + (x_noisy.reshape(4, -1) - mean) @ torch.linalg.solve(
        cov + 0.49 * torch.eye(N, dtype=F64), cov
    )
    assert torch.allclose(net(x_noisy, sigma).reshape(4, -1), expected, atol=1e-10)
    zero = DenseOperator(torch.zeros(4, 3, N, dtype=F64), IMAGE_SHAPE)
    assert torch.allclose(
        net(x_noisy, sigma, zero, torch.zeros(4, 3, dtype=F64)), net(x_noisy, sigma), atol=1e-12
    )
    assert (
        net(x_noisy.float(), 0.7).dtype == torch.float32
    )  # keeps the input dtype; scalar σ accepted


def test_denoiser_at_zero_noise_returns_the_input_for_a_full_rank_prior():
    net, _, _, _, _ = gaussian_problem()
    x = torch.randn(3, *IMAGE_SHAPE, dtype=F64)
    assert torch.allclose(net(x, torch.zeros(3, dtype=F64)), x, atol=1e-10)


def test_shape_mismatch_is_a_clear_error():
    _, mean, cov, _, _ = gaussian_problem()
    try:
        sampling.GaussianDenoiser(mean, cov, (1, 5, 5))
    except ValueError as error:
        assert "C·H·W" in str(error)
    else:
        raise AssertionError("expected ValueError")
