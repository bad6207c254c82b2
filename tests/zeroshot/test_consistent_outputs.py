"""Consistent outputs (``consistent=True``): the exact projection onto ``{x : A x = y}`` for
noiseless examples — never further from the truth, and consistent — and ``x̂ + A⁺_σ(y − A x̂)``
for noisy ones, on every family with a Gaussian prior and zero-shot estimates that miss ``y``."""

from __future__ import annotations

import pytest
import torch

from invfussion import degradations as deg
from invfussion import restoration
from invfussion.sampling import GaussianDenoiser

SHAPE = (1, 8, 8)
SPECS = [
    "inpaint-patches:size=2,keep=0.4", "inpaint-box", "motion-blur:stride=2", "matrix:rows=24", "sr:factor=2"
]
MIXED = ["matrix:max_rows=24", "motion-blur", "sr", "inpaint-patches", "outpaint-box"]
ROUGH_DPS = dict(steps=6)  # a few DPS steps: estimates that do not fit y


def problem(spec: str, prior: GaussianDenoiser, batch: int = 6, noise: float = 0.0):
    """``(op, x, y)``: prior draws ``x`` and their measurements (σ_y = ``noise``)."""
    if spec == "mixed":
        op = deg.Mixture(MIXED).sample(batch, SHAPE, seed=1)
    else:
        op = deg.from_spec(spec, SHAPE, batch=batch, seed=1)
    op.noise_std = torch.full((batch,), noise)
    root = prior.eigenvectors * prior.eigenvalues.sqrt()
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(batch, 64, generator=g, dtype=torch.float64) @ root.T).float().reshape(batch, *SHAPE)
    return op, x, op.measure(x, seed=3)


@pytest.mark.parametrize("spec", [*SPECS, "mixed"])
def test_projection_never_increases_the_error_and_makes_noiseless_outputs_consistent(spec, smooth_prior):
    op, x, y = problem(spec, smooth_prior)
    run = dict(num_samples=2, **ROUGH_DPS)
    plain, nfe = restoration.run_method("dps", smooth_prior, op, y, **run)
    projected, projected_nfe = restoration.run_method("dps", smooth_prior, op, y, consistent=True, **run)
    assert projected_nfe == nfe
    error, projected_error = ((out - x[:, None]).flatten(2).norm(dim=2) for out in (plain, projected))
    assert bool((projected_error <= error + 1e-5).all())
    assert bool((projected_error < error - 1e-3).any())  # the rough estimates did miss y
    residual = torch.linalg.vector_norm(y[:, None] - op.A(projected), dim=2)
    assert bool((residual <= 1e-3 * y.norm(dim=1)[:, None]).all())
    for s in range(2):  # the exact projection op.project, sample by sample
        torch.testing.assert_close(projected[:, s], op.project(plain[:, s], y), rtol=1e-5, atol=1e-5)


def test_noisy_examples_use_the_noise_aware_inverse(smooth_prior):
    op, x, y = problem("mixed", smooth_prior, noise=0.1)
    op.noise_std[0] = 0.0  # one noiseless example in the batch: exact projection there
    plain, _ = restoration.run_method("dps", smooth_prior, op, y, **ROUGH_DPS)
    projected, _ = restoration.run_method("dps", smooth_prior, op, y, consistent=True, **ROUGH_DPS)
    residual = y - op.A(plain[:, 0])
    torch.testing.assert_close(projected[:, 0], plain[:, 0] + op.pinv_noisy(residual))
    exact = op.project(plain[:, 0], y)
    torch.testing.assert_close(projected[:1, 0], exact[:1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(projected[1:, 0], exact[1:], atol=1e-3)


def test_restore_reports_consistent_outputs_beside_the_plain_ones(smooth_prior):
    op, x, y = problem("inpaint-box", smooth_prior, batch=2)
    result = restoration.restore(smooth_prior, op, y, ["dps", "ddnm"], num_samples=2, reference=x, uncertainty=1,
                                 consistent=True, steps=4)
    assert list(result.outputs) == ["dps", "dps+consistent", "ddnm", "ddnm+consistent"]
    for method in ("dps", "ddnm"):
        name = method + restoration.CONSISTENT
        expected = restoration.make_consistent(op, result.outputs[method], y)
        torch.testing.assert_close(result.outputs[name], expected)
        assert result.nfe[name] == result.nfe[method] and result.seconds[name] >= result.seconds[method]
        assert name in result.components
    summary = restoration.summarize(result, op, y)
    assert summary["dps+consistent"]["consistency"] < 1e-8 < summary["dps"]["consistency"]
    assert summary["dps+consistent"]["psnr"] >= summary["dps"]["psnr"]
