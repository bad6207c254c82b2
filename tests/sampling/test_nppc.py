"""NPPC: Gram–Schmidt, the one-call inference, and the loss recovering the true posterior PCs of a
Gaussian toy problem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invfussion import degradations as deg
from invfussion import models, sampling
from invfussion.sampling import gaussian_posterior
from invfussion.sampling.gaussian import dense_matrix
from invfussion.sampling.mmse import pure_noise_input
from invfussion.training.losses import NPPCLoss, TrainingBatch

TINY = dict(widths=[32, 64], depths=[1, 1], d_head=16, mapping_width=32, logvar_channels=16)


def test_gram_schmidt_is_orthonormal_and_matches_qr():
    w = torch.randn(3, 4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    u, norms = sampling.gram_schmidt(w)
    flat = u.flatten(2)
    gram = flat @ flat.transpose(1, 2)
    assert torch.allclose(gram, torch.eye(4).expand(3, 4, 4), atol=1e-5)
    q, r = torch.linalg.qr(w.flatten(2).transpose(1, 2).double())  # same order, up to signs
    signs = torch.sign(torch.diagonal(r, dim1=1, dim2=2))
    assert torch.allclose(flat.double(), (q * signs[:, None, :]).transpose(1, 2), atol=1e-5)
    assert torch.allclose(norms.double(), torch.diagonal(r, dim1=1, dim2=2).abs(), rtol=1e-5)


def test_gram_schmidt_gradient_never_moves_earlier_directions():
    w = torch.randn(2, 3, 1, 4, 4, requires_grad=True)
    u, _ = sampling.gram_schmidt(w)
    (u[:, 2] * torch.randn_like(u[:, 2])).sum().backward()
    assert torch.count_nonzero(w.grad[:, :2]) == 0 and torch.count_nonzero(w.grad[:, 2]) > 0


def test_nppc_mean_is_the_mmse_call_and_directions_are_orthonormal_in_decreasing_std():
    torch.manual_seed(0)
    net = models.build("mnist32", "invfussion", pcs=3, **TINY).eval()
    with torch.no_grad():  # a random output layer: the heads' Gram–Schmidt order is not the std order
        net.backbone.patch_out.weight.normal_(0, 0.05)
    op = deg.from_spec("inpaint-box", image_shape=(1, 32, 32), batch=2, seed=1)
    y = op.measure(torch.rand(2, 1, 32, 32) * 2 - 1, seed=1)
    mean, directions, stds = sampling.nppc(net, op, y, seed=4)
    assert torch.equal(mean, sampling.mmse(net, op, y, seed=4))
    assert directions.shape == (2, 3, 1, 32, 32) and stds.shape == (2, 3) and bool((stds > 0).all())
    assert bool((stds[:, :-1] >= stds[:, 1:]).all())
    flat = directions.flatten(2)
    assert torch.allclose(flat @ flat.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    # the same directions and stds as Gram–Schmidt of the raw heads, only reordered
    x_noisy, s = pure_noise_input(net, op, y, 100.0, 4, None)
    raw, raw_stds = sampling.gram_schmidt(net(x_noisy, s, op=op, y=y, return_pcs=True)[1])
    assert not bool((raw_stds[:, :-1] >= raw_stds[:, 1:]).all())  # so the sorting is exercised
    for b in range(2):
        order = raw_stds[b].argsort(descending=True)
        assert torch.allclose(stds[b], raw_stds[b][order]) and torch.allclose(directions[b], raw[b][order])


def test_nppc_needs_a_principal_component_head():
    net = models.build("mnist32", "invfussion", **TINY)
    op = deg.from_spec("inpaint-box", image_shape=(1, 32, 32), batch=1, seed=1)
    with pytest.raises(ValueError, match="principal-component head"):
        sampling.nppc(net, op, op.A(torch.zeros(1, 1, 32, 32)))


def test_loss_is_the_mse_before_the_ramp():
    net = LinearNPPC(measurements=4, image_shape=(1, 2, 2), pcs=2)
    op = deg.from_spec("matrix:rows=4", image_shape=(1, 2, 2), batch=3, seed=0)
    x = torch.randn(3, 1, 2, 2)
    batch = TrainingBatch(x, torch.randn_like(x), torch.zeros(3), op, op.A(x), None, None, torch.arange(3), step=0)
    loss = NPPCLoss(ramp_steps=10)(net, batch)
    mean, _ = net(x, 100.0, op=op, y=op.A(x), return_pcs=True)
    assert torch.allclose(loss, (mean - x).square().flatten(1).mean(1))
    batch.step = 10
    assert bool((NPPCLoss(ramp_steps=10)(net, batch) > loss).all())


def test_unknown_variance_fit_is_refused():
    with pytest.raises(ValueError, match="unknown NPPC variance fit 'log'; pass one of absolute, relative"):
        NPPCLoss(variance_fit="log")


class LinearNPPC(nn.Module):
    """A Gaussian problem's exact NPPC model class: mean linear in y, directions constant."""

    def __init__(self, measurements: int, image_shape: tuple[int, int, int], pcs: int):
        super().__init__()
        n = image_shape[0] * image_shape[1] * image_shape[2]
        self.image_shape, self.pcs = image_shape, pcs
        self.mean = nn.Linear(measurements, n, bias=False)
        self.w = nn.Parameter(torch.randn(pcs, n, generator=torch.Generator().manual_seed(1)) * 0.1)

    def forward(self, x_noisy, sigma, op=None, y=None, class_labels=None, aug_labels=None, return_pcs=False):
        b = y.shape[0]
        mean = self.mean(y).reshape(b, *self.image_shape)
        return mean, self.w.expand(b, -1, -1).reshape(b, self.pcs, *self.image_shape)


@pytest.mark.parametrize(
    "side, batch, steps, fit", [(4, 512, 1500, "absolute"), (16, 256, 600, "absolute"), (4, 512, 1500, "relative")]
)
def test_nppc_loss_recovers_the_gaussian_posterior_principal_components(side, batch, steps, fit):
    """Directions and their standard deviations, at 16 pixels and at 256 (with the second-moment
    term divided by D², the first version, the 256-pixel case fails on the stds), with either
    variance fit (the relative one keeps the minimiser ``s_k² = E[⟨e, u_k⟩² | y]``)."""
    g = torch.Generator().manual_seed(0)
    shape, n, k = (1, side, side), side * side, 2
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    cov = basis @ torch.diag(torch.logspace(0, -2, n, dtype=torch.float64)) @ basis.T
    chol = torch.linalg.cholesky(cov)
    spec = f"matrix:rows={3 * n // 8},noise=0.05"

    def operators(batch: int):  # one matrix for every example
        return deg.from_spec(spec, image_shape=shape, indices=[0] * batch, seed=0)

    a = dense_matrix(operators(1))[0]
    _, post_cov = gaussian_posterior(torch.zeros(n), cov, a, torch.zeros(a.shape[0]), 0.05)
    eigvals, eigvecs = torch.linalg.eigh(post_cov)
    true_stds, true_pcs = eigvals.flip(0)[:k].sqrt(), eigvecs.flip(1)[:, :k].T

    torch.manual_seed(0)
    net = LinearNPPC(a.shape[0], shape, k)
    loss_fn = NPPCLoss(ramp_steps=200, variance_fit=fit)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    op = operators(batch)
    for step in range(steps):
        x = (torch.randn(batch, n, generator=g, dtype=torch.float64) @ chol.T).float().reshape(batch, *shape)
        y = op.measure(x, seed=step)
        examples = TrainingBatch(x, torch.zeros_like(x), torch.zeros(batch), op, y, None, None, torch.arange(batch), step)
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 if step < 2 * steps // 3 else 2e-3
        optimizer.zero_grad()
        loss_fn(net, examples).mean().backward()
        optimizer.step()

    _, directions, stds = sampling.nppc(net, op, y)
    cosines = (directions[0].flatten(1).double() * true_pcs).sum(1).abs()
    assert bool((cosines > 0.9).all()), cosines
    assert torch.allclose(stds[0].double(), true_stds, rtol=0.15), (stds[0], true_stds)
