"""The noise-aware inverse ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹``, ``λ = σ_y²/σ_d²``, of every family against a
dense solve, its limit ``A⁺`` as ``σ_y → 0``, exactness at ``σ_y = 0``, symmetry, the default for
users' operators, and its use in ``round_trip`` (the FDL)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invfussion import degradations as deg
from invfussion.degradations.base import SIGMA_DATA
from invfussion.sampling import dense_matrix

F64 = torch.float64
SHAPE = (1, 8, 8)
BUILT_IN = ["inpaint-patches", "outpaint-box", "inpaint-box", "motion-blur", "matrix", "sr", "none",
    "gaussian-blur", "uniform-blur", "sr-bicubic", "inpaint-random", "inpaint-box:size=3",
    "gaussian-blur:boundary=circular", "kernel-blur:boundary=circular", "uniform-blur:boundary=reflect",
]
MIXED = ["matrix:max_rows=20", "motion-blur", "sr", "inpaint-patches", "none"]


def build(spec: str, batch: int = 8, shape: tuple[int, int, int] = SHAPE) -> deg.Operator:
    """A batch whose σ_y run from 0 (the first two examples) to 0.2 in the given order."""
    if spec == "mixed":
        op = deg.Mixture(MIXED).sample(batch, shape, seed=3)
        assert isinstance(op, deg.GroupedOperator) and len(op.parts) >= 3
    else:
        op = deg.from_spec(spec, shape, batch=batch, seed=3)
    op.noise_std = torch.cat([torch.zeros(2), torch.linspace(0.01, 0.2, batch - 2)])
    return op


def dense_noisy_inverse(op: deg.Operator, lam: torch.Tensor) -> torch.Tensor:
    """``Aᵀ(AAᵀ + λI)⁺``: ``(B, n, M)`` from the dense matrices (padded rows meet zero y)."""
    A = dense_matrix(op)
    eye = torch.eye(A.shape[1], dtype=F64)
    return A.mT @ torch.linalg.pinv(A @ A.mT + lam[:, None, None] * eye, hermitian=True)


def measurements(op: deg.Operator, k: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = (op.batch_size, op.measurement_size) if k is None else (op.batch_size, k, op.measurement_size)
    y = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return y * (op.measurement_mask() if k is None else op.measurement_mask()[:, None])


@pytest.mark.parametrize("spec", [*BUILT_IN, "mixed"])
def test_closed_form_is_the_dense_tikhonov_solve_and_exact_pinv_when_noiseless(spec):
    op = build(spec)
    lam = (op.noise_std.to(F64) / SIGMA_DATA).square()
    y = measurements(op)
    reference = (dense_noisy_inverse(op, lam) @ y[..., None])[..., 0]
    noisy = lam > 0
    out = op.pinv_noisy(y)
    torch.testing.assert_close(out.flatten(1)[noisy], reference[noisy], rtol=1e-9, atol=1e-12)
    out32 = op.pinv_noisy(y.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.flatten(1)[noisy].double(), reference[noisy], rtol=1e-5, atol=1e-6)
    for dtype in (F64, torch.float32):  # σ_y = 0: bitwise today's A⁺
        assert torch.equal(op.pinv_noisy(y.to(dtype))[~noisy], op.pinv(y.to(dtype))[~noisy])
    stack = measurements(op, k=3, seed=1)  # (B, K, M) is K measurements at once
    torch.testing.assert_close(
        op.pinv_noisy(stack), torch.stack([op.pinv_noisy(s) for s in stack.unbind(1)], dim=1)
    )


@pytest.mark.parametrize("spec", [*BUILT_IN, "mixed"])
def test_noisy_inverse_is_symmetric(spec):
    """``A⁺_σ A = Aᵀ(AAᵀ + λI)⁻¹A`` (n × n) and ``A A⁺_σ`` (M × M) are symmetric."""
    op = build(spec)
    A = dense_matrix(op)
    B, M, n = A.shape
    image_side = op.pinv_noisy(A.mT.contiguous()).flatten(2)  # row i: A⁺_σ A e_i
    torch.testing.assert_close(image_side, image_side.mT, rtol=0, atol=1e-10)
    basis = torch.eye(M, dtype=F64).expand(B, M, M) * op.measurement_mask()[:, None].to(F64)
    measurement_side = op.A(op.pinv_noisy(basis.contiguous()))  # row j: A A⁺_σ e_j
    torch.testing.assert_close(measurement_side, measurement_side.mT, rtol=0, atol=1e-10)


@pytest.mark.parametrize("spec", ["motion-blur", "matrix", "sr", "inpaint-patches"])
def test_tends_to_the_pseudo_inverse_as_the_noise_vanishes(spec):
    """On the kept singular values (``y = A A⁺ v``): ``‖A⁺_σ y − A⁺ y‖`` falls with σ_y to 0."""
    op = build(spec, batch=4)
    y = op.A(op.pinv(measurements(op)))
    exact = op.pinv(y)
    errors = []
    for sigma in (1e-2, 1e-4, 1e-6, 1e-8):
        op.noise_std = torch.full((4,), sigma)
        relative = (op.pinv_noisy(y) - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
        errors.append(float(relative.max()))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6, errors


def test_weight_is_noise_over_data_variance_and_can_be_given():
    """λ = σ_y²/σ_d² (σ_y = 0.05 → 0.01 on a mask: a scale 1/(1 + λ)); an explicit λ overrides it."""
    op = deg.from_spec("inpaint-box", SHAPE, batch=2, seed=0)
    op.noise_std = torch.tensor([0.05, 0.0])
    y = measurements(op)
    scale = torch.tensor([1.01, 1.0], dtype=F64)[:, None, None, None]
    torch.testing.assert_close(op.pinv_noisy(y), op.pinv(y) / scale)
    lam = torch.tensor([0.5, 3.0], dtype=F64)
    torch.testing.assert_close(op.pinv_noisy(y, lam), op.pinv(y) / (1 + lam)[:, None, None, None])
    with pytest.raises(ValueError, match="one weight per example"):
        op.pinv_noisy(y, torch.zeros(3))


def test_autocast_dtype_and_gradients_of_a_mixed_noise_batch():
    """bf16 autocast: computed in float32, returned in the input's dtype; gradients stay finite
    through examples of either kind (σ_y = 0 or not) of every family."""
    op = build("mixed", batch=10)
    y = measurements(op).float().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = op.pinv_noisy(y)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, op.pinv_noisy(y.detach()))
    out.square().sum().backward()
    assert bool(y.grad.isfinite().all()) and bool((y.grad != 0).any())


def test_round_trip_uses_the_noisy_inverse():
    """The FDL's ``A⁺_σ transform(y, A z)``: the grouped per-part path equals the padded one, in the
    batch's order and in part order, with the group's σ_y (the parts' own are left at 0)."""
    op = build("mixed", batch=12)
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(op.batch_size, 3, *SHAPE, generator=gen, dtype=F64)
    y = op.measure(torch.randn(op.batch_size, *SHAPE, generator=gen, dtype=F64), seed=0)

    def transform(y, measured):
        return F.gelu(measured * 0.7 - 0.3 * y[:, None])

    reference = op.pinv_noisy(transform(y, op.A(z)))
    assert not torch.allclose(reference, op.pinv(transform(y, op.A(z))))
    torch.testing.assert_close(op.round_trip(z, y, transform), reference)
    ordered, order = deg.in_part_order(op)
    ordered.noise_std = op.noise_std[order]
    torch.testing.assert_close(ordered.round_trip(z[order], y[order], transform), reference[order])


class DenseUserOperator(deg.Operator):
    """A user's operator: one dense matrix ``(B, M, n)`` per example, without ``_pinv_noisy``."""

    def __init__(self, matrices: torch.Tensor, image_shape=SHAPE):
        super().__init__(image_shape, matrices.shape[1], torch.zeros(matrices.shape[0]))
        self.matrices = matrices.to(F64)

    def _apply(self, x):
        return x.flatten(2) @ self.matrices.to(x.dtype).mT

    def _pinv(self, y):
        return (y @ torch.linalg.pinv(self.matrices).to(y.dtype).mT).unflatten(2, self.image_shape)

    def _adjoint(self, y):
        return (y @ self.matrices.to(y.dtype)).unflatten(2, self.image_shape)


class UserFamily:
    params: tuple = ()

    @classmethod
    def build(cls, values, image_shape, generators):
        n = image_shape[0] * image_shape[1] * image_shape[2]
        matrices = torch.stack([torch.randn(12, n, generator=g) for g in generators])
        return DenseUserOperator(matrices, image_shape)


def test_users_operators_default_to_conjugate_gradients():
    deg.register("dense-user-test", UserFamily, replace=True)
    op = deg.from_spec("dense-user-test:noise=0.05", SHAPE, batch=3, seed=0)
    op.noise_std[0] = 0.0
    lam = (op.noise_std.to(F64) / SIGMA_DATA).square()
    y = measurements(op)
    reference = (dense_noisy_inverse(op, lam) @ y[..., None])[..., 0]
    out = op.pinv_noisy(y)
    torch.testing.assert_close(out.flatten(1)[1:], reference[1:], rtol=1e-6, atol=1e-8)
    assert torch.equal(out[0], op.pinv(y)[0])
    stack = measurements(op, k=2, seed=1)
    one_by_one = torch.stack([op.pinv_noisy(s) for s in stack.unbind(1)], dim=1)
    torch.testing.assert_close(op.pinv_noisy(stack), one_by_one, rtol=1e-6, atol=1e-8)


class NoAdjoint(deg.Operator):
    def _apply(self, x):
        return x.flatten(2)

    def _pinv(self, y):
        return y.unflatten(2, self.image_shape)


def test_users_operator_without_adjoint_works_noiseless_and_says_what_to_implement():
    op = NoAdjoint((1, 4, 4), 16, torch.zeros(2))
    y = torch.randn(2, 16)
    assert torch.equal(op.pinv_noisy(y), op.pinv(y))
    op.noise_std = torch.tensor([0.0, 0.1])
    with pytest.raises(NotImplementedError, match="NoAdjoint has neither _pinv_noisy nor _adjoint; implement"):
        op.pinv_noisy(y)
