"""Zero-shot samplers on the library's operator families (8×8 images, a smooth Gaussian prior)."""

from __future__ import annotations

import copy

import pytest
import torch

from invfussion import degradations as deg
from invfussion.sampling import GaussianDenoiser, NFECounter, zeroshot

SHAPE = (1, 8, 8)
SPECS = [
    "inpaint-patches:size=2,keep=0.4",
    "motion-blur:stride=2",
    "matrix:rows=24",
    "sr:factor=2",
    "none",
    # the literature's operators (closed-form A⁺ for the first three, CG for the last)
    "gaussian-blur:size=5,std=1",
    "sr-bicubic:factor=2",
    "inpaint-random:missing=0.7",
    "motion-kernel-blur:size=3,intensity=0.5",
]
FAST = {
    "dps": dict(steps=20),
    "ddrm": dict(steps=8),
    "ddnm": dict(steps=8),
    "pigdm": dict(steps=8),
    "daps": dict(steps=4, ode_steps=2, langevin_steps=10),
}


def measured(spec: str, prior: GaussianDenoiser, batch: int = 4):
    op = deg.from_spec(spec, image_shape=SHAPE, batch=batch, seed=0)
    g = torch.Generator().manual_seed(5)
    root = prior.eigenvectors * prior.eigenvalues.sqrt()
    x = (
        (torch.randn(batch, 64, generator=g, dtype=torch.float64) @ root.T)
        .float()
        .reshape(batch, *SHAPE)
    )
    return op, op.measure(x, seed=0)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("method", ["ddnm", "ddrm"])
def test_range_replacement_is_consistent_on_every_family(method, spec, smooth_prior):
    op, y = measured(spec, smooth_prior)
    out = zeroshot.METHODS[method](smooth_prior, op, y, **FAST[method])
    residual = torch.linalg.vector_norm(y - op.A(out), dim=1)
    assert bool((residual <= 1e-3 * y.norm(dim=1)).all())


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("method", ["dps", "pigdm", "daps"])
def test_gradient_methods_run_on_every_family(method, spec, smooth_prior):
    """Autograd through the network and through ``op.A`` works for every family; NFE as reported."""
    op, y = measured(spec, smooth_prior)
    counter = NFECounter(smooth_prior)
    out = zeroshot.METHODS[method](counter, op, y, **FAST[method])
    assert out.shape == (4, *SHAPE) and bool(out.isfinite().all())
    assert counter.nfe == zeroshot.nfe(method, **FAST[method])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", sorted(FAST))
def test_cuda_gives_the_cpu_sample(method, smooth_prior):
    """Per-example noise is drawn on the CPU, so a sample does not depend on the device."""
    op, y = measured("matrix:rows=24,noise=0.05", smooth_prior)
    fn = zeroshot.METHODS[method]
    on_cpu = fn(smooth_prior, op, y, seed=3, **FAST[method])
    prior_on_cuda = copy.deepcopy(smooth_prior).to("cuda")  # Module.to moves in place
    on_cuda = fn(prior_on_cuda, op.to("cuda"), y.cuda(), seed=3, **FAST[method])
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=2e-3, rtol=1e-3)
