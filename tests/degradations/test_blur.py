"""The literature's operators (issue 29) against references: dense matrices, ``F.conv2d`` with zero
padding, loops over circular shifts, ``F.interpolate``, ``torch.linalg.pinv``; masks by counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from invfussion import degradations as deg
from invfussion.degradations.blur import PINV_CG_RTOL, gaussian_kernel_1d
from invfussion.degradations.motion_blur import SINGULAR_THRESHOLD
from invfussion.degradations.separable import SeparableOperator
from invfussion.sampling import dense_matrix

F64 = torch.float64


def same_convolution(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded "same" convolution of ``x: (C, H, W)`` with ``kernel: (L_h, L_w)``, centre ⌊L/2⌋."""
    L_h, L_w = kernel.shape
    padded = F.pad(x[:, None], (L_w - 1 - L_w // 2, L_w // 2, L_h - 1 - L_h // 2, L_h // 2))
    return F.conv2d(padded, kernel.flip(0, 1)[None, None].to(x.dtype))[:, 0]


def reflect_convolution(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """DPS's blur: ``F.pad(mode="reflect")`` then a valid convolution; ``x: (C, H, W)``."""
    L_h, L_w = kernel.shape
    padded = F.pad(x[:, None], (L_w - 1 - L_w // 2, L_w // 2, L_h - 1 - L_h // 2, L_h // 2), mode="reflect")
    return F.conv2d(padded, kernel.flip(0, 1)[None, None].to(x.dtype))[:, 0]


def dense_pinv_check(op: deg.Operator, rtol: float) -> None:
    y = torch.randn(op.batch_size, op.measurement_size, dtype=F64, generator=torch.Generator().manual_seed(0))
    A = dense_matrix(op)
    expected = (torch.linalg.pinv(A, rtol=rtol) @ y[..., None])[..., 0]
    torch.testing.assert_close(op.pinv(y).flatten(1), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("spec", ["gaussian-blur:size=7,std=1.5", "uniform-blur:size=4"])
def test_separable_same_blur_is_zero_padded_convolution(spec):
    op = deg.from_spec(spec, (2, 12, 10), batch=2, seed=0)
    assert isinstance(op, SeparableOperator)
    x = torch.randn(2, 2, 12, 10, dtype=F64)
    if spec.startswith("gaussian"):
        g = gaussian_kernel_1d(7, 1.5)
        kernel = g[:, None] * g[None, :]
    else:
        kernel = torch.full((4, 4), 1 / 16, dtype=F64)
    for b in range(2):
        torch.testing.assert_close(op.A(x)[b], same_convolution(x[b], kernel).flatten())


@pytest.mark.parametrize("spec", ["gaussian-blur:size=7,std=1.5,boundary=reflect", "uniform-blur:size=4,boundary=reflect"])
def test_separable_reflect_blur_is_dps_reflection_padding_then_valid_convolution(spec):
    """Against ``F.pad(mode="reflect")`` + ``F.conv2d`` (DPS's ``Blurkernel``); the closed-form
    ``A⁺`` is the dense pseudo-inverse with the same singular-value cut."""
    op = deg.from_spec(spec, (2, 12, 10), batch=2, seed=5)
    assert isinstance(op, SeparableOperator)
    g = gaussian_kernel_1d(7, 1.5) if spec.startswith("gaussian") else torch.full((4,), 0.25, dtype=F64)
    x = torch.randn(2, 2, 12, 10, dtype=F64, generator=torch.Generator().manual_seed(0))
    for b in range(2):
        torch.testing.assert_close(op.A(x)[b], reflect_convolution(x[b], g[:, None] * g[None, :]).flatten())
    dense_pinv_check(op, SINGULAR_THRESHOLD)


def test_padded_convolution_with_reflection_equals_pad_and_conv2d():
    """Non-separable kernels of different (odd, even, oblong) sizes in one batch: ``A`` against
    ``F.pad(mode="reflect")`` + ``F.conv2d``, ``Aᵀ`` against the dense transpose."""
    g = torch.Generator().manual_seed(3)
    kernels = [torch.rand(shape, generator=g, dtype=F64) for shape in ((5, 5), (4, 6), (9, 3))]
    op = deg.PaddedConvolution((2, 12, 10), kernels, "reflect")
    x = torch.randn(3, 2, 12, 10, dtype=F64, generator=g)
    for b, kernel in enumerate(kernels):
        torch.testing.assert_close(op.A(x)[b], reflect_convolution(x[b], kernel).flatten())
    y = torch.randn(3, op.measurement_size, dtype=F64, generator=g)
    torch.testing.assert_close(op.AT(y).flatten(1), (dense_matrix(op).mT @ y[..., None])[..., 0])


def test_gaussian_kernel_is_scipy_truncated():
    """std 3 at size 61 (DPS): zero beyond radius ⌊4·3 + 0.5⌋ = 12, a sampled Gaussian inside."""
    g = gaussian_kernel_1d(61, 3.0)
    t = torch.arange(61, dtype=F64) - 30
    assert (g[t.abs() > 12] == 0).all() and abs(float(g.sum()) - 1) < 1e-12
    inside = torch.exp(-t[t.abs() <= 12] ** 2 / 18)
    torch.testing.assert_close(g[t.abs() <= 12], inside / inside.sum())


@pytest.mark.parametrize("spec", ["kernel-blur:boundary=same", "motion-kernel-blur:size=7,intensity=0.5,boundary=same"])
def test_zero_padded_convolution_equals_conv2d(spec):
    """A by FFT on the padded grid equals F.conv2d with zero padding; the kernel is recovered as
    the response to a delta at the centre of a large image."""
    op = deg.from_spec(spec, (1, 40, 40), batch=3, seed=1)
    assert isinstance(op, deg.PaddedConvolution)
    delta = torch.zeros(3, 1, 40, 40, dtype=F64)
    delta[:, :, 20, 20] = 1
    responses = op.A(delta).view(3, 40, 40)
    x = torch.randn(3, 1, 40, 40, dtype=F64, generator=torch.Generator().manual_seed(2))
    for b in range(3):
        nz = responses[b].abs() > 1e-12
        rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
        # the kernel window: odd side L, its centre at the delta
        L = max(20 - int(rows.min()), int(rows.max()) - 20, 20 - int(cols.min()), int(cols.max()) - 20)
        kernel = responses[b, 20 - L : 21 + L, 20 - L : 21 + L]
        assert abs(float(kernel.sum()) - 1) < 1e-10 and (kernel > -1e-12).all()
        torch.testing.assert_close(op.A(x)[b], same_convolution(x[b], kernel).flatten())


@pytest.mark.parametrize("spec", ["gaussian-blur:std=1,boundary=circular", "kernel-blur:boundary=circular"])
def test_circular_blur_is_a_loop_over_circular_shifts(spec):
    C, H, W = 2, 8, 8
    op = deg.from_spec(spec, (C, H, W), batch=2, seed=4)
    x = torch.randn(2, C, H, W, dtype=F64)
    for b in range(2):
        kernel = torch.fft.irfft2(op.spectrum64[b, 0, 0], s=(H, W))  # on the torus, centre (0, 0)
        blurred = sum(kernel[p, q] * torch.roll(x[b], (p, q), (1, 2)) for p in range(H) for q in range(W))
        torch.testing.assert_close(op.A(x)[b], blurred.flatten())
    # the closed-form A⁺ is the dense pseudo-inverse with the same singular-value cut
    dense_pinv_check(op, SINGULAR_THRESHOLD)


@pytest.mark.parametrize(
    "spec", ["gaussian-blur:std=2", "uniform-blur", "sr-bicubic:factor=2", "sr-bicubic:factor=4"]
)
def test_separable_pinv_is_the_dense_pseudo_inverse(spec):
    op = deg.from_spec(spec, (1, 16, 12), batch=3, seed=7)
    dense_pinv_check(op, SINGULAR_THRESHOLD)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 24)])
def test_bicubic_matches_interpolate(factor, shape):
    op = deg.from_spec(f"sr-bicubic:factor={factor}", shape, batch=2)
    x = torch.randn(2, *shape, dtype=F64)
    reference = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(op.A(x), reference.flatten(1), rtol=1e-12, atol=1e-12)
    assert op.measurement_size == shape[0] * shape[1] * shape[2] // factor**2


@pytest.mark.parametrize("spec", ["kernel-blur:boundary=same", "motion-kernel-blur:size=5,boundary=same"])
def test_cg_inverses_against_dense_solves(spec):
    """Zero-padded blur with a non-separable kernel (8×8, float64): A⁺_σ by CG equals the dense
    Tikhonov solve; A⁺ by CG on the normal equations meets the Moore–Penrose identities of
    consistent data to the CG tolerance, and equals the dense pseudo-inverse where A is well
    conditioned."""
    op = deg.from_spec(spec, (1, 8, 8), batch=3, seed=3)
    op.noise_std = torch.tensor([0.0, 0.05, 0.2])
    A = dense_matrix(op)
    y = torch.randn(3, op.measurement_size, dtype=F64, generator=torch.Generator().manual_seed(1))
    lam = (op.noise_std.to(F64) / 0.5).square()
    eye = torch.eye(64, dtype=F64)
    reference = (A.mT @ torch.linalg.solve(A @ A.mT + lam[:, None, None] * eye, y[..., None]))[..., 0]
    error = (op.pinv_noisy(y).flatten(1) - reference).norm(dim=1) / reference.norm(dim=1)
    assert float(error[1:].max()) < 1e-4  # CG to a residual of 1e-6 (base.CG_RTOL)
    x = torch.randn(3, 1, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(2))
    Ax = op.A(x)
    pinv = op.pinv(Ax)
    residual = (op.A(pinv) - Ax).norm(dim=1) / Ax.norm(dim=1)
    assert float(residual.max()) < 1e-3
    exact = (torch.linalg.pinv(A) @ Ax[..., None])[..., 0]
    conditioned = torch.linalg.cond(A) < 1e3
    if bool(conditioned.any()):
        error = (pinv.flatten(1) - exact).norm(dim=1) / exact.norm(dim=1)
        assert float(error[conditioned].max()) < 1e-3
    assert PINV_CG_RTOL <= 1e-7


def test_kernel_files(tmp_path):
    """A .npy kernel and the same kernel as a PNG give the same operator; bad files: one line."""
    kernel = np.zeros((5, 5))
    kernel[2, :] = 1.0
    kernel[1, 3] = 2.0
    np.save(tmp_path / "k.npy", kernel)
    Image.fromarray((kernel * 100).astype(np.uint8)).save(tmp_path / "k.png")
    x = torch.randn(1, 1, 16, 16, dtype=F64)
    a = deg.from_spec(f"kernel-blur:file={tmp_path / 'k.npy'},boundary=same", (1, 16, 16)).A(x)
    b = deg.from_spec(f"kernel-blur:file={tmp_path / 'k.png'},boundary=same,noise=0.1", (1, 16, 16)).A(x)
    torch.testing.assert_close(a, b)
    expected = same_convolution(x[0], torch.as_tensor(kernel / kernel.sum())).flatten()
    torch.testing.assert_close(a[0], expected)
    np.save(tmp_path / "bad.npy", np.zeros((3, 3, 3)))
    (tmp_path / "junk.png").write_text("not an image")
    for name, message in [
        ("missing.npy", "does not exist; give a .npy array or an image"),
        ("bad.npy", "a kernel must be 2-D"),
        ("junk.png", "cannot read"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            deg.from_spec(f"kernel-blur:file={tmp_path / name}", (1, 16, 16))
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gaussian-blur:boundary=mirror", "boundary must be one of same, reflect, circular"),
        ("gaussian-blur:size=81,std=10,boundary=reflect", "the kernel reaches 40 pixels past an edge of a side of 32"),
        ("motion-kernel-blur:size=65,boundary=reflect", "the kernel reaches 32 pixels past an edge of a side of 32"),
        ("gaussian-blur:std=0", "std must be a number > 0"),
        ("inpaint-random:missing=1", "missing must be < 1"),
        ("inpaint-box:size=32", "size=32 hides the whole 32×32 image; size must be 1..31"),
        ("sr-bicubic:factor=3", "sr-bicubic: factor=3 does not divide the image size 32×32"),
    ],
)
def test_bad_new_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        deg.from_spec(spec, (1, 32, 32), batch=2)


def test_random_inpainting_hides_exactly_the_fraction():
    op = deg.from_spec("inpaint-random:missing=0.7", (3, 16, 16), batch=4, seed=0)
    hidden = (~op.mask).flatten(1).sum(1)
    assert hidden.tolist() == [int(0.7 * 256)] * 4
    assert len({tuple(m.flatten().tolist()) for m in op.mask}) == 4  # different per example
    drawn = deg.from_spec("inpaint-random", (1, 32, 32), batch=8, seed=0)
    fractions = (~drawn.mask).flatten(1).float().mean(1)
    assert bool(((fractions >= 0.5 - 1e-3) & (fractions <= 0.95)).all())


def test_box_of_a_given_size_is_a_square_inside_the_margin():
    op = deg.from_spec("inpaint-box:size=128", (3, 256, 256), batch=16, seed=0)
    corners = set()
    for visible in op.mask:
        hidden = ~visible
        rows, cols = hidden.any(1).nonzero().flatten(), hidden.any(0).nonzero().flatten()
        assert int(hidden.sum()) == 128 * 128 and len(rows) == len(cols) == 128
        assert 16 <= int(rows.min()) and int(rows.max()) < 256 - 16
        assert 16 <= int(cols.min()) and int(cols.max()) < 256 - 16
        corners.add((int(rows.min()), int(cols.min())))
    assert len(corners) > 8
    # left out: the old random rectangle
    assert deg.from_spec("inpaint-box", (1, 32, 32), batch=2, seed=0).mask.shape == (2, 32, 32)


@pytest.mark.parametrize("spec", ["kernel-blur:boundary=same", "motion-kernel-blur:size=9,boundary=reflect"])
def test_autograd_through_the_cg_inverses_is_the_solved_linear_map(spec):
    """Autograd through conjugate gradients differentiates the solve, not its iterations: at
    σ_y > 0 (well conditioned) d⟨A⁺_σ y, u⟩/dy is (A⁺_σ)ᵀ u, checked as ⟨∇, v⟩ = ⟨u, A⁺_σ v⟩;
    at σ_y = 0 the gradient stays on the scale of A⁺ itself (differentiating 1,000 unrolled
    iterations gave 1e24)."""
    op = deg.from_spec(spec, (1, 16, 16), batch=3, seed=0).with_noise_std(torch.tensor([0.0, 0.05, 0.2]))
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, op.measurement_size, generator=g)
    u = torch.randn(3, 1, 16, 16, generator=g)
    y = v.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((op.pinv_noisy(y) * u).sum(), y)
    solved = op.pinv_noisy(v)
    lhs, rhs = (grad * v).sum(1), (u * solved).flatten(1).sum(1)
    torch.testing.assert_close(lhs[1:], rhs[1:], rtol=1e-4, atol=1e-3)
    scale = solved[0].norm() / v[0].norm()  # ‖A⁺ v‖/‖v‖ of the noiseless example
    assert float(grad[0].norm() / u[0].norm()) < 10 * float(scale)
