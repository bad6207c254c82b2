"""Batched operators against naive references (loops, dense matrices), and mixtures."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invfussion import degradations as deg
from invfussion.degradations.motion_blur import SINGULAR_THRESHOLD


def dense(op: deg.Operator, b: int) -> torch.Tensor:
    """The ``(M, n)`` float64 matrix of example ``b``: column j is A e_j."""
    n = torch.Size(op.image_shape).numel()
    stack = torch.zeros(op.batch_size, n, *op.image_shape, dtype=torch.float64)
    stack[b] = torch.eye(n, dtype=torch.float64).reshape(n, *op.image_shape)
    return op.A(stack)[b].T


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), stride=st.sampled_from([2, 4, 8]))
def test_motion_blur_is_strided_circular_convolution(seed, stride):
    """A x = (k ⊛ x)[::s, ::s] with k the inverse DFT of the operator's spectrum, by a loop over taps."""
    C, H, W = 2, 16, 16
    op = deg.from_spec(f"motion-blur:stride={stride}", (C, H, W), batch=2, seed=seed)
    x = torch.randn(2, C, H, W, dtype=torch.float64)
    for b in range(2):
        kernel = torch.fft.irfft2(op.spectrum64[b, 0, 0], s=(H, W))
        assert torch.isfinite(kernel).all() and torch.isclose(
            kernel.sum(), torch.tensor(1.0, dtype=torch.float64)
        )
        blurred = sum(
            kernel[p, q] * torch.roll(x[b], (p, q), (1, 2)) for p in range(H) for q in range(W)
        )
        torch.testing.assert_close(op.A(x)[b], blurred[:, ::stride, ::stride].flatten())


@pytest.mark.parametrize("spec", ["motion-blur", "sr", "matrix:rows=50"])
def test_pinv_equals_dense_pseudo_inverse(spec):
    """A⁺ equals torch.linalg.pinv of the dense matrix (motion blur: same singular-value cut)."""
    op = deg.from_spec(spec, (1, 16, 16), batch=3, seed=7)
    y = torch.randn(3, op.measurement_size, dtype=torch.float64)
    rtol = SINGULAR_THRESHOLD if spec == "motion-blur" else 1e-10
    for b in range(3):
        expected = torch.linalg.pinv(dense(op, b), rtol=rtol) @ y[b]
        torch.testing.assert_close(op.pinv(y)[b].flatten(), expected, rtol=1e-7, atol=1e-9)


def test_sr_is_block_mean():
    op = deg.from_spec("sr:factor=4", (2, 16, 16), batch=1)
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    blocks = torch.stack(
        [
            torch.stack(
                [
                    x[0, c, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].mean()
                    for i in range(4)
                    for j in range(4)
                ]
            )
            for c in range(2)
        ]
    )
    torch.testing.assert_close(op.A(x)[0], blocks.flatten())


def test_matrix_rows_have_unit_norm_and_padding_is_zero():
    op = deg.from_spec("matrix", (1, 16, 16), batch=4, seed=1)
    for b in range(4):
        matrix = dense(op, b)
        norms = matrix.norm(dim=1)
        mask = op.measurement_mask()[b]
        torch.testing.assert_close(
            norms[mask], torch.ones(int(mask.sum()), dtype=torch.float64), rtol=1e-6, atol=1e-6
        )
        assert (norms[~mask] == 0).all()


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_mixture_example_is_its_family_example(seed):
    """Mixture example i is from_spec(spec_i, seed, indices=[i]) exactly, padding masked out."""
    mixture = deg.Mixture(["motion-blur", "sr", "matrix", "inpaint-patches", "none"])
    shape = (1, 32, 32)
    indices = list(range(5, 17))
    op = mixture.sample(None, shape, seed=seed, indices=indices)
    x = torch.randn(len(indices), *shape, dtype=torch.float64)
    y = op.A(x)
    mask = op.measurement_mask()
    assert (y[~mask] == 0).all()
    for b, (i, spec) in enumerate(zip(indices, mixture.choose(seed, indices))):
        single = deg.from_spec(spec, shape, seed=seed, indices=[i])
        m = single.measurement_size
        torch.testing.assert_close(y[b, :m], single.A(x[b : b + 1])[0], rtol=0, atol=1e-12)
        assert torch.equal(mask[b, :m], single.measurement_mask()[0]) and not mask[b, m:].any()


def test_mixture_weights_and_paper_default():
    mixture = deg.Mixture(["sr", "none", "matrix"], weights=[3, 0, 1])
    counts = {spec: 0 for spec in mixture.specs}
    for spec in mixture.choose(0, range(2000)):
        counts[spec] += 1
    assert counts["none"] == 0 and 1400 < counts["sr"] < 1600
    assert deg.PAPER_MIXTURE.specs == deg.paper_mixture().specs == deg.Mixture.paper().specs
    assert sorted(deg.PAPER_MIXTURE.specs) == ["inpaint-patches", "matrix", "motion-blur", "none"]
    assert deg.PAPER_MIXTURE.weights == [0.25] * 4


@pytest.mark.parametrize(
    "specs, weights, message",
    [
        ([], None, "at least one spec"),
        (["sr", "blur"], None, "unknown degradation family 'blur'"),
        (["sr"], [1, 2], "weights must be 1 non-negative numbers"),
        (["sr", "none"], [0, 0], "not all zero"),
        (["sr", "none"], [-1, 2], "non-negative"),
    ],
)
def test_bad_mixtures(specs, weights, message):
    with pytest.raises(ValueError, match=message):
        deg.Mixture(specs, weights)


def test_to_moves_every_tensor():
    op = deg.PAPER_MIXTURE.sample(16, (1, 16, 16), seed=0)
    moved = op.to("meta")
    assert op.device.type == "cpu"  # the original is untouched

    def tensors(o):
        for value in vars(o).values():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, deg.Operator):
                    yield from tensors(item)
                elif isinstance(item, torch.Tensor):
                    yield item

    assert {t.device.type for t in tensors(moved)} == {"meta"}
    assert moved.measurement_mask().device.type == "meta"
