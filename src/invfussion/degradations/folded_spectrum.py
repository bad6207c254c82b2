"""The InvFussion authors' strided motion blur, measured as a folded 2×-padded spectrum.

The networks released with the paper were trained on the authors' ``SRConv`` / ``MotionBlur``
degradation (their ``degradation.py``, ``mix_color=False``), whose measurement is not the
strided image of :mod:`.motion_blur` but a folded Fourier spectrum. This module reimplements that
operator with their numbers, so that their networks see the ``y`` and ``A⁺ y`` they were trained
on. Per channel, with ``s`` the stride and ``N = 2H × 2W`` the padded grid:

1. zero-pad the image to ``(2H, 2W)`` and take its unnormalised DFT ``x̂``;
2. multiply by the transfer function ``T`` (below);
3. fold: average the ``s × s`` aliases ``ŷ[u, v] = s⁻² Σ_{a,b} T x̂[u + a·2H/s, v + b·2W/s]``
   (their ``reduce(..., "mean")`` over the ``(sh h)``/``(sw w)`` blocks);
4. lay ``y`` out as ``(C, 2H/s, 2W/s, 2)`` (real part, imaginary part), flattened in that order:
   ``M = C·(2H/s)·(2W/s)·2``.

Transfer function (their ``compute_fft_kernel``). The spatial kernel ``(kh, kw)`` is zero-padded
at the end (their ``F.pad(kernel, (0, kh, 0, kw))``: the columns grow by ``kh``, the rows by
``kw``, which is "twice its size" for the square kernels they use), rolled by ``(kh//2, kw//2)``,
transformed by a DFT of size ``(2H, 2W)`` (cropping or padding as ``torch.fft.fft2(s=...)`` does),
and its imaginary part is negated: ``T = conj(DFT(rolled kernel))``. Entries with
``|T| ≤ τ = 1e-4·(max|T| − min|T|)`` are set to 0. Their ``τ`` is taken over the whole batch
tensor; here it is taken per example, which equals theirs whenever the batch shares one kernel, as
their ``MotionBlur`` (one kernel repeated ``b`` times) does.

Inverse (their ``H_pinv`` with ``noise_level=0``). ``D = s⁻² Σ_aliases |T|²`` (the folded mean of
the thresholded power) is inverted where ``D > τ`` -- the same ``τ`` as for ``|T|``, not squared,
as in their code -- and set to 0 elsewhere (``D⁺``); then ``A⁺ y = Re(F⁻¹[conj(T) ·
tile_s(D⁺ ŷ)])[:H, :W]`` with ``F⁻¹`` the normalised inverse DFT of size ``(2H, 2W)`` and
``tile_s`` the ``s × s`` tiling of the folded spectrum. Since the adjoint is ``Aᵀ y = n ·
Re(F⁻¹[conj(T) · tile_s(ŷ)])[:H, :W]`` with ``n = (2H/s)(2W/s)``, ``A⁺ = Aᵀ D⁺ / n``: without the
crop to ``[:H, :W]`` (an image living on the whole ``2H × 2W`` grid) ``A Aᵀ`` would be ``n D`` on
the range of ``A`` (Hermitian-symmetric spectra) and ``A⁺`` the exact Moore–Penrose
pseudo-inverse (up to the threshold). The crop breaks that: this ``A⁺`` is *not* the
Moore–Penrose pseudo-inverse of ``A``. Measured in float64 on white-noise inputs, relative errors
``‖A A⁺ A x − A x‖/‖A x‖`` (``x`` an image) and ``‖A⁺ A A⁺ y − A⁺ y‖/‖A⁺ y‖`` for ``y`` a
white-noise measurement and for ``y = A x`` (family ``motion-blur-folded-spectrum``, 4 examples
per stride, seed 0; the authors' own ``H``/``H_pinv`` give the same 0.11–0.24 for ``A A⁺ A`` at
64×64):

    image 3×64×64      A A⁺ A       A⁺ A A⁺ (y white)   A⁺ A A⁺ (y = A x)
        stride 2       0.10–0.13    0.30–0.33           0.11–0.13
        stride 4       0.14–0.20    0.37–0.41           0.14–0.16
        stride 8       0.19–0.29    0.41–0.47           0.19–0.24
    image 3×256×256
        stride 2       0.09–0.10    0.24–0.26           0.09–0.10
        stride 4       0.12–0.13    0.24–0.27           0.10–0.11
        stride 8       0.16         0.28–0.32           0.12–0.13

so ``op.project`` does not land on ``{x : A x = y}`` and ``A⁺ A`` is not a projector for this
family; use it as the authors' network input, not for data consistency.

Noise-aware inverse (their ``H_pinv(y, noise_level)``). Their regulariser replaces the stored
``D⁺`` by ``1/(σ² + 1/D⁺) = 1/(σ² + D)`` where ``D⁺ > 0`` (0 elsewhere), ``σ = noise_level``.
:meth:`FoldedSpectrumConvolution._pinv_noisy` uses it with ``σ² = λ`` per example (their
``noise_level`` is one scalar per batch), and is exactly ``_pinv`` where ``λ = 0``. In the
uncropped idealisation above, ``Aᵀ(A Aᵀ + λ' I)⁻¹ = Aᵀ (D + λ'/n)⁻¹ / n``, so their ``σ²``
corresponds to the Tikhonov weight ``λ' = n σ²`` of the project's convention (see
:mod:`.base`): with the default ``λ = σ_y²/σ_d²`` passed as ``σ²``, the damping is ``n`` times
what ``Aᵀ(AAᵀ + λI)⁻¹`` would apply. That is the authors' choice, kept for their networks.

All methods compute in the dtype they are given: ``T`` and ``D⁺`` are precomputed in float64
and kept in complex128/float64 and complex64/float32. Which entries the threshold zeroes is
decided in float32 as their code does (see :func:`their_zero_pattern`). Measured against their
code on the CPU (float32, 64×64 and 256×256, strides 2, 4, 8, their spatial kernel): ``A``
within 2.3e-5 of ``H`` (``max|y|`` up to 142: 2e-7 relative), ``A⁺`` within 3e-7 of ``H_pinv``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator
from .grouped import group_by
from .motion_blur import camera_shake_kernel, draw_intensity, draw_stride
from .spec import Param

THRESHOLD = 1e-4
"""``τ = THRESHOLD · (max|T| − min|T|)``, the authors' cut on ``|T|`` and on ``D``."""
STRIDES = (2, 4, 8)
"""The authors' ``2**randint(1, 4)``."""


def place(kernels: Tensor) -> Tensor:
    """``(B, kh, kw)`` → the authors' padded and rolled kernel ``(B, kh + kw, kw + kh)`` float64."""
    kh, kw = kernels.shape[-2:]
    padded = F.pad(kernels.to(torch.float64), (0, kh, 0, kw))  # their pad order
    return padded.roll((kh // 2, kw // 2), dims=(-2, -1))


def their_zero_pattern(
    placed: Tensor, image_hw: tuple[int, int], stride: int
) -> tuple[Tensor, Tensor]:
    """Which entries of ``T`` and of ``D`` the authors keep, decided in float32 as their code does.

    Returns ``(keep_T: (B, 2H, 2W), keep_D: (B, 2H/s, 2W/s))`` bool. Their tables are float32;
    deciding ``|T| > τ`` and ``D > τ`` on float64 values would flip entries within float32
    rounding of ``τ`` (seen at 256×256), so the decisions repeat their float32 arithmetic (the
    same reductions in the same order) while :class:`FoldedSpectrumConvolution` keeps float64
    values. ``τ`` is per example (theirs: over the batch tensor).
    """
    H, W = image_hw
    s = stride
    size = torch.fft.fft2(placed.to(torch.float32), s=(2 * H, 2 * W)).abs()
    tau = THRESHOLD * (size.flatten(1).amax(1) - size.flatten(1).amin(1))[:, None, None]
    keep_t = size > tau
    power = torch.where(keep_t, size, torch.zeros_like(size)).pow(2)
    folded = power.reshape(-1, s, 2 * H // s, s, 2 * W // s).mean(-4).mean(-2)
    return keep_t, folded.abs() > tau


def fold(spectrum: Tensor, stride: int) -> Tensor:
    """``(..., 2H, 2W)`` → ``(..., 2H/s, 2W/s)``: the mean over the ``s × s`` aliases (blocks)."""
    s = stride
    blocks = spectrum.unflatten(-1, (s, spectrum.shape[-1] // s))
    blocks = blocks.unflatten(-3, (s, spectrum.shape[-2] // s))  # (..., s, 2H/s, s, 2W/s)
    return blocks.mean((-4, -2))


class FoldedSpectrumConvolution(Operator):
    """The authors' ``SRConv.H`` / ``H_pinv`` (``mix_color=False``) for a batch of kernels.

    Args:
        image_shape: ``(C, H, W)`` with ``stride`` dividing ``2H`` and ``2W``.
        kernels: ``(B, kh, kw)`` real spatial kernels (their ``kernel[:, 0]``), one per example;
            used as given (the authors normalise theirs to sum 1 before).
        stride: ``s``; ``M = C·(2H/s)·(2W/s)·2``.
    """

    def __init__(self, image_shape: tuple[int, int, int], kernels: Tensor, stride: int):
        C, H, W = (int(v) for v in image_shape)
        s = int(stride)
        if s < 1 or (2 * H) % s or (2 * W) % s:
            raise ValueError(
                f"folded-spectrum blur: stride={stride} must divide twice the image size "
                f"2H×2W = {2 * H}×{2 * W}."
            )
        if kernels.dim() != 3 or kernels.is_complex() or min(kernels.shape) < 1:
            raise ValueError(
                f"folded-spectrum blur: kernels must be a real (B, kh, kw) tensor, "
                f"got {tuple(kernels.shape)} {kernels.dtype}."
            )
        if not bool(torch.isfinite(kernels).all()) or not bool(kernels.flatten(1).any(1).all()):
            raise ValueError("folded-spectrum blur: kernels must be finite and not all zero.")
        n_rows, n_cols = 2 * H // s, 2 * W // s
        super().__init__((C, H, W), C * n_rows * n_cols * 2, torch.zeros(kernels.shape[0]))
        self.stride = s
        self.kernels = kernels.detach().to(torch.float64, copy=True).cpu()
        placed = place(self.kernels)
        keep_t, keep_d = their_zero_pattern(placed, (H, W), s)
        spectrum = torch.fft.fft2(placed, s=(2 * H, 2 * W)).conj()  # T before the cut
        spectrum = torch.where(keep_t, spectrum, torch.zeros_like(spectrum))
        folded = fold(spectrum.abs().square(), s)  # D: (B, 2H/s, 2W/s)
        inverse = torch.where(keep_d, 1 / folded.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
        self.transfer64 = spectrum[:, None, None]  # T: (B, 1, 1, 2H, 2W) complex128
        self.transfer32 = self.transfer64.to(torch.complex64)
        self.inverse64 = inverse[:, None, None]  # D⁺: (B, 1, 1, 2H/s, 2W/s) float64
        self.inverse32 = self.inverse64.to(torch.float32)

    def _tables(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``T`` and ``D⁺`` in ``dtype``'s precision."""
        if dtype == torch.float64:
            return self.transfer64, self.inverse64
        return self.transfer32, self.inverse32

    def _apply(self, x: Tensor) -> Tensor:
        _, H, W = self.image_shape
        transfer, _ = self._tables(x.dtype)
        spectrum = torch.fft.fft2(x, s=(2 * H, 2 * W)) * transfer  # (B, K, C, 2H, 2W)
        return torch.view_as_real(fold(spectrum, self.stride)).flatten(2)

    def _pinv(self, y: Tensor) -> Tensor:
        _, inverse = self._tables(y.dtype)
        return self._back(self._spectrum(y) * inverse)

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        _, inverse = self._tables(y.dtype)
        lam = lam[:, None, None, None, None]
        kept = inverse > 0
        damped = torch.where(kept, 1 / (lam + 1 / torch.where(kept, inverse, 1.0)), 0.0)
        return self._back(self._spectrum(y) * torch.where(lam > 0, damped, inverse))

    def _adjoint(self, y: Tensor) -> Tensor:
        _, H, W = self.image_shape
        n = (2 * H // self.stride) * (2 * W // self.stride)
        return n * self._back(self._spectrum(y))

    def _spectrum(self, y: Tensor) -> Tensor:
        """``y: (B, K, M)`` → the folded spectrum ``ŷ: (B, K, C, 2H/s, 2W/s)`` (complex)."""
        C, H, W = self.image_shape
        s = self.stride
        pairs = y.unflatten(2, (C, 2 * H // s, 2 * W // s, 2))
        return torch.complex(pairs[..., 0], pairs[..., 1])

    def _back(self, low: Tensor) -> Tensor:
        """``Re(F⁻¹[conj(T) · tile_s(low)])[:H, :W]`` → ``(B, K, C, H, W)``."""
        _, H, W = self.image_shape
        transfer, _ = self._tables(low.real.dtype)
        tiled = low.repeat(1, 1, 1, self.stride, self.stride)  # (B, K, C, 2H, 2W)
        return torch.fft.ifft2(tiled * transfer.conj()).real[..., :H, :W]


def gaussian_window(kh: int, kw: int, std: float) -> Tensor:
    """The authors' Gaussian ``(kh, kw)`` float64: offsets ``-((k−1)//2) … k//2`` per axis,
    ``exp(−(i² + j²)/(2 std²))``, normalised to sum 1 (theirs uses ``kh`` for both axes, so it
    only supports square images; this is the same for ``kh = kw``)."""
    rows = torch.arange(-((kh - 1) // 2), 1 + kh // 2, dtype=torch.float64)
    cols = torch.arange(-((kw - 1) // 2), 1 + kw // 2, dtype=torch.float64)
    window = torch.exp(-(rows[:, None].square() + cols[None, :].square()) / (2 * std**2))
    return window / window.sum()


def folded_spectrum_kernel(
    image_hw: tuple[int, int], stride: int, intensity: float, generator: torch.Generator
) -> Tensor:
    """One kernel of the family, ``(H//2, W//2)`` float64 summing to 1.

    A camera-shake path (our :func:`.motion_blur.camera_shake_kernel` at ``(H//2, W//2)``, its
    centre of mass moved from pixel ``(0, 0)`` to ``(kh//2, kw//2)``), convolved with
    :func:`gaussian_window` of std ``stride`` by ``conv2d(..., padding="same")`` as theirs, and
    normalised to sum 1.
    """
    kh, kw = image_hw[0] // 2, image_hw[1] // 2
    shake = camera_shake_kernel(kh, kw, intensity, generator).roll((kh // 2, kw // 2), (0, 1))
    gauss = gaussian_window(kh, kw, float(stride))
    # conv2d(padding="same") as theirs, padded by hand: for even sizes "same" pads (k−1)//2
    # before and k//2 after (and warns when asked to do it itself)
    padded = F.pad(shake, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
    kernel = F.conv2d(padded[None, None], gauss[None, None])[0, 0]
    return kernel / kernel.sum()


class FoldedSpectrumMotionBlur:
    """``motion-blur-folded-spectrum``: the authors' strided motion blur with its folded-spectrum
    measurement (see the module docstring), for their trained networks.

    Parameters (left out: drawn per example):
        stride: 2, 4 or 8 (theirs: ``2**randint(1, 4)``, one per batch), dividing ``2H`` and
            ``2W``; drawn uniformly among those that do. The kernel is smoothed by a Gaussian of
            std = stride kernel pixels.
        intensity: in [0, 1], drawn ~U(0, 1) as theirs.

    The kernel is ``(H//2, W//2)`` as theirs, but its camera-shake part comes from our
    :func:`.motion_blur.camera_shake_kernel`: their generator (``motionblur.Kernel``: numpy's
    global random state, a PIL-drawn path, PIL Gaussian blur and Lanczos downsampling) cannot be
    reproduced here, so the kernels follow a similar but not identical distribution. The
    operator itself (:class:`FoldedSpectrumConvolution`) is theirs exactly for a given kernel.
    """

    params = (
        Param(
            "stride",
            int,
            "subsampling factor; drawn uniformly from {2, 4, 8} ∩ divisors of 2H, 2W",
            choices=STRIDES,
        ),
        Param("intensity", float, "camera-shake strength; drawn ~U(0, 1)", low=0.0, high=1.0),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        _, H, W = image_shape
        name = "motion-blur-folded-spectrum"
        if H < 2 or W < 2:
            raise ValueError(
                f"{name} needs images of at least 2×2 (its kernel is H/2×W/2), got {H}×{W}; "
                "resize the image."
            )
        fitting = [s for s in STRIDES if (2 * H) % s == 0 and (2 * W) % s == 0]
        stride = values["stride"]
        if stride is not None and stride not in fitting:
            raise ValueError(
                f"{name}: stride={stride} does not divide twice the image size "
                f"2H×2W = {2 * H}×{2 * W}; use one of {', '.join(map(str, fitting))}."
            )
        strides, kernels = [], []
        for g in generators:
            s, intensity = draw_stride(stride, fitting, g), draw_intensity(values, g)
            strides.append(s)
            kernels.append(folded_spectrum_kernel((H, W), s, intensity, g))
        return group_by(
            strides,
            lambda s, pos: FoldedSpectrumConvolution(
                image_shape, torch.stack([kernels[p] for p in pos]), s
            ),
        )
