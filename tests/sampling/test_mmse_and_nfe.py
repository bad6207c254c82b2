import torch
from gaussian_problems import IMAGE_SHAPE, gaussian_problem

from invfussion import sampling


def test_heun_32_steps_is_63_denoiser_calls_and_euler_dpm_one_per_step():
    net, _, _, op, y = gaussian_problem()
    for solver, expected in (("heun", 63), ("euler", 32), ("dpmpp2m", 32)):
        counter = sampling.NFECounter(net)
        sampling.posterior(counter, op, y, steps=32, solver=solver)
        assert counter.nfe == expected, solver
    counter.reset()
    sampling.posterior(counter, op, y, steps=8, churn=3.0)
    assert counter.nfe == 15


def test_counter_stands_in_for_the_network():
    net, _, _, op, y = gaussian_problem()
    counter = sampling.NFECounter(net)
    assert counter.image_shape == IMAGE_SHAPE  # attributes fall through
    x = torch.randn(1, *IMAGE_SHAPE)
    assert torch.equal(counter(x, torch.ones(1), op=op, y=y), net(x, torch.ones(1), op=op, y=y))


def test_mmse_of_the_exact_denoiser_is_the_posterior_mean():
    net, mean, cov, op, y = gaussian_problem()
    post_mean, _ = sampling.gaussian_posterior(mean, cov, sampling.dense_matrix(op)[0], y[0], 0.1)
    counter = sampling.NFECounter(net)
    estimate = sampling.mmse(counter, op, y).reshape(-1).double()
    assert counter.nfe == 1
    # At σ = 100 the pure-noise input still leaks O(√n·λ/σ) ≈ 0.05; the leak vanishes as σ grows.
    assert (estimate - post_mean).norm() < 0.1 * post_mean.norm()
    far = sampling.mmse(net, op, y, sigma=1e5).reshape(-1).double()
    assert (far - post_mean).norm() < 1e-4


def test_mmse_noise_is_per_example():
    net, _, _, op, y = gaussian_problem()
    batch = sampling.mmse(net, op.repeat(3), y.expand(3, -1), seed=4)
    single = sampling.mmse(net, op, y, seed=4, indices=[2])
    assert torch.allclose(batch[2:3], single, atol=1e-6) and not torch.allclose(batch[0], batch[2])
