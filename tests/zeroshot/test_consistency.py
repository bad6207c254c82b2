"""InvFussion with data consistency (sampling.consistency) on the 16-pixel Gaussian toy problem,
with the prior's exact *conditional* denoiser ``E[x₀ | x_σ, y]`` standing in for InvFussion."""

from __future__ import annotations

import pytest
import torch

from invfussion.sampling import NFECounter, consistency, consistent_sample, gaussian_posterior

from test_samplers import DenseOperator, N, prior, problem, random_operator, residual, sample_prior  # noqa: F401 (fixtures)

FAST = {"ddnm": 20, "pigdm": 20, "dps": 40}


@pytest.fixture
def conditional(prior):
    """The exact conditional denoiser, called as the samplers call InvFussion: ``net(x, σ, op, y)``."""
    return prior


@pytest.mark.parametrize("method", consistency.METHODS)
def test_nfe_counts_every_call(method, conditional, problem):
    op, _, y = problem(batch=3)
    start, step = consistency.parse_method(method)
    counter = NFECounter(conditional)
    consistent_sample(counter, op, y, step, start, steps=FAST[step])
    assert counter.nfe == consistency.nfe(start, step, FAST[step])


@pytest.mark.parametrize("step", ["ddnm", "pigdm"])
@pytest.mark.parametrize("start", consistency.STARTS)
def test_noiseless_samples_fit_y(step, start, conditional, problem):
    op, _, y = problem(batch=4)
    x = consistent_sample(conditional, op, y, step, start, steps=FAST[step])
    assert float((residual(op, x, y) / torch.linalg.vector_norm(y, dim=1)).max()) < 1e-3


def test_the_exact_conditional_denoiser_gives_the_exact_posterior(prior):
    """With the exact conditional denoiser the consistency step has nothing to correct: the DDNM
    trajectory from noise samples the exact posterior (the mean of 400 samples within 0.12 of it;
    measured 0.08). The same DDNM on the unconditional prior, as a zero-shot method, lands 0.50 away
    (this prior is not isotropic): binding the measurement is what makes the difference."""
    batch = 400
    op = random_operator(1, 6)
    y = op.measure(sample_prior(prior, 1, seed=5))
    ops, ys = DenseOperator(op.matrices.expand(batch, -1, -1)), y.expand(batch, -1)
    samples = consistent_sample(prior, ops, ys, "ddnm", "posterior", steps=50).reshape(batch, N).double()
    post_mean, _ = gaussian_posterior(prior.mean, prior.cov, op.matrices[0], y[0].double(), 0.0)
    assert float((samples.mean(0) - post_mean).norm()) < 0.12


def test_mmse_start_uses_the_one_call_estimate(conditional, problem):
    """From the one-call MMSE at a small σ_start the sample stays close to that estimate."""
    op, _, y = problem(batch=4)
    x = consistent_sample(conditional, op, y, "pigdm", "mmse", steps=10)
    from invfussion.sampling import mmse

    assert float((x - mmse(conditional, op, y)).flatten(1).norm(dim=1).max()) < 2.0 * 2.0 * N**0.5


@pytest.mark.parametrize("method", ["posterior+ddnm", "mmse+dps"])
def test_sample_depends_only_on_seed_and_index(method, conditional, problem):
    op, _, y = problem(batch=3)
    start, step = consistency.parse_method(method)
    batch = consistent_sample(conditional, op, y, step, start, steps=FAST[step], seed=7, indices=[4, 5, 6])
    one = consistent_sample(conditional, op.subset([1]), y[1:2], step, start, steps=FAST[step], seed=7, indices=[5])
    torch.testing.assert_close(batch[1:2], one, atol=1e-5, rtol=1e-5)


def test_unknown_consistency_is_one_clear_error(conditional, problem):
    op, _, y = problem(batch=1)
    with pytest.raises(ValueError, match="choose one of"):
        consistent_sample(conditional, op, y, "ddrm")
    assert consistency.parse_method("posterior+consistent") is None


def test_default_sampler_turns_to_consistency_on_rich_matrices():
    from invfussion import degradations as deg

    shape = (1, 32, 32)  # D = 1024: 64 rows is M/D = 0.0625 >= RICH_RATIO, 16 rows is 0.016
    assert consistency.default_sampler("matrix:rows=64", deg.from_spec("matrix:rows=64", shape, batch=2)) == "mmse+dps"
    assert consistency.default_sampler("matrix:rows=16", deg.from_spec("matrix:rows=16", shape, batch=2)) == "posterior"
    # every example must be rich: rows drawn 1..128 leave some below the ratio
    assert consistency.default_sampler("matrix", deg.from_spec("matrix", shape, batch=16, seed=0)) == "posterior"
    assert consistency.default_sampler("inpaint-box", deg.from_spec("inpaint-box", shape, batch=2)) == "posterior"
    blur = deg.from_spec("motion-blur", shape, batch=2)
    assert consistency.default_sampler("motion-blur", blur) == "mmse+ddnm"
    noisy = blur.with_noise_std(torch.tensor([0.0, 0.1]))  # one noisy example: the posterior
    assert consistency.default_sampler("motion-blur", noisy) == "posterior"
