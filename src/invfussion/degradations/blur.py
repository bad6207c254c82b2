"""Blur by convolution with a Gaussian, a uniform, a camera-shake or the user's own kernel.

Families (every one also takes ``noise=σ_y`` and ``boundary=same|reflect|circular``; the default is
``same`` for the separable Gaussian and uniform kernels, whose zero-padded and mirrored ``A⁺`` are
exact, and ``circular`` for the others, whose padded ``A⁺`` is only approximated by conjugate
gradients):

- ``gaussian-blur:size=61,std=3``: a sampled Gaussian, truncated at radius ``⌊4·std + 0.5⌋`` as
  ``scipy.ndimage.gaussian_filter`` (with which DPS builds its 61×61, std 3 kernel) does.
- ``uniform-blur:size=9``: the ``size``×``size`` box average (DDRM/DDNM's "deblur uniform" is 9×9).
- ``motion-kernel-blur:size=61,intensity=0.5``: our :func:`.motion_blur.camera_shake_kernel`
  drawn on a ``size``×``size`` grid, per example — the DPS/DAPS motion-blur *setting* (61×61,
  intensity 0.5), not their kernels (they use the ``motionblur`` package's random trajectories).
  Unlike ``motion-blur`` (the paper's strided circular blur) nothing is subsampled.
- ``kernel-blur:file=PATH``: the user's kernel, a 2-D ``.npy`` array (read with
  ``numpy.load(allow_pickle=False)``) or an image file (read as grey levels), normalised to sum 1;
  the same kernel for every example. Without ``file`` a random kernel is drawn per example (side
  odd in 3..15, i.i.d. U(0, 1) taps, normalised): random blur kernels for training.

Convolution (not correlation): ``(k * x)[i, j] = Σ_{t,u} k[t, u] x[i + c_h − t, j + c_w − u]``
with the kernel's centre ``c = (⌊L_h/2⌋, ⌊L_w/2⌋)`` (symmetric kernels make the two the same).
Boundaries:

- ``same`` (``scipy.signal.convolve2d(x, k, mode="same")``, ``F.conv2d`` with zero padding):
  pixels outside the image are zero; ``M = C·H·W``.
- ``reflect`` (DPS's and DAPS's blur: ``nn.ReflectionPad2d`` then a valid convolution): pixels
  outside are the image mirrored about its edge pixels; ``M = C·H·W``; a kernel may reach at most
  ``side − 1`` pixels past an edge.

  With either, separable kernels (Gaussian, uniform) give ``A = T_H ⊗ T_W`` with per-axis factors
  (:func:`axis_matrix`), whose SVDs make ``A⁺`` and ``A⁺_σ`` exact closed forms
  (:class:`.separable.SeparableOperator`, singular values below 1e-4 of the largest cut as for
  motion blur). Other kernels use :class:`PaddedConvolution`: ``A`` and ``Aᵀ`` by FFT on a padded
  grid, ``A⁺_σ`` by conjugate gradients on ``(AAᵀ + λI) z = y`` (the :class:`.base.Operator`
  default) and ``A⁺`` by conjugate gradients on the normal equations (see :data:`PINV_CG_RTOL`).
- ``circular``: the image is periodic; ``A`` is diagonal in the Fourier basis, ``A⁺`` and
  ``A⁺_σ`` are exact closed forms with the 1e-4 singular-value cut (:class:`.motion_blur.
  StridedConvolution` at stride 1). A kernel larger than the image wraps around.

Parameters left out are drawn per example (the families' training distributions): Gaussian
``std ~ U(0.5, 3)`` (``size`` then defaults to the truncation support ``2⌊4·std + 0.5⌋ + 1``),
uniform ``size`` uniform in {3, 5, 7, 9}, motion ``size`` uniform among the odd sides 9..61 and
``intensity ~ U(0, 1)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..linalg import conjugate_gradients
from .base import Operator
from .motion_blur import StridedConvolution, camera_shake_kernel, draw_intensity
from .separable import SeparableOperator
from .spec import Param

PINV_CG_MAX_ITER, PINV_CG_RTOL = 1000, 1e-7
"""Budget of :meth:`PaddedConvolution._pinv`: conjugate gradients on ``AᵀA x = Aᵀ y`` from
``x = 0`` (iterates stay in the range of ``Aᵀ``, so they tend to the minimum-norm least-squares
solution ``A⁺ y``), stopped at ``‖Aᵀ(y − A x)‖ ≤ 1e-7·‖Aᵀ y‖`` or after 1000 iterations. A
zero-padded blur is ill conditioned (measured on 32×32: smallest/largest singular value 1e-4 to
1e-9 for random and camera-shake kernels), so CG resolves the strong directions and the weak ones
only partly, a soft version of the 1e-4 cut of the closed forms. The Moore–Penrose residuals this leaves, measured in float32 on
white-noise images (random and camera-shake kernels, 1×32×32 and 3×64×64, 4 examples × 2 seeds):
``‖A A⁺ A x − A x‖/‖A x‖ ≤ 5e-4``; ``⟨u, A⁺A v⟩ − ⟨A⁺A u, v⟩ ≤ 8e-4·‖u‖‖v‖``; but
``‖A⁺ A A⁺ y − A⁺ y‖/‖A⁺ y‖`` is 0.3–0.6 for white-noise ``y`` (2–3e-2 for ``y = A x``): the weak
directions ``A⁺ y`` puts weight on are not recovered from ``A A⁺ y``. Use the closed forms
(``boundary=circular``, or a Gaussian/uniform kernel) where exact Moore–Penrose matters
(``A⁺ y`` depends on ``y`` through its Krylov space, so it is not one linear map). Each example
stops at its own tolerance, so it does not depend on the rest of the batch."""

BOUNDARIES = ("same", "reflect", "circular")
BOUNDARY = Param(
    "boundary",
    str,
    "same: zero padding; reflect: mirrored edges (DPS/DAPS); circular: periodic, exact FFT inverses",
    choices=BOUNDARIES,
)


def gaussian_kernel_1d(size: int, std: float) -> Tensor:
    """``(size,)`` float64: ``exp(−t²/(2 std²))`` about the centre ``⌊size/2⌋``, zero beyond radius
    ``⌊4·std + 0.5⌋`` (scipy.ndimage's truncation), normalised to sum 1."""
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(t**2) / (2 * std**2)) * (t.abs() <= int(4 * std + 0.5))
    return g / g.sum()


def load_kernel(path: str) -> Tensor:
    """A user's kernel file → ``(L_h, L_w)`` float64 normalised to sum 1.

    ``.npy``: a 2-D numeric array (no pickles); any other suffix: an image read by Pillow as grey
    levels (luma for colour). Raises ``ValueError`` with one line naming the problem."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(
            f"kernel-blur: file={path} does not exist; give a .npy array or an image of the kernel."
        )
    try:
        if file.suffix.lower() == ".npy":
            array = np.load(file, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(file) as image:
                array = np.asarray(image.convert("F"))
        kernel = torch.as_tensor(np.asarray(array, dtype=np.float64))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"kernel-blur: cannot read {path} as a kernel ({error}); give a 2-D .npy array or an image."
        ) from None
    if kernel.dim() != 2 or kernel.numel() == 0:
        raise ValueError(
            f"kernel-blur: {path} holds an array of shape {tuple(kernel.shape)}; a kernel must be 2-D."
        )
    if not bool(kernel.isfinite().all()) or float(kernel.sum()) <= 0:
        raise ValueError(
            f"kernel-blur: the kernel in {path} must be finite with a positive sum (it is normalised to 1)."
        )
    return kernel / kernel.sum()


def _fast_size(n: int) -> int:
    """The smallest 2·3·5-smooth integer ≥ ``n`` (fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _torus_spectrum(kernel: Tensor, shape: tuple[int, int]) -> Tensor:
    """DFT ``(P_h, P_w)`` complex128 of ``kernel: (L_h, L_w)`` placed on a ``P_h × P_w`` torus with
    its centre ``(⌊L_h/2⌋, ⌊L_w/2⌋)`` at pixel ``(0, 0)`` (taps that overlap on the torus add)."""
    L_h, L_w = kernel.shape
    rows = (torch.arange(L_h) - L_h // 2) % shape[0]
    cols = (torch.arange(L_w) - L_w // 2) % shape[1]
    grid = torch.zeros(shape, dtype=torch.float64)
    grid.index_put_((rows[:, None].expand(L_h, L_w), cols[None, :].expand(L_h, L_w)), kernel, accumulate=True)
    return torch.fft.fft2(grid)


def reflect_index(positions: Tensor, n: int) -> Tensor:
    """Pixel indices of ``positions`` (any integers in ``[−(n−1), 2(n−1)]``) mirrored into ``[0, n)``
    about the edge pixels, which are not repeated (``F.pad(mode="reflect")``: ``x₂ x₁ | x₀ x₁ …``)."""
    mirrored = torch.where(positions < 0, -positions, positions)
    return torch.where(mirrored > n - 1, 2 * (n - 1) - mirrored, mirrored)


def check_reflect_reach(before: int, after: int, n: int) -> None:
    if max(before, after) > n - 1:
        raise ValueError(
            f"boundary=reflect: the kernel reaches {max(before, after)} pixels past an edge of a side of "
            f"{n}, more than one reflection covers; use a kernel of at most {2 * n - 1} taps or boundary=same or circular."
        )


def axis_matrix(kernel: Tensor, n: int, boundary: str = "same") -> Tensor:
    """The ``(n, n)`` matrix of "same"-size convolution with the 1-D ``kernel: (L,)`` along a side of
    ``n`` pixels: ``T[i, j] = Σ_t kernel[t]`` over the taps ``t`` whose input ``i + ⌊L/2⌋ − t`` is
    pixel ``j`` — zero padding (``same``: taps outside the image read 0, a Toeplitz matrix) or
    mirrored inputs (``reflect``, :func:`reflect_index`)."""
    L = kernel.shape[0]
    inputs = torch.arange(n)[:, None] + L // 2 - torch.arange(L)[None, :]  # (n, L)
    if boundary == "reflect":
        check_reflect_reach(L - 1 - L // 2, L // 2, n)
        inside, inputs = torch.ones_like(inputs, dtype=torch.bool), reflect_index(inputs, n)
    else:
        inside = (inputs >= 0) & (inputs < n)
    matrix = torch.zeros(n, n, dtype=kernel.dtype)
    rows = torch.arange(n)[:, None].expand(n, L)
    taps = kernel[None, :].expand(n, L)
    return matrix.index_put_((rows[inside], inputs[inside]), taps[inside], accumulate=True)


class PaddedConvolution(Operator):
    """``A x = k * x`` per channel at "same" size with zero padding (``boundary="same"``) or mirrored
    edges (``"reflect"``: ``F.pad(mode="reflect")`` then a valid convolution, as DPS and DAPS blur),
    any kernel per example.

    The image is extended by ``before``/``after`` pixels per side (mirrored, or nothing for zero
    padding), ``A`` and ``Aᵀ`` are computed by FFT on a zero-padded ``P_h × P_w`` grid (``P ≥`` the
    extended side ``+ L − 1``: the circular wrap then only reads padding) and the adjoint of the
    mirroring adds each extended pixel back onto its source. ``A⁺`` by conjugate gradients on the
    normal equations (:data:`PINV_CG_RTOL`), ``A⁺_σ`` by the :class:`.base.Operator` default
    (conjugate gradients on ``AAᵀ + λI``, well conditioned for ``λ > 0``).

    Args:
        image_shape: ``(C, H, W)``; ``M = C·H·W``.
        kernels: one ``(L_h, L_w)`` float tensor per example (sizes may differ).
        boundary: ``"same"`` or ``"reflect"``.
    """

    def __init__(self, image_shape: tuple[int, int, int], kernels: list[Tensor], boundary: str = "same"):
        C, H, W = image_shape
        super().__init__(image_shape, C * H * W, torch.zeros(len(kernels)))
        self.boundary = boundary
        reach = []  # per axis: pixels read before and after an output pixel
        for axis, n in ((0, H), (1, W)):
            before = max(k.shape[axis] - 1 - k.shape[axis] // 2 for k in kernels)
            after = max(k.shape[axis] // 2 for k in kernels)
            if boundary == "reflect":
                check_reflect_reach(before, after, n)
                reach.append((before, after))
            else:
                reach.append((0, 0))  # zero padding: the grid's padding supplies the zeros
        self.before = (reach[0][0], reach[1][0])
        self.extended = (H + sum(reach[0]), W + sum(reach[1]))
        self.sources = [reflect_index(torch.arange(-b, n + a), n) for (b, a), n in zip(reach, (H, W), strict=True)]
        L_h = max(k.shape[0] for k in kernels)
        L_w = max(k.shape[1] for k in kernels)
        self.grid = (_fast_size(self.extended[0] + L_h - 1), _fast_size(self.extended[1] + L_w - 1))
        spectra = torch.stack([_torus_spectrum(k.to(torch.float64), self.grid) for k in kernels])
        if not bool(spectra.isfinite().all()):
            raise ValueError("blur kernels must be finite; check the kernel.")
        half = spectra[..., : self.grid[1] // 2 + 1][:, None, None]  # (B, 1, 1, P_h, P_w//2+1)
        self.spectrum64 = half
        self.spectrum32 = half.to(torch.complex64)

    def _spectrum(self, dtype: torch.dtype) -> Tensor:
        return self.spectrum64 if dtype == torch.float64 else self.spectrum32

    def _filter(self, images: Tensor, conjugate: bool) -> Tensor:
        """``(B, K, C, E_h, E_w)`` placed at the grid's origin → the filtered grid ``(…, P_h, P_w)``."""
        P_h, P_w = self.grid
        spectrum = self._spectrum(images.dtype)
        spectrum = spectrum.conj() if conjugate else spectrum
        padded = F.pad(images, (0, P_w - images.shape[-1], 0, P_h - images.shape[-2]))
        return torch.fft.irfft2(torch.fft.rfft2(padded) * spectrum, s=self.grid)

    def _apply(self, x: Tensor) -> Tensor:
        _, H, W = self.image_shape
        (b_h, b_w), (rows, cols) = self.before, self.sources
        if self.boundary == "reflect":
            x = x.index_select(-2, rows.to(x.device)).index_select(-1, cols.to(x.device))
        return self._filter(x, conjugate=False)[..., b_h : b_h + H, b_w : b_w + W].flatten(2)

    def _adjoint(self, y: Tensor) -> Tensor:
        _, H, W = self.image_shape
        (b_h, b_w), (E_h, E_w), (rows, cols) = self.before, self.extended, self.sources
        images = F.pad(y.unflatten(2, self.image_shape), (b_w, 0, b_h, 0))
        extended = self._filter(images, conjugate=True)[..., :E_h, :E_w]
        if self.boundary != "reflect":
            return extended
        shape = (*extended.shape[:-2], H, E_w)
        folded = extended.new_zeros(shape).index_add(-2, rows.to(y.device), extended)
        return folded.new_zeros((*shape[:-1], W)).index_add(-1, cols.to(y.device), folded)

    def _pinv(self, y: Tensor) -> Tensor:
        B, K, _ = y.shape

        def normal(p: Tensor) -> Tensor:  # (B·K, n) -> AᵀA p
            images = p.reshape(B, K, *self.image_shape)
            return self._adjoint(self._apply(images)).flatten(1)

        rhs = self._adjoint(y).flatten(1)  # Aᵀ y: (B·K, n)
        x = conjugate_gradients(normal, rhs, PINV_CG_MAX_ITER, PINV_CG_RTOL, freeze_converged=True)
        return x.reshape(B, K, *self.image_shape)


def _convolution(image_shape, kernels: list[Tensor], boundary: str) -> Operator:
    """The operator batch of ``kernels`` (one ``(L_h, L_w)`` per example) with ``boundary``."""
    _, H, W = image_shape
    if boundary == "circular":
        return StridedConvolution(image_shape, torch.stack([_torus_spectrum(k, (H, W)) for k in kernels]), 1)
    return PaddedConvolution(image_shape, kernels, boundary)


def _separable(image_shape, kernels_1d: list[Tensor], boundary: str) -> Operator:
    """``k = g gᵀ`` per example from ``g: (L,)``: per-axis matrices (same, reflect) or FFT (circular)."""
    _, H, W = image_shape
    if boundary == "circular":
        return _convolution(image_shape, [g[:, None] * g[None, :] for g in kernels_1d], boundary)
    rows = torch.stack([axis_matrix(g, H, boundary) for g in kernels_1d])
    cols = torch.stack([axis_matrix(g, W, boundary) for g in kernels_1d])
    return SeparableOperator(image_shape, rows, cols)


def _boundary(values, default: str = "same") -> str:
    return values["boundary"] or default


class GaussianBlur:
    """``gaussian-blur``: Gaussian blur (DPS/DAPS: ``size=61,std=3``); see the module docstring.

    Parameters (left out: drawn per example):
        size: kernel side; default the truncation support ``2⌊4·std + 0.5⌋ + 1``.
        std: in pixels; drawn ~U(0.5, 3).
        boundary: ``same`` (default), ``reflect`` or ``circular``.
    """

    params = (
        Param("size", int, "kernel side; default 2⌊4·std + 0.5⌋ + 1", low=1),
        Param("std", float, "standard deviation in pixels; drawn ~U(0.5, 3)", low=0.0, low_open=True),
        BOUNDARY,
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        kernels = []
        for g in generators:
            std = values["std"]
            if std is None:
                std = 0.5 + 2.5 * float(torch.rand((), generator=g, dtype=torch.float64))
            size = values["size"] or 2 * int(4 * std + 0.5) + 1
            kernels.append(gaussian_kernel_1d(size, std))
        return _separable(image_shape, kernels, _boundary(values))


class UniformBlur:
    """``uniform-blur``: the ``size``×``size`` box average (DDRM/DDNM: ``size=9``).

    Parameters (left out: drawn per example):
        size: kernel side; drawn uniformly from {3, 5, 7, 9}.
        boundary: ``same`` (default), ``reflect`` or ``circular``.
    """

    params = (Param("size", int, "kernel side; drawn uniformly from {3, 5, 7, 9}", low=1), BOUNDARY)

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        kernels = []
        for g in generators:
            size = values["size"] or 3 + 2 * int(torch.randint(0, 4, (), generator=g))
            kernels.append(torch.full((size,), 1 / size, dtype=torch.float64))
        return _separable(image_shape, kernels, _boundary(values))


class MotionKernelBlur:
    """``motion-kernel-blur``: a camera-shake kernel on a ``size``×``size`` grid, not strided
    (the DPS/DAPS setting: ``size=61,intensity=0.5``).

    Parameters (left out: drawn per example):
        size: kernel side; drawn uniformly among the odd sides 9..61.
        intensity: in [0, 1] (see :func:`.motion_blur.camera_shake_kernel`); drawn ~U(0, 1).
        boundary: ``circular`` (default: exact ``A⁺``), ``same`` or ``reflect`` (``A⁺`` by conjugate
            gradients, approximate: see :data:`PINV_CG_RTOL`).
    """

    params = (
        Param("size", int, "kernel side; drawn uniformly among odd 9..61", low=2),
        Param("intensity", float, "camera-shake strength; drawn ~U(0, 1)", low=0.0, high=1.0),
        BOUNDARY,
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        kernels = []
        for g in generators:
            size = values["size"] or 9 + 2 * int(torch.randint(0, 27, (), generator=g))
            intensity = draw_intensity(values, g)
            shake = camera_shake_kernel(size, size, intensity, g)  # centred at (0, 0) on the torus
            kernels.append(torch.roll(shake, (size // 2, size // 2), (0, 1)))
        return _convolution(image_shape, kernels, _boundary(values, "circular"))


class KernelBlur:
    """``kernel-blur``: the user's kernel (``file=PATH``: ``.npy`` or an image), or random kernels.

    Parameters:
        file: the kernel file (see :func:`load_kernel`); left out: per example a random kernel of
            odd side drawn in 3..15 with i.i.d. U(0, 1) taps, normalised to sum 1.
        boundary: ``circular`` (default: exact ``A⁺``), ``same`` or ``reflect`` (``A⁺`` by conjugate
            gradients, approximate: see :data:`PINV_CG_RTOL`).
    """

    params = (
        Param("file", str, "a .npy array or an image of the kernel; left out: random kernels"),
        BOUNDARY,
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        if values["file"] is not None:
            kernels = [load_kernel(values["file"])] * len(generators)
        else:
            kernels = []
            for g in generators:
                size = 3 + 2 * int(torch.randint(0, 7, (), generator=g))
                taps = torch.rand(size, size, generator=g, dtype=torch.float64)
                kernels.append(taps / taps.sum())
        return _convolution(image_shape, kernels, _boundary(values, "circular"))
