"""Classifier-free guidance on a tiny class-conditional network: the weights' end points, every
solver and one-call estimator, the zero-shot samplers, per-example seeds, and the class checks."""

from __future__ import annotations

import pytest
import torch

from invfussion import degradations as deg
from invfussion import models, restoration, sampling, seeding
from invfussion.sampling import zeroshot

SHAPE = (1, 32, 32)
LABELS = torch.tensor([1, 4, 7, 9])


@pytest.fixture(scope="module")
def net():
    """A tiny mnist32 InvFussion with 10 classes (+ null) and an NPPC head; its zero-initialised
    layers are filled at random so that the class changes the output."""
    net = models.build("mnist32", "invfussion", widths=[32, 64], d_head=16, mapping_width=32,
                       num_classes=10, pcs=2).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p + 0.05 * torch.randn(p.shape, generator=g))
    return net


@pytest.fixture(scope="module")
def problem():
    """Four digits-sized images measured by patch in-painting: ``op`` and ``y: (4, M)``."""
    x = torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    op = deg.from_spec("inpaint-patches:size=4,keep=0.3", SHAPE, batch=4, seed=0)
    return op, op.measure(x, seed=0)


def calls(net, op, y, x, sigma):
    """The null-class and the conditional outputs at ``x`` and ``σ`` (by hand)."""
    s = torch.full((x.shape[0],), sigma)
    return net(x, s, op=op, y=y), net(x, s, op=op, y=y, class_labels=LABELS)


@torch.no_grad()
def test_weight_one_is_the_conditional_call_and_zero_the_null_call(net, problem):
    op, y = problem
    x = 3.0 * seeding.randn(0, 4, SHAPE)
    null, conditional = calls(net, op, y, x, 3.0)
    assert (conditional - null).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # the class matters
    s = torch.full((4,), 3.0)
    torch.testing.assert_close(sampling.guided(net, LABELS, 1.0)(x, s, op=op, y=y), conditional, rtol=0, atol=0)
    torch.testing.assert_close(sampling.guided(net, LABELS, 0.0)(x, s, op=op, y=y), null, rtol=0, atol=0)
    torch.testing.assert_close(sampling.guided(net, LABELS, 2.5)(x, s, op=op, y=y),
                               null + 2.5 * (conditional - null), rtol=1e-5, atol=1e-5)
    assert sampling.guided(net, None, None) is net
    for solver in sampling.SOLVERS:  # whole trajectories: w = 1 is the class alone, w = 0 no class
        run = dict(steps=3, solver=solver, seed=5)
        torch.testing.assert_close(sampling.posterior(net, op, y, class_labels=LABELS, cfg=1.0, **run),
                                   sampling.posterior(net, op, y, class_labels=LABELS, **run), rtol=0, atol=0)
        torch.testing.assert_close(sampling.posterior(net, op, y, class_labels=LABELS, cfg=0.0, **run),
                                   sampling.posterior(net, op, y, **run), rtol=0, atol=0)


@torch.no_grad()
@pytest.mark.parametrize("solver", sampling.SOLVERS)
def test_cfg_composes_with_every_solver(net, problem, solver):
    op, y = problem
    w = 2.0
    # one step lands on the guided estimate at the seeded start x_T = σ_max ε(seed, i)
    x_T = 80.0 * seeding.randn(7, 4, SHAPE, "sample")
    null, conditional = calls(net, op, y, x_T, 80.0)
    first = sampling.posterior(net, op, y, steps=1, solver=solver, class_labels=LABELS, cfg=w, seed=7)
    # (x_T − σ·(x_T − D)/σ loses float32 digits of |x_T| ≈ 80: ~1e-5)
    torch.testing.assert_close(first, null.lerp(conditional, w), rtol=0, atol=1e-4)
    # every later evaluation (Heun's correction, DPM-Solver's multistep) is guided too
    counter = sampling.NFECounter(net)
    guided = sampling.posterior(counter, op, y, steps=4, solver=solver, class_labels=LABELS, cfg=w, seed=7)
    by_hand = sampling.posterior(
        lambda x, s, op, y: net(x, s, op=op, y=y).lerp(net(x, s, op=op, y=y, class_labels=LABELS), w),
        op, y, steps=4, solver=solver, seed=7,
    )
    torch.testing.assert_close(guided, by_hand, rtol=0, atol=0)
    assert counter.nfe == 2 * (7 if solver == "heun" else 4)


@torch.no_grad()
def test_cfg_composes_with_the_one_call_estimators_and_the_posterior_mean(net, problem):
    op, y = problem
    w = 1.5
    null = sampling.mmse(net, op, y, seed=2)
    conditional = sampling.mmse(net, op, y, seed=2, class_labels=LABELS)
    guided = sampling.mmse(net, op, y, seed=2, class_labels=LABELS, cfg=w)
    torch.testing.assert_close(guided, null.lerp(conditional, w), rtol=0, atol=0)
    out, nfe = restoration.run_method("mmse", net, op, y, seed=2, class_labels=LABELS, cfg=w)
    assert nfe == 2
    torch.testing.assert_close(out[:, 0], guided, rtol=0, atol=0)
    mean, directions, _ = sampling.nppc(net, op, y, seed=2, class_labels=LABELS, cfg=w)
    torch.testing.assert_close(mean, guided, rtol=0, atol=0)
    assert not torch.allclose(directions, sampling.nppc(net, op, y, seed=2, class_labels=LABELS)[1])
    samples = sampling.posterior(net, op, y, steps=2, class_labels=LABELS, cfg=w, seed=2, num_samples=3)
    out, nfe = restoration.run_method("posterior-mean", net, op, y, num_samples=3, seed=2, steps=2,
                                      class_labels=LABELS, cfg=w)
    torch.testing.assert_close(out[:, 0], samples.mean(1), rtol=0, atol=0)
    assert nfe == 3 * 3 * 2


@torch.no_grad()
@pytest.mark.parametrize("method", list(zeroshot.METHODS))
def test_zero_shot_samplers_take_the_class_through_run_method(net, problem, method):
    op, y = problem
    run = dict(seed=4, steps=2)
    conditional, nfe = restoration.run_method(method, net, op, y, class_labels=LABELS, **run)
    guided, guided_nfe = restoration.run_method(method, net, op, y, class_labels=LABELS, cfg=1.0, **run)
    torch.testing.assert_close(guided, conditional, rtol=0, atol=0)
    null, _ = restoration.run_method(method, net, op, y, class_labels=LABELS, cfg=0.0, **run)
    torch.testing.assert_close(null, restoration.run_method(method, net, op, y, **run)[0], rtol=0, atol=0)
    assert not torch.allclose(conditional, null)
    assert guided_nfe == 2 * nfe


@torch.no_grad()
def test_a_guided_sample_depends_on_its_seed_and_index_only(net, problem):
    op, y = problem
    run = dict(steps=3, solver="heun", churn=5.0, seed=9, cfg=2.0)
    whole = sampling.posterior(net, op, y, class_labels=LABELS, **run)
    for part in ([2], [0, 3]):
        sub = deg.from_spec("inpaint-patches:size=4,keep=0.3", SHAPE, indices=part, seed=0)
        alone = sampling.posterior(net, sub, y[part], class_labels=LABELS[part], indices=part, **run)
        # the random network's outputs reach ~10; float32 rounding grows along the path to ~5e-4
        torch.testing.assert_close(alone, whole[part], rtol=0, atol=2e-3)
    other_noise = sampling.posterior(net, sub, y[[0, 3]], class_labels=LABELS[[0, 3]], indices=[1, 2], **run)
    assert (other_noise - whole[[0, 3]]).abs().amax() > 0.1
    # guidance changes the denoiser, not the noise: one step from the same x_T either way
    unguided = sampling.posterior(net, op, y, steps=1, seed=9)
    x_T = 80.0 * seeding.randn(9, 4, SHAPE, "sample")
    torch.testing.assert_close(unguided, calls(net, op, y, x_T, 80.0)[0], rtol=0, atol=1e-4)


def test_bad_class_requests_are_one_line_errors(net, problem):
    op, y = problem
    unconditioned = models.build("mnist32", "invfussion", widths=[32, 64], d_head=16, mapping_width=32)
    cases = [
        (net, torch.tensor([0, 1, 2, 10]), None,
         "class label 10 is not one of this model's classes; pick an integer from 0 to 9"),
        (net, torch.tensor([-1, 1, 2, 3]), None, "class label -1"),
        (unconditioned, LABELS, None, "not class-conditional"),
        (net, None, 2.0, "needs a class label"),
        (net, LABELS, -0.5, "finite number ≥ 0"),
        (net, LABELS, float("inf"), "finite number ≥ 0"),
    ]
    for model, labels, cfg, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            restoration.run_method("mmse", model, op, y, class_labels=labels, cfg=cfg)
        assert "\n" not in str(error.value)
