"""The adjoint ``op.AT`` of every family against the dense transpose of ``op.A`` (float64)."""

from __future__ import annotations

import pytest
import torch

from invfussion import degradations as deg
from invfussion.sampling import dense_matrix

F64 = torch.float64
BUILT_IN = ["inpaint-patches", "outpaint-box", "inpaint-box", "motion-blur", "matrix", "sr", "none",
    "gaussian-blur", "uniform-blur", "sr-bicubic", "inpaint-random", "inpaint-box:size=3",
    "gaussian-blur:boundary=circular", "kernel-blur:boundary=circular", "uniform-blur:boundary=reflect",
    "kernel-blur", "motion-kernel-blur:size=5", "kernel-blur:boundary=reflect",
]
# motion-blur and sr draw their stride/factor per example: groups within groups
MIXED = ["matrix:max_rows=20", "motion-blur", "sr", "inpaint-patches", "none"]


def build(spec: str, shape: tuple[int, int, int], batch: int = 6) -> deg.Operator:
    if spec == "mixed":
        return deg.Mixture(MIXED).sample(batch, shape, seed=3)
    return deg.from_spec(spec, shape, batch=batch, seed=3)


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 8, 16)], ids=["1x8x8", "2x8x16"])
@pytest.mark.parametrize("spec", [*BUILT_IN, "mixed"])
def test_adjoint_is_the_dense_transpose(spec, shape):
    op = build(spec, shape)
    if spec == "mixed":
        assert isinstance(op, deg.GroupedOperator) and len(op.parts) >= 3
    A = dense_matrix(op)  # (B, M, n)
    M = op.measurement_size
    basis = torch.eye(M, dtype=F64).expand(op.batch_size, M, M).contiguous()  # (B, K=M, M)
    transpose = op.AT(basis).flatten(2)  # row j is Aᵀ e_j: (B, M, n)
    torch.testing.assert_close(transpose, A, rtol=1e-10, atol=1e-12)
    # Aᵀ ignores whatever y holds on padded coordinates.
    y = torch.randn(op.batch_size, M, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(op.AT(y * op.measurement_mask()), op.AT(y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("spec", [*BUILT_IN, "mixed"])
def test_inner_products_and_dtypes(spec):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for random x, y (y nonzero on padding too); (B, M) and (B, K, M)
    inputs; float32 in, float32 out, also under bf16 autocast."""
    shape = (1, 16, 16)
    op = build(spec, shape)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(op.batch_size, *shape, generator=g, dtype=F64)
    y = torch.randn(op.batch_size, op.measurement_size, generator=g, dtype=F64)
    lhs = (op.A(x) * y).sum(1)
    rhs = (x * op.AT(y)).flatten(1).sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)
    stack = torch.stack([y, 2 * y], dim=1)
    torch.testing.assert_close(op.AT(stack), torch.stack([op.AT(y), 2 * op.AT(y)], dim=1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        single = op.AT(y.float())
    assert single.dtype == torch.float32 and single.shape == x.shape
    torch.testing.assert_close(single.double(), op.AT(y), rtol=1e-4, atol=1e-5)


class NoAdjoint(deg.Operator):
    """A user's operator written before the adjoint existed."""

    def _apply(self, x):
        return x.flatten(2)


def test_operator_without_adjoint_says_what_to_implement():
    op = NoAdjoint((1, 4, 4), 16, torch.zeros(2))
    with pytest.raises(NotImplementedError, match="NoAdjoint has no adjoint; implement its _adj"):
        op.AT(torch.zeros(2, 16))
