"""``motion-blur-folded-spectrum``: the authors' folded-spectrum blur against naive references.

The references below rebuild the authors' operator from its definition with loops and explicit
DFT matrices (float64), without calling the module's code: the transfer function ``T``, the
forward map column by column (a dense matrix), and their inverse ``H_pinv``.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from invfussion import degradations as deg
from invfussion.degradations.folded_spectrum import (
    FoldedSpectrumConvolution,
    folded_spectrum_kernel,
    gaussian_window,
)

F64 = torch.float64
C128 = torch.complex128


# -- naive references ----------------------------------------------------------------------------
def dft(n: int) -> torch.Tensor:
    """The unnormalised ``n``-point DFT matrix ``F[u, p] = exp(−2πi u p / n)``."""
    k = torch.arange(n, dtype=F64)
    return torch.exp(-2j * math.pi * torch.outer(k, k) / n)


def naive_transfer(kernel: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, float]:
    """Their ``fft_kernel`` for one ``(kh, kw)`` kernel: placed at offset ``(kh//2, kw//2)`` on a
    ``(kh + kw)²`` canvas, zero-padded to ``(2H, 2W)``, DFT, conjugated, cut at ``τ``."""
    kh, kw = kernel.shape
    size = kh + kw
    assert size <= 2 * H and size <= 2 * W
    canvas = torch.zeros(2 * H, 2 * W, dtype=F64)
    for i in range(kh):
        for j in range(kw):
            canvas[(i + kh // 2) % size, (j + kw // 2) % size] = kernel[i, j]
    T = (dft(2 * H) @ canvas.to(C128) @ dft(2 * W).T).conj()
    tau = 1e-4 * float(T.abs().max() - T.abs().min())
    return torch.where(T.abs() > tau, T, 0), tau


def naive_folded_power(T: torch.Tensor, s: int) -> torch.Tensor:
    n, m = T.shape[0] // s, T.shape[1] // s
    D = torch.zeros(n, m, dtype=F64)
    for u in range(n):
        for v in range(m):
            aliases = [T[u + a * n, v + b * m] for a in range(s) for b in range(s)]
            D[u, v] = sum(abs(t) ** 2 for t in aliases) / s**2
    return D


def naive_forward(x: torch.Tensor, T: torch.Tensor, s: int) -> torch.Tensor:
    """``x: (C, H, W)`` → ``y: (C·n·m·2,)``: pad, DFT, ×T, mean over the aliases, (re, im)."""
    C, H, W = x.shape
    n, m = 2 * H // s, 2 * W // s
    out = []
    for c in range(C):
        padded = torch.zeros(2 * H, 2 * W, dtype=C128)
        padded[:H, :W] = x[c]
        Z = T * (dft(2 * H) @ padded @ dft(2 * W).T)
        folded = torch.zeros(n, m, dtype=C128)
        for a in range(s):
            for b in range(s):
                folded += Z[a * n : (a + 1) * n, b * m : (b + 1) * m]
        folded /= s**2
        out.append(torch.stack([folded.real, folded.imag], -1))
    return torch.stack(out).flatten()


def naive_inverse(y: torch.Tensor, T: torch.Tensor, weight: torch.Tensor, shape, s: int):
    """Their ``H_pinv``: ``ŷ·weight`` tiled by ``s``, ×conj(T), inverse DFT, real part, crop."""
    C, H, W = shape
    n, m = 2 * H // s, 2 * W // s
    pairs = y.reshape(C, n, m, 2)
    out = torch.zeros(C, H, W, dtype=F64)
    for c in range(C):
        low = torch.complex(pairs[c, ..., 0], pairs[c, ..., 1]) * weight
        Z = torch.zeros(2 * H, 2 * W, dtype=C128)
        for u in range(2 * H):
            for v in range(2 * W):
                Z[u, v] = T[u, v].conj() * low[u % n, v % m]
        full = dft(2 * H).conj() @ Z @ dft(2 * W).conj().T / (4 * H * W)
        out[c] = full.real[:H, :W]
    return out


def kernels_for(kh: int, kw: int) -> torch.Tensor:
    """A random positive kernel and, for even sizes, a box (exact spectral zeros: both cuts act)."""
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(kh, kw, generator=g, dtype=F64) + 0.1
    if kh % 2 == 0:
        second = torch.ones(kh, kw, dtype=F64)
    else:
        second = torch.randn(kh, kw, generator=g, dtype=F64)
    return torch.stack([rand / rand.sum(), second / second.abs().sum()])


CASES = pytest.mark.parametrize(
    "C, kh, kw, stride", [(3, 4, 4, 2), (1, 3, 2, 4)], ids=["C3-k4x4-s2", "C1-k3x2-s4"]
)
H = W = 8


@pytest.fixture(scope="module")
def references():
    """Per case: the operator, the naive ``T``/``τ``/``D`` per example and the dense matrices."""
    built = {}

    def get(C, kh, kw, stride):
        key = (C, kh, kw, stride)
        if key not in built:
            kernels = kernels_for(kh, kw)
            op = FoldedSpectrumConvolution((C, H, W), kernels, stride)
            n_in = C * H * W
            examples = []
            for k in kernels:
                T, tau = naive_transfer(k, H, W)
                D = naive_folded_power(T, stride)
                basis = torch.eye(n_in, dtype=F64).reshape(n_in, C, H, W)
                dense = torch.stack([naive_forward(e, T, stride) for e in basis], 1)  # (M, n)
                examples.append((T, tau, D, dense))
            built[key] = (op, examples)
        return built[key]

    return get


# -- the operator --------------------------------------------------------------------------------
@CASES
def test_apply_equals_dense_reference(references, C, kh, kw, stride):
    op, examples = references(C, kh, kw, stride)
    assert op.measurement_size == C * (2 * H // stride) * (2 * W // stride) * 2
    n = C * H * W
    basis = torch.eye(n, dtype=F64).reshape(1, n, C, H, W).expand(2, -1, -1, -1, -1)
    columns = op.A(basis)  # (B, n, M): row j is A e_j
    for b, (_, _, _, dense) in enumerate(examples):
        torch.testing.assert_close(columns[b].T, dense, rtol=1e-10, atol=1e-12)
    if kh % 2 == 0:  # the box kernel's spectrum has exact zeros: the cut on T removed them
        T = examples[1][0]
        assert (T == 0).any() and (op.transfer64[1, 0, 0] == 0).equal(T == 0)
    x = torch.randn(2, C, H, W, generator=torch.Generator().manual_seed(1))
    y32 = op.A(x)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), op.A(x.double()), rtol=1e-5, atol=1e-5)


@CASES
def test_adjoint_is_the_transpose(references, C, kh, kw, stride):
    op, examples = references(C, kh, kw, stride)
    M = op.measurement_size
    rows = op.AT(torch.eye(M, dtype=F64).expand(2, M, M).contiguous()).flatten(2)  # (B, M, n)
    for b, (_, _, _, dense) in enumerate(examples):
        torch.testing.assert_close(rows[b], dense, rtol=1e-10, atol=1e-12)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, C, H, W, generator=g, dtype=F64)
    y = torch.randn(2, M, generator=g, dtype=F64)
    torch.testing.assert_close(
        (op.A(x) * y).sum(1), (x * op.AT(y)).flatten(1).sum(1), rtol=1e-12, atol=1e-12
    )


@CASES
def test_pinv_is_their_inverse(references, C, kh, kw, stride):
    """``_pinv`` = their ``H_pinv(y, 0)``; ``_pinv_noisy`` = ``H_pinv(y, √λ)``, exactly ``_pinv``
    where λ = 0."""
    op, examples = references(C, kh, kw, stride)
    g = torch.Generator().manual_seed(3)
    y = torch.randn(2, op.measurement_size, generator=g, dtype=F64)
    lam = torch.tensor([0.0, 0.01], dtype=F64)
    pinv, noisy = op.pinv(y), op.pinv_noisy(y, lam)
    for b, (T, tau, D, _) in enumerate(examples):
        inverse = torch.where(D > tau, 1 / D, 0.0)
        expected = naive_inverse(y[b], T, inverse, (C, H, W), stride)
        torch.testing.assert_close(pinv[b], expected, rtol=1e-9, atol=1e-10)
        damped = torch.where(D > tau, 1 / (lam[b] + D), 0.0)
        expected = naive_inverse(y[b], T, damped, (C, H, W), stride)
        torch.testing.assert_close(noisy[b], expected, rtol=1e-9, atol=1e-10)
    if kh % 2 == 0:  # the box kernel's folded power vanishes on whole rows: D⁺ = 0 there
        assert (op.inverse64[1] == 0).any()
    assert torch.equal(noisy[0], pinv[0])
    assert torch.equal(op.pinv_noisy(y, torch.zeros(2, dtype=F64)), pinv)
    y32 = y.float()
    assert torch.equal(op.pinv_noisy(y32, torch.zeros(2)), op.pinv(y32))
    assert op.pinv(y32).dtype == torch.float32


def test_batch_independence():
    """Example b of a batch is the operator built from kernel b alone (per-example threshold)."""
    C = 2
    g = torch.Generator().manual_seed(4)
    kernels = torch.rand(3, 4, 4, generator=g, dtype=F64)
    kernels[1] *= 100.0  # a different scale: a batch-wide τ would change the others' cut
    op = FoldedSpectrumConvolution((C, H, W), kernels, 2)
    x = torch.randn(3, 2, C, H, W, generator=g, dtype=F64)
    y = torch.randn(3, 2, op.measurement_size, generator=g, dtype=F64)
    lam = torch.tensor([0.0, 0.1, 0.01], dtype=F64)
    outputs = (op.A(x), op.pinv(y), op.AT(y), op.pinv_noisy(y, lam))
    for b in range(3):
        alone = FoldedSpectrumConvolution((C, H, W), kernels[b : b + 1], 2)
        single = (
            alone.A(x[b : b + 1]),
            alone.pinv(y[b : b + 1]),
            alone.AT(y[b : b + 1]),
            alone.pinv_noisy(y[b : b + 1], lam[b : b + 1]),
        )
        for batched, one in zip(outputs, single):
            torch.testing.assert_close(batched[b], one[0], rtol=1e-12, atol=1e-12)


# -- the family ----------------------------------------------------------------------------------
def test_from_spec_shapes_and_kernels():
    op = deg.from_spec(
        "motion-blur-folded-spectrum:stride=4", image_shape=(3, 64, 64), batch=2, seed=0
    )
    assert isinstance(op, FoldedSpectrumConvolution) and op.stride == 4
    assert op.measurement_size == 3 * 32 * 32 * 2
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    y = op.measure(x, seed=0)
    assert y.shape == (2, op.measurement_size) and y.dtype == torch.float32
    assert op.pinv(y).shape == (2, 3, 64, 64)
    assert op.pinv_noisy(y).shape == (2, 3, 64, 64)
    assert op.kernels.shape == (2, 32, 32)
    torch.testing.assert_close(op.kernels.sum((1, 2)), torch.ones(2, dtype=F64))

    noisy = deg.from_spec("motion-blur-folded-spectrum:stride=2,noise=0.1", (1, 16, 16), batch=3)
    assert noisy.measure(torch.zeros(3, 1, 16, 16), seed=0).abs().sum() > 0

    # Left-out stride: drawn per example among 2, 4, 8, grouped by stride; example i alone is
    # the same operator (up to measurement padding).
    mixed = deg.from_spec("motion-blur-folded-spectrum", (1, 16, 16), batch=6, seed=1)
    x = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(6), dtype=F64)
    y = mixed.A(x)
    for i in range(6):
        alone = deg.from_spec("motion-blur-folded-spectrum", (1, 16, 16), seed=1, indices=(i,))
        M = alone.measurement_size
        torch.testing.assert_close(y[i, :M], alone.A(x[i : i + 1])[0], rtol=1e-12, atol=1e-12)
        assert (y[i, M:] == 0).all()


def test_family_kernel_is_shake_convolved_with_their_gaussian():
    """The kernel: our camera shake at (H/2, W/2), centred, ∗ their Gaussian (conv2d 'same')."""
    window = gaussian_window(6, 6, 2.0)
    offsets = torch.arange(-2, 4, dtype=F64)  # their grid -((k-1)//2) … k//2 for k = 6
    expected = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / 8)
    torch.testing.assert_close(window, expected / expected.sum())
    kernel = folded_spectrum_kernel((12, 12), 2, 0.5, torch.Generator().manual_seed(7))
    shake = deg.camera_shake_kernel(6, 6, 0.5, torch.Generator().manual_seed(7))
    shake = shake.roll((3, 3), (0, 1))
    with warnings.catch_warnings():  # torch warns (once) about 'same' with even kernel sizes
        warnings.simplefilter("ignore", UserWarning)
        same = F.conv2d(shake[None, None], window[None, None], padding="same")[0, 0]
    torch.testing.assert_close(kernel, same / same.sum())


@pytest.mark.parametrize(
    "spec, shape, match",
    [
        (
            "motion-blur-folded-spectrum:stride=4",
            (1, 5, 5),
            r"stride=4 does not divide .* 10×10; use one of 2\.",
        ),
        ("motion-blur-folded-spectrum:stride=8", (3, 6, 8), r"stride=8 does not divide .* 12×16"),
        ("motion-blur-folded-spectrum:stride=3", (1, 16, 16), r"stride"),
        ("motion-blur-folded-spectrum", (1, 1, 8), r"at least 2×2"),
    ],
)
def test_spec_errors(spec, shape, match):
    with pytest.raises(ValueError, match=match):
        deg.from_spec(spec, shape, batch=2)


def test_constructor_errors():
    with pytest.raises(ValueError, match="must divide twice the image size"):
        FoldedSpectrumConvolution((1, 5, 5), torch.ones(1, 2, 2), 4)
    with pytest.raises(ValueError, match=r"real \(B, kh, kw\)"):
        FoldedSpectrumConvolution((1, 8, 8), torch.ones(2, 2), 2)
    with pytest.raises(ValueError, match="not all zero"):
        FoldedSpectrumConvolution((1, 8, 8), torch.zeros(1, 2, 2), 2)
