"""Strided motion blur (paper App. A.2.2): a circular convolution followed by striding.

``A x = S (k ⊛ x)``: ``k`` is a random camera-shake kernel smoothed by a Gaussian of standard
deviation ``stride`` pixels, ``⊛`` is circular convolution (a product in the Fourier domain) and
``S`` keeps every ``stride``-th pixel in each direction, which in the Fourier domain folds the
spectrum: ``ŷ[u] = s⁻² Σ_a K̂[u + a n] x̂[u + a n]`` over the ``s²`` aliases of low-resolution
frequency ``u`` (``n = H/s``). Hence ``A Aᵀ`` is diagonal in the low-resolution Fourier basis with
entries ``D[u] = s⁻² Σ_a |K̂[u + a n]|²`` (the squared singular values of ``A``), and the
pseudo-inverse is exact and cheap: ``A⁺ y = Aᵀ F⁻¹ D⁺ F y``.

Threshold: singular values below ``SINGULAR_THRESHOLD`` = 1e-4 times the largest one of the
example are treated as zero (``D⁺[u] = 0`` where ``D[u] < 1e-8 · max D``), so ``A⁺`` is the exact
pseudo-inverse of ``A`` truncated to its kept singular values and its gain is at most 1e4 times
that of ``A``. The Gaussian alone brings the corners of the folded band to about 1e-4 of the
peak, so the cut removes those corners where the camera-shake kernel attenuates them further, and
near-zeros of the shake kernel's spectrum. ``A A⁺ A x`` then differs from ``A x`` by the dropped
components: measured below 3e-4 relative on white-noise images (a 1e-3 cut gives 4e-3; a 1e-5
cut would amplify float32 rounding and measurement noise ten times more). With noisy ``y``,
remember that ``A⁺`` amplifies noise by up to that gain in the weakest kept directions.

The noise-aware inverse ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹`` has the same structure with ``D⁺`` replaced by
``1/(D + λ)`` (no threshold: its gain is at most ``1/(2√λ)``); ``D⁺`` where ``λ = 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Operator
from .grouped import group_by
from .spec import Param

SINGULAR_THRESHOLD = 1e-4
STRIDES = (2, 4, 8)


def camera_shake_kernel(H: int, W: int, intensity: float, generator: torch.Generator) -> Tensor:
    """A random camera-shake blur kernel on the ``(H, W)`` torus, centred at pixel ``(0, 0)``.

    The trajectory is a random walk with momentum: the heading turns by Gaussian steps whose
    spread grows with ``intensity`` (0: a straight line, 1: an erratic path with sudden jerks),
    and is scaled so that its longer side spans ``(0.1 + 0.4·intensity)·min(H, W)`` pixels.
    Its points are splatted bilinearly (with wrap-around) and the kernel sums to 1.

    Returns ``(H, W)`` float64.
    """
    steps = 4 * min(H, W)
    turn = intensity * math.pi / 8 * torch.randn(steps, generator=generator, dtype=torch.float64)
    jerks = torch.rand(steps, generator=generator, dtype=torch.float64) < 0.05 * intensity
    turn = turn + jerks * math.pi * (
        torch.rand(steps, generator=generator, dtype=torch.float64) - 0.5
    )
    heading = 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64) + torch.cumsum(
        turn, 0
    )
    speed = 1 + intensity * torch.rand(steps, generator=generator, dtype=torch.float64)
    path = torch.cumsum(
        speed[:, None] * torch.stack([torch.cos(heading), torch.sin(heading)], 1), 0
    )
    extent = float((path.amax(0) - path.amin(0)).max())
    length = (0.1 + 0.4 * intensity) * min(H, W)
    path = (path - path.mean(0)) * (length / max(extent, 1e-12))
    kernel = torch.zeros(H * W, dtype=torch.float64)
    base = torch.floor(path)
    frac = path - base
    for dr in (0, 1):
        for dc in (0, 1):
            weight = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            rows = (base[:, 0].long() + dr) % H
            cols = (base[:, 1].long() + dc) % W
            kernel.index_add_(0, rows * W + cols, weight)
    return (kernel / kernel.sum()).view(H, W)


def gaussian_transfer(H: int, W: int, std: float) -> Tensor:
    """Fourier transfer function ``(H, W)`` of a periodic Gaussian blur of ``std`` pixels (float64)."""
    fy = torch.fft.fftfreq(H, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(W, dtype=torch.float64)[None, :]
    return torch.exp(-2 * math.pi**2 * std**2 * (fy**2 + fx**2))


def draw_stride(stride: int | None, fitting: list[int], generator: torch.Generator) -> int:
    """``stride`` if the spec gave one, else one of ``fitting`` drawn uniformly from ``generator``."""
    if stride is not None:
        return stride
    return fitting[int(torch.randint(0, len(fitting), (), generator=generator))]


def draw_intensity(values: dict, generator: torch.Generator) -> float:
    """The spec's camera-shake ``intensity``, else one drawn ~U(0, 1) from ``generator``."""
    if values["intensity"] is not None:
        return values["intensity"]
    return float(torch.rand((), generator=generator, dtype=torch.float64))


class StridedConvolution(Operator):
    """``A x = (k ⊛ x)[::s, ::s]`` per channel with exact frequency-space pseudo-inverse.

    Args:
        image_shape: ``(C, H, W)`` with ``s`` dividing ``H`` and ``W``.
        spectra: ``(B, H, W)`` complex128, the kernels' DFTs ``K̂``.
        stride: ``s``; ``M = C·(H/s)·(W/s)``.
    """

    def __init__(self, image_shape: tuple[int, int, int], spectra: Tensor, stride: int):
        C, H, W = image_shape
        s = stride
        super().__init__(image_shape, C * (H // s) * (W // s), torch.zeros(spectra.shape[0]))
        self.stride = s
        power = spectra.abs().square()
        folded = (
            power.unflatten(1, (s, H // s)).unflatten(3, (s, W // s)).sum((1, 3)) / s**2
        )  # D: (B, H/s, W/s)
        peak = folded.flatten(1).amax(1)
        if not bool(torch.isfinite(spectra).all()) or not bool((peak > 0).all()):
            raise ValueError("blur kernels must be finite and not all zero; check the kernel.")
        kept = folded >= SINGULAR_THRESHOLD**2 * peak[:, None, None]
        inverse = torch.where(kept, 1 / folded.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
        half = spectra[..., : W // 2 + 1]  # rfft layout
        self.spectrum64 = half[:, None, None]  # (B, 1, 1, H, W//2+1) complex128
        self.spectrum32 = self.spectrum64.to(torch.complex64)
        self.inverse64 = inverse[:, None, None]  # (B, 1, 1, H/s, W/s) float64
        self.inverse32 = self.inverse64.to(torch.float32)
        self.folded64 = folded[:, None, None]  # D: (B, 1, 1, H/s, W/s) float64
        self.folded32 = self.folded64.to(torch.float32)

    def _spectrum(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """``K̂`` (rfft layout), ``D⁺`` and ``D`` in ``dtype``'s precision."""
        if dtype == torch.float64:
            return self.spectrum64, self.inverse64, self.folded64
        return self.spectrum32, self.inverse32, self.folded32

    def _apply(self, x: Tensor) -> Tensor:
        _, H, W = self.image_shape
        s = self.stride
        spectrum, _, _ = self._spectrum(x.dtype)
        blurred = torch.fft.rfft2(x) * spectrum  # (B, K, C, H, W/2+1)
        rows = (
            blurred.unflatten(-2, (s, H // s)).sum(-3) / s
        )  # striding rows = folding their spectrum
        rows = torch.fft.ifft(
            rows, dim=-2
        )  # (B, K, C, H/s, W/2+1): rows in space, columns in frequency
        return torch.fft.irfft(rows, n=W, dim=-1)[..., ::s].flatten(2)

    def _pinv(self, y: Tensor) -> Tensor:
        _, inverse, _ = self._spectrum(y.dtype)
        return self._upsample_correlate(self._low_spectrum(y) * inverse)  # Aᵀ F⁻¹ D⁺ F y

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        _, inverse, folded = self._spectrum(y.dtype)
        lam = lam[:, None, None, None, None]
        regularised = torch.where(lam > 0, 1 / (folded + lam), inverse)
        return self._upsample_correlate(self._low_spectrum(y) * regularised)  # Aᵀ F⁻¹ (D + λ)⁻¹ F y

    def _adjoint(self, y: Tensor) -> Tensor:
        return self._upsample_correlate(self._low_spectrum(y))

    def _low_spectrum(self, y: Tensor) -> Tensor:
        """``y: (B, K, M)`` → its low-resolution DFT ``F y: (B, K, C, H/s, W/s)``."""
        C, H, W = self.image_shape
        s = self.stride
        return torch.fft.fft2(y.unflatten(2, (C, H // s, W // s)))

    def _upsample_correlate(self, low: Tensor) -> Tensor:
        """``Aᵀ F⁻¹ low``: zero-upsample by ``s``, then correlate with ``k`` → ``(B, K, C, H, W)``."""
        _, H, W = self.image_shape
        s = self.stride
        spectrum, _, _ = self._spectrum(low.real.dtype)
        tiled = low.repeat(1, 1, 1, s, s)[
            ..., : W // 2 + 1
        ]  # spectrum of the zero-upsampled signal
        return torch.fft.irfft2(tiled * spectrum.conj(), s=(H, W))


class MotionBlur:
    """``motion-blur``: strided camera-shake blur (paper App. A.2.2).

    Parameters (left out: drawn per example):
        stride: 2, 4 or 8, dividing H and W; drawn uniformly among those that divide the image.
            The kernel is smoothed by a Gaussian of std = stride pixels (anti-aliasing).
        intensity: in [0, 1], shake erraticness and length (see ``camera_shake_kernel``);
            drawn ~U(0, 1).
    """

    params = (
        Param(
            "stride",
            int,
            "subsampling factor; drawn uniformly from {2, 4, 8} ∩ divisors of H, W",
            choices=STRIDES,
        ),
        Param("intensity", float, "camera-shake strength; drawn ~U(0, 1)", low=0.0, high=1.0),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> Operator:
        _, H, W = image_shape
        fitting = [s for s in STRIDES if H % s == 0 and W % s == 0]
        stride = values["stride"]
        if stride is not None and stride not in fitting:
            raise ValueError(
                f"motion-blur: stride={stride} does not divide the image size {H}×{W}; "
                f"use one of {', '.join(map(str, fitting)) or 'none (resize the image to a multiple of 2)'}."
            )
        if not fitting:
            raise ValueError(
                f"motion-blur needs H and W divisible by 2, 4 or 8, got {H}×{W}; resize the image."
            )
        strides, spectra = [], []
        for g in generators:
            s, intensity = draw_stride(stride, fitting, g), draw_intensity(values, g)
            kernel = camera_shake_kernel(H, W, intensity, g)
            strides.append(s)
            spectra.append(torch.fft.fft2(kernel) * gaussian_transfer(H, W, s))
        return group_by(
            strides,
            lambda s, pos: StridedConvolution(
                image_shape, torch.stack([spectra[p] for p in pos]), s
            ),
        )
