"""Grouped operators in part order (contiguous slices, what the training loader feeds) against the
same operators in any order, and ``round_trip`` against ``A⁺ transform(y, A z)`` on padded
measurements."""

import pytest
import torch
import torch.nn.functional as F

from invfussion import degradations as deg

SHAPE = (1, 16, 16)
MIXTURE = deg.Mixture(["matrix:max_rows=40", "motion-blur", "inpaint-patches", "none", "sr"])


def mixed(batch=24, seed=3):
    op = MIXTURE.sample(batch, SHAPE, seed=seed)
    assert isinstance(op, deg.GroupedOperator) and not op.contiguous
    return op


def transform(y, measured):  # acts per measurement coordinate, as the FDL's mix does
    return F.gelu(measured * 0.7 - 0.3 * y[:, None])


def test_part_order_is_a_permutation_and_every_level_is_contiguous():
    op = mixed()
    ordered, order = deg.in_part_order(op)
    assert sorted(order) == list(range(op.batch_size)) and order != sorted(order)
    assert ordered.contiguous
    nested = [p for p in ordered.parts if isinstance(p, deg.GroupedOperator)]
    assert nested and all(p.contiguous for p in nested)  # motion-blur strides
    torch.testing.assert_close(ordered.noise_std, op.noise_std[order])
    torch.testing.assert_close(ordered.measurement_mask(), op.measurement_mask()[order])


def test_reordered_operator_is_the_same_operator_per_example():
    op = mixed()
    ordered, order = deg.in_part_order(op)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(op.batch_size, 3, *SHAPE, generator=gen, dtype=torch.float64)
    y = torch.randn(op.batch_size, 3, op.measurement_size, generator=gen, dtype=torch.float64)
    y = y * op.measurement_mask()[:, None]
    torch.testing.assert_close(ordered.A(x[order]), op.A(x)[order])
    torch.testing.assert_close(ordered.pinv(y[order]), op.pinv(y)[order])
    torch.testing.assert_close(ordered.AT(y[order]), op.AT(y)[order])


def test_round_trip_equals_pinv_of_transform_on_padded_measurements():
    op = mixed()
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(op.batch_size, 4, *SHAPE, generator=gen, dtype=torch.float64)
    y = op.A(torch.randn(op.batch_size, *SHAPE, generator=gen, dtype=torch.float64))
    # the reference: padded coordinates of every part are dropped again by A⁺
    reference = op.pinv(transform(y, op.A(z)))
    for operator, rows in ((op, list(range(op.batch_size))), deg.in_part_order(op)):
        torch.testing.assert_close(operator.round_trip(z[rows], y[rows], transform), reference[rows])


def test_round_trip_gradients_flow_in_both_orders():
    op = mixed()
    ordered, order = deg.in_part_order(op)
    z = torch.randn(op.batch_size, 2, *SHAPE, generator=torch.Generator().manual_seed(2))
    y = op.A(torch.randn(op.batch_size, *SHAPE))
    grads = []
    for operator, rows in ((op, list(range(op.batch_size))), (ordered, order)):
        leaf = z.clone().requires_grad_(True)
        operator.round_trip(leaf[rows], y[rows], transform).square().sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_part_order_keeps_the_noise_a_spec_sets_on_a_grouped_family():
    """``motion-blur:noise=0.1`` builds a stride-grouped operator whose parts never saw σ_y:
    reordering must keep the outer operator's noise, at every level."""
    op = deg.Mixture(["motion-blur:noise=0.1", "matrix"]).sample(16, SHAPE, seed=0)
    ordered, order = deg.in_part_order(op)
    torch.testing.assert_close(ordered.noise_std, op.noise_std[order])
    assert bool((ordered.noise_std > 0).any())
    again, _ = deg.in_part_order(ordered)
    torch.testing.assert_close(again.noise_std, ordered.noise_std)


def test_round_trip_and_noisy_inverse_name_the_shapes_they_expect():
    op = mixed(batch=4)
    z = torch.zeros(4, 2, *SHAPE)
    y = torch.zeros(4, op.measurement_size)
    with pytest.raises(ValueError, match="round_trip expects an image stack"):
        op.round_trip(z[:, 0], y, transform)
    with pytest.raises(ValueError, match="round_trip expects .* and y of shape"):
        op.round_trip(z, y[:, :3], transform)
    with pytest.raises(ValueError, match=r"lam must have shape \(4,\)"):
        op.pinv_noisy(y, lam=torch.zeros(3))
