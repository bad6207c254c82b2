import math

import pytest
import torch
from torch import nn

from invfussion.training.losses import (
    OBJECTIVES,
    DiffusionLoss,
    MMSELoss,
    TrainingBatch,
    make_objective,
)


class Recorder(nn.Module):
    """Stand-in denoiser: returns a fixed output and a learnable log-variance, records its inputs."""

    def __init__(self, output: torch.Tensor, logvar: float = 0.0):
        super().__init__()
        self.output = output
        self.logvar = nn.Parameter(torch.full((output.shape[0],), float(logvar)))
        self.calls = []

    def forward(self, x, sigma, op=None, y=None, class_labels=None, aug_labels=None, return_logvar=False):
        self.calls.append(dict(x=x, sigma=sigma, op=op, y=y, class_labels=class_labels, aug_labels=aug_labels))
        return (self.output, self.logvar) if return_logvar else self.output


def batch_of(images, noise, sigma_normal, labels=None):
    return TrainingBatch(images=images, noise=noise, sigma_normal=sigma_normal, op=None, y=None,
                         class_labels=labels, aug_labels=None, indices=torch.arange(images.shape[0]))


def test_diffusion_loss_matches_eq8():
    g = torch.Generator().manual_seed(0)
    images, noise, output = (torch.randn(3, 1, 4, 4, generator=g) for _ in range(3))
    n = torch.tensor([-1.0, 0.0, 2.0])
    net = Recorder(output, logvar=0.3)
    loss = DiffusionLoss()(net, batch_of(images, noise, n, labels=torch.tensor([1, 2, 3])))

    sigma = torch.exp(-0.8 + 1.6 * n)
    assert torch.allclose(net.calls[0]["sigma"], sigma)
    assert torch.allclose(net.calls[0]["x"], images + sigma[:, None, None, None] * noise)
    assert torch.equal(net.calls[0]["class_labels"], torch.tensor([1, 2, 3]))
    lam = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    mse = ((output - images) ** 2).flatten(1).mean(1)
    assert torch.allclose(loss, lam / math.exp(0.3) * mse + 0.3)


def test_learned_logvar_is_optimal_at_log_of_weighted_error():
    """∂loss/∂u = 0 exactly where u = ln(λ(σ)·mse): the log-variance tracks the weighted error."""
    g = torch.Generator().manual_seed(1)
    images, noise, output = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    n = torch.tensor([0.5, -0.5])
    sigma = torch.exp(-0.8 + 1.6 * n)
    lam = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    optimum = torch.log(lam * ((output - images) ** 2).flatten(1).mean(1))
    net = Recorder(output)
    net.logvar.data.copy_(optimum)
    DiffusionLoss()(net, batch_of(images, noise, n)).sum().backward()
    assert net.logvar.grad.abs().max() < 1e-5


def test_mmse_loss_feeds_pure_noise_at_large_sigma():
    g = torch.Generator().manual_seed(2)
    images, noise, output = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    net = Recorder(output)
    loss = MMSELoss(sigma=100.0)(net, batch_of(images, noise, torch.zeros(2)))
    assert torch.equal(net.calls[0]["x"], 100.0 * noise)  # the clean image does not leak in
    assert torch.allclose(net.calls[0]["sigma"], torch.full((2,), 100.0))
    assert torch.allclose(loss, ((output - images) ** 2).flatten(1).mean(1))


def test_objective_names():
    assert set(OBJECTIVES) >= {"diffusion", "mmse"}
    assert isinstance(make_objective("mmse", mmse_sigma=50.0), MMSELoss)
    with pytest.raises(ValueError, match="unknown objective"):
        make_objective("l1")
    with pytest.raises(ValueError, match="positive"):
        MMSELoss(sigma=0.0)
