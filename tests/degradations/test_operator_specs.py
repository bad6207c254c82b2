"""Spec parsing, registration, validation of generated operators and bad-spec errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invfussion import degradations as deg
from invfussion.degradations.motion_blur import camera_shake_kernel

SHAPES = [(1, 32, 32), (3, 64, 64)]


def test_parse_spec():
    assert deg.parse_spec("inpaint-patches:size=4, keep=0.1") == (
        "inpaint-patches",
        {"size": "4", "keep": "0.1"},
    )
    assert deg.parse_spec("none") == ("none", {})
    assert set(deg.FAMILIES) >= {
        "inpaint-patches",
        "outpaint-box",
        "inpaint-box",
        "motion-blur",
        "matrix",
        "sr",
        "none",
    }


BAD_SPECS = [
    ("", "non-empty"),
    (":size=2", "no family"),
    ("blur", "unknown degradation family 'blur'; choose one of inpaint-patches"),
    ("sr:size=2", "unknown parameter 'size'; allowed: factor, noise"),
    ("sr:factor", "not of the form key=value"),
    ("sr:factor=2,factor=4", "sets 'factor' twice"),
    ("sr:factor=3", "factor=3 does not divide the image size 32×32"),
    ("sr:factor=0", "factor must be an integer >= 1"),
    ("sr:factor=2.5", "factor must be an integer >= 1"),
    ("motion-blur:stride=3", "stride must be one of 2, 4, 8"),
    ("motion-blur:intensity=1.5", "intensity must be a number >= 0 and <= 1"),
    ("motion-blur:intensity=nan", "intensity must be a number"),
    ("inpaint-patches:keep=0", "keep must be a number > 0 and <= 1"),
    ("inpaint-patches:size=64", "size=64 is larger than the image; size must be 1..32"),
    ("matrix:rows=2000", "rows=2000 exceeds the image dimension C·H·W=1024"),
    ("matrix:rows=20,max_rows=10", "rows=20 exceeds max_rows=10"),
    ("matrix:min_rows=200", "min_rows=200 exceeds max_rows=128"),
    ("matrix:rows=20,min_rows=10", "give rows (a fixed count) or min_rows (a range), not both"),
    ("none:noise=-1", "noise must be a number >= 0"),
    ("outpaint-box:noise=abc", "noise=abc is not allowed"),
]


@pytest.mark.parametrize("spec, message", BAD_SPECS)
def test_bad_spec_raises_one_clear_value_error(spec, message):
    with pytest.raises(ValueError) as info:
        deg.from_spec(spec, (1, 32, 32), batch=2)
    text = str(info.value)
    assert message in text
    assert text.count(". ") == 0 and text.endswith(".")  # one sentence


def test_stride_not_dividing_the_image():
    with pytest.raises(
        ValueError, match=r"stride=8 does not divide the image size 36×36; use one of 2, 4\."
    ):
        deg.from_spec("motion-blur:stride=8", (1, 36, 36))
    with pytest.raises(ValueError, match="divisible by 2, 4 or 8"):
        deg.from_spec("motion-blur", (1, 33, 33))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (32, 32)}, "image_shape must be three positive integers"),
        ({"image_shape": (1, 0, 32)}, "image_shape must be three positive integers"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"indices": []}, "indices must be a non-empty sequence"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        deg.from_spec("none", **{"image_shape": (1, 32, 32), **kwargs})


def test_noise_parameter_sets_noise_std_and_measure_noise_only_on_real_coordinates():
    op = deg.from_spec("inpaint-patches:size=4,keep=0.3,noise=0.1", (1, 32, 32), batch=3, seed=2)
    assert torch.equal(op.noise_std, torch.full((3,), 0.1))
    x = torch.zeros(3, 1, 32, 32)
    y = op.measure(x, seed=0)
    mask = op.measurement_mask()
    assert (y[~mask] == 0).all()
    assert abs(float(y[mask].std()) - 0.1) < 0.02
    assert torch.equal(
        deg.from_spec("inpaint-patches", (1, 32, 32), batch=2).noise_std, torch.zeros(2)
    )


def test_matrix_min_rows_bounds_the_draw_and_one_leaves_the_stream_unchanged():
    rich = deg.from_spec("matrix:min_rows=100", (1, 32, 32), batch=64, seed=3)
    counts = rich.rows.sum(1)
    assert counts.min() >= 100 and counts.max() <= 128 and len(set(counts.tolist())) > 5
    plain = deg.from_spec("matrix", (1, 32, 32), batch=8, seed=3)
    one = deg.from_spec("matrix:min_rows=1", (1, 32, 32), batch=8, seed=3)
    assert torch.equal(plain.rows, one.rows) and torch.equal(plain.matrix32, one.matrix32)


def test_given_parameters_are_used():
    op = deg.from_spec("motion-blur:stride=4,intensity=0.5", (3, 64, 64), batch=3)
    assert op.measurement_size == 3 * 16 * 16 and op.stride == 4
    op = deg.from_spec("matrix:rows=64", (1, 32, 32), batch=3)
    assert op.measurement_size == 64 and op.measurement_mask().all()
    op = deg.from_spec("matrix", (1, 32, 32), batch=8)
    assert op.measurement_size == 128 and len(set(op.measurement_mask().sum(1).tolist())) > 1
    op = deg.from_spec("inpaint-patches:size=8,keep=1", (1, 32, 32), batch=2)
    assert op.measurement_mask().all()
    op = deg.from_spec("sr:factor=4", (1, 32, 32), batch=2)
    torch.testing.assert_close(op.A(torch.ones(2, 1, 32, 32)), torch.ones(2, 64))


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    size=st.sampled_from([1, 4, 32]),
    keep=st.sampled_from([1e-9, 0.01]),
)
def test_patch_masks_are_never_empty(seed, size, keep):
    op = deg.from_spec(f"inpaint-patches:size={size},keep={keep}", (1, 32, 32), batch=2, seed=seed)
    assert op.measurement_mask().any(1).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_boxes(seed):
    """outpaint-box shows one axis-aligned rectangle; inpaint-box hides one and shows the rest."""
    for family in ("outpaint-box", "inpaint-box"):
        op = deg.from_spec(family, (1, 32, 32), batch=4, seed=seed)
        for visible in op.mask:
            box = visible if family == "outpaint-box" else ~visible
            assert visible.any() and box.any()
            rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
            assert box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
            assert int(box.sum()) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), intensity=st.floats(0, 1), size=st.sampled_from([8, 32, 64]))
def test_camera_shake_kernels_are_finite_normalised_and_bounded(seed, intensity, size):
    kernel = camera_shake_kernel(size, size, intensity, torch.Generator().manual_seed(seed))
    assert torch.isfinite(kernel).all() and (kernel >= 0).all()
    assert math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-12)
    # support (on the torus, centred at 0) spans at most the documented length plus the splat
    shifted = torch.roll(kernel, (size // 2, size // 2), (0, 1)) > 0
    rows, cols = shifted.any(1).nonzero().flatten(), shifted.any(0).nonzero().flatten()
    span = max(rows.max() - rows.min(), cols.max() - cols.min())
    assert span <= math.ceil((0.1 + 0.4 * intensity) * size) + 2


def test_straight_shake_at_zero_intensity():
    """Intensity 0 gives a straight segment: the kernel's spread across it is only the splat's."""
    size = 256
    kernel = torch.roll(
        camera_shake_kernel(size, size, 0.0, torch.Generator().manual_seed(3)), (128, 128), (0, 1)
    )
    points = kernel.nonzero().double()
    weights = kernel[kernel > 0][:, None]
    centred = points - (weights * points).sum(0)
    variances = torch.linalg.eigvalsh(centred.T @ (weights * centred))
    assert variances[0] < 0.25  # bilinear splat across the line
    assert variances[1] > (0.1 * size) ** 2 / 12 * 0.8  # a segment of the documented length


class Identity(deg.Operator):
    def __init__(self, image_shape, batch):
        super().__init__(image_shape, math.prod(image_shape), torch.zeros(batch))

    def _apply(self, x):
        return x.flatten(2)

    def _pinv(self, y):
        return y.unflatten(2, self.image_shape)


class IdentityFamily:
    params = (deg.Param("gain", float, "unused", low=0.0),)

    @classmethod
    def build(cls, values, image_shape, generators):
        return Identity(image_shape, len(generators))


def test_register_user_family():
    deg.register("identity-test", IdentityFamily, replace=True)
    assert "identity-test" in deg.FAMILIES
    op = deg.from_spec("identity-test:gain=2,noise=0.5", (1, 8, 8), batch=2)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(op.pinv(op.A(x)), x)
    assert torch.equal(op.noise_std, torch.full((2,), 0.5))
    mixed = deg.Mixture(["identity-test", "none"]).sample(8, (1, 8, 8), seed=0)
    assert mixed.batch_size == 8
    with pytest.raises(ValueError, match="already registered"):
        deg.register("identity-test", IdentityFamily)
    with pytest.raises(ValueError, match="no build"):
        deg.register("broken", object)
    with pytest.raises(ValueError, match="without ':'"):
        deg.register("a:b", IdentityFamily)


def test_measurement_noise_of_an_example_depends_on_its_global_index_only():
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    batch = deg.from_spec("sr:factor=2,noise=0.3", (1, 16, 16), batch=8, seed=4)
    single = deg.from_spec("sr:factor=2,noise=0.3", (1, 16, 16), seed=4, indices=[5])
    y_batch = batch.measure(x, seed=9)
    y_single = single.measure(x[5:6], seed=9, indices=[5])
    torch.testing.assert_close(y_single[0], y_batch[5])
    assert not torch.allclose(y_batch[5], y_batch[4])
