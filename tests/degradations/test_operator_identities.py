"""Algebraic properties of every family and of mixtures, at image shapes (1, 32, 32) and (3, 64, 64).

Moore–Penrose identities, symmetric projectors, projection onto the consistent set, stacks equal
to loops over K, batch independence, bf16 autocast, and autograd through A and A⁺.
"""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invfussion import degradations as deg

SHAPES = [(1, 32, 32), (3, 64, 64)]
# Zero-padded blur with a non-separable kernel (kernel-blur, motion-kernel-blur with boundary=same;
# their default is circular) solves A⁺ by conjugate gradients; it is checked against dense
# references in test_blur.py and runs here only with boundary=circular (exact closed forms). With boundary=same it
# FAILS three properties below (measured, float32, seeds 0–5; open issue): stacks vs loops and
# batch independence differ beyond 1e-5/1e-10 (1000 CG iterations on a condition number up to 1e9
# amplify last-bit FFT differences), and autograd through A⁺ is the transpose of the solve only as
# far as CG converges (test_blur.py checks it at σ_y > 0; unrolled iterations gave 1e24 vs 1e4).
# They also cost ~25 min of this file on the 2-core machine.
CG_SOLVED = {"kernel-blur", "motion-kernel-blur"}
SPECS = [
    *(f for f in deg.FAMILIES if f not in CG_SOLVED),
    "mixture",
    "gaussian-blur:boundary=circular",
    "uniform-blur:boundary=reflect",
    "kernel-blur",
    "motion-kernel-blur",
]
# The authors' folded-spectrum blur keeps their inverse, which is not Moore–Penrose (cropping; the
# measured residuals are in degradations/folded_spectrum.py): it is left out of the three
# Moore–Penrose properties below and keeps every other one.
MOORE_PENROSE_SPECS = [s for s in SPECS if s != "motion-blur-folded-spectrum"]
# families with singular values cut at 1e-4·σ_max
THRESHOLDED = {"motion-blur", "mixture", "gaussian-blur", "uniform-blur", *SPECS[-4:]}
# For boundary=same (when CG_SOLVED specs are run here by hand): measured (float32, 1×32×32 and
# 3×64×64, seeds 0–1) ‖AA⁺Ax − Ax‖/‖Ax‖ ≤ 5e-4 and projector asymmetry ≤ 8e-4·‖u‖‖v‖, but
# ‖A⁺AA⁺y − A⁺y‖/‖A⁺y‖ of 0.3–0.6 for white y (2–3e-2 for y = Ax): CG's A⁺ is not a linear map
# with an exact cut. Those two checks then use CG_TOLERANCE and the A⁺AA⁺ check is skipped.
CG_TOLERANCE = 1e-2
PROPERTY = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Operator seeds come from a small pool so the property tests share (cached) operator batches;
# each batch draws its 4 examples' parameters independently, so the pool still covers many operators.
seeds = st.integers(0, 5)


@functools.lru_cache(maxsize=128)
def build(
    spec: str, shape: tuple[int, int, int], seed: int, batch: int = 4, indices: tuple | None = None
):
    if spec == "mixture":
        return deg.PAPER_MIXTURE.sample(batch, shape, seed=seed, indices=indices)
    return deg.from_spec(spec, shape, batch=batch, seed=seed, indices=indices)


def tolerance(spec: str) -> float:
    if spec in CG_SOLVED:
        return CG_TOLERANCE
    return 1e-3 if spec in THRESHOLDED else 1e-4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-example ``‖a − b‖ / ‖b‖`` (0 where both vanish)."""
    num = (a - b).flatten(1).norm(dim=1)
    den = b.flatten(1).norm(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1e-30), num)


def random_measurement(op, generator: torch.Generator) -> torch.Tensor:
    y = torch.randn(op.batch_size, op.measurement_size, generator=generator)
    return y * op.measurement_mask()


cases = pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
families = pytest.mark.parametrize("spec", SPECS)
moore_penrose_families = pytest.mark.parametrize("spec", MOORE_PENROSE_SPECS)


@cases
@moore_penrose_families
@PROPERTY
@given(seed=seeds)
def test_moore_penrose_identities(spec, shape, seed):
    op = build(spec, shape, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(op.batch_size, *shape, generator=g)
    Ax = op.A(x)
    assert rel_err(op.A(op.pinv(Ax)), Ax).max() <= tolerance(spec)
    if spec in CG_SOLVED:
        return  # CG's A⁺ misses A⁺AA⁺ = A⁺ on weak directions (measured above)
    y = random_measurement(op, g)
    Py = op.pinv(y)
    assert rel_err(op.pinv(op.A(Py)), Py).max() <= tolerance(spec)


@cases
@moore_penrose_families
@PROPERTY
@given(seed=seeds)
def test_projectors_are_symmetric(spec, shape, seed):
    """⟨u, A⁺A v⟩ = ⟨A⁺A u, v⟩ on images and ⟨u, AA⁺ v⟩ = ⟨AA⁺ u, v⟩ on measurements."""
    op = build(spec, shape, seed)
    g = torch.Generator().manual_seed(seed)

    def check(u, v, P):
        lhs = (u * P(v)).flatten(1).sum(1)
        rhs = (P(u) * v).flatten(1).sum(1)
        scale = u.flatten(1).norm(dim=1) * v.flatten(1).norm(dim=1)
        bound = CG_TOLERANCE if spec in CG_SOLVED else 1e-4
        assert ((lhs - rhs).abs() <= bound * scale).all()

    u, v = (torch.randn(op.batch_size, *shape, generator=g) for _ in range(2))
    check(u, v, lambda t: op.pinv(op.A(t)))
    u, v = (random_measurement(op, g) for _ in range(2))
    check(u, v, lambda t: op.A(op.pinv(t)))


@cases
@moore_penrose_families
@PROPERTY
@given(seed=seeds)
def test_project_lands_on_consistent_set(spec, shape, seed):
    op = build(spec, shape, seed)
    g = torch.Generator().manual_seed(seed)
    x_true, x = (torch.randn(op.batch_size, *shape, generator=g) for _ in range(2))
    y = op.A(x_true)
    assert rel_err(op.A(op.project(x, y)), y).max() <= tolerance(spec)


@cases
@families
@PROPERTY
@given(seed=seeds, k=st.integers(1, 5))
def test_stack_equals_loop_over_k(spec, shape, seed, k):
    op = build(spec, shape, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(op.batch_size, k, *shape, generator=g)
    stacked = op.A(x)
    assert stacked.shape == (op.batch_size, k, op.measurement_size)
    assert rel_err(stacked, torch.stack([op.A(x[:, j]) for j in range(k)], 1)).max() <= 1e-5
    y = torch.randn(op.batch_size, k, op.measurement_size, generator=g)
    assert rel_err(op.pinv(y), torch.stack([op.pinv(y[:, j]) for j in range(k)], 1)).max() <= 1e-5


@cases
@families
@settings(PROPERTY, max_examples=2)
@given(seed=seeds, i=st.integers(0, 7))
def test_example_independent_of_batch(spec, shape, seed, i):
    """Example i is the same operator at batch 1 (by index), 8 and 16 (up to measurement padding).

    Compared in float64 so that rounding (amplified by A⁺ up to 1e4 for motion blur) cannot hide
    a different operator."""
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ops = [
        build(spec, shape, seed, batch=16),
        build(spec, shape, seed, batch=8),
        build(spec, shape, seed, 1, (i,)),
    ]
    rows = [0 if op.batch_size == 1 else i for op in ops]
    images, measurements = [], []
    for op, row in zip(ops, rows):
        xs = x.expand(op.batch_size, *shape)
        y = op.A(xs)[row]
        mask = op.measurement_mask()[row]
        assert (y[~mask] == 0).all()
        measurements.append(y[: int(mask.nonzero().max()) + 1] if mask.any() else y[:0])
        images.append(op.pinv(op.A(xs))[row])
        assert float(op.noise_std[row]) == float(ops[0].noise_std[rows[0]])
    for m, im in zip(measurements[1:], images[1:]):
        assert m.shape == measurements[0].shape
        assert rel_err(m[None], measurements[0][None]).item() <= 1e-10
        assert rel_err(im[None], images[0][None]).item() <= 1e-10


@cases
@families
def test_bf16_autocast_gives_float32_result(spec, shape):
    op = build(spec, shape, 0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(op.batch_size, 2, *shape, generator=g)
    y = torch.randn(op.batch_size, 2, op.measurement_size, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        Ax, Py = op.A(x), op.pinv(y)
    assert Ax.dtype == Py.dtype == torch.float32
    torch.testing.assert_close(Ax, op.A(x), rtol=0, atol=0)
    torch.testing.assert_close(Py, op.pinv(y), rtol=0, atol=0)


@families
def test_autograd_flows_through_a_and_pinv(spec):
    """d⟨A x, v⟩/dx = Aᵀ v, checked as ⟨Aᵀ v, u⟩ = ⟨v, A u⟩; the same for A⁺; inputs untouched."""
    shape = (1, 32, 32)
    op = build(spec, shape, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(op.batch_size, 2, *shape, generator=g, requires_grad=True)
    v = torch.randn(op.batch_size, 2, op.measurement_size, generator=g)
    x_before = x.detach().clone()
    (grad_x,) = torch.autograd.grad((op.A(x) * v).sum(), x)
    u = torch.randn(op.batch_size, 2, *shape, generator=g)
    torch.testing.assert_close((grad_x * u).sum(), (v * op.A(u)).sum(), rtol=1e-4, atol=1e-4)
    y = v.clone().requires_grad_(True)
    (grad_y,) = torch.autograd.grad((op.pinv(y) * u).sum(), y)
    torch.testing.assert_close((grad_y * v).sum(), (u * op.pinv(v)).sum(), rtol=1e-4, atol=1e-4)
    assert torch.equal(x.detach(), x_before)


def test_float64_inputs_compute_in_float64():
    op = build("matrix", (1, 32, 32), 5)
    x = torch.randn(op.batch_size, 1, 32, 32, dtype=torch.float64)
    Ax = op.A(x)
    assert Ax.dtype == torch.float64
    assert rel_err(op.A(op.pinv(Ax)), Ax).max() < 1e-12
