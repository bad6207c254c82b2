"""Separable operators ``A = R ⊗ C``: ``A x = R x Cᵀ`` per channel, with an exact SVD pseudo-inverse.

Used by the zero-padded ("same") Gaussian and uniform blurs (``R``, ``C`` Toeplitz, see
:mod:`.blur`) and by bicubic super-resolution (``R``, ``C`` the antialiased bicubic
down-sampling matrices, see :mod:`.super_resolution`). ``R: (m, H)`` and ``C: (w, W)`` are
small per-axis matrices, one pair per example, so ``Aᵀ y = Rᵀ Y C`` and, from their SVDs
``R = U_r diag(s) V_rᵀ`` and ``C = U_c diag(t) V_cᵀ``, ``A = (U_r ⊗ U_c) diag(s ⊗ t) (V_r ⊗ V_c)ᵀ``:

    A⁺ y   = V_r [ D⁺ ∘ (U_rᵀ Y U_c) ] V_cᵀ,   D⁺[i, j] = 1/(s_i t_j)        (kept), else 0
    A⁺_σ y = V_r [ D_λ ∘ (U_rᵀ Y U_c) ] V_cᵀ,  D_λ[i, j] = s_i t_j/((s_i t_j)² + λ)

Threshold: as for motion blur (:data:`.motion_blur.SINGULAR_THRESHOLD`), singular values
``s_i t_j`` below 1e-4 times the example's largest are treated as zero, so ``A⁺`` is the exact
Moore–Penrose pseudo-inverse of ``A`` truncated to its kept singular values (a Gaussian blur of
std 3 has singular values down to ~1e-19 of the largest: without the cut, float32 rounding would
be amplified without bound). ``A⁺_σ`` needs no threshold (its gain is at most ``1/(2√λ)``).
Everything costs ``O(H²W + HW²)`` per image; the SVDs are computed once, in float64, at build.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Operator
from .motion_blur import SINGULAR_THRESHOLD


class SeparableOperator(Operator):
    """``A x = R x Cᵀ`` on every channel of ``x``, with per-example ``R`` and ``C``.

    Args:
        image_shape: ``(C, H, W)``.
        rows: ``(B, m, H)``, the matrix ``R`` acting on image rows (the H axis).
        cols: ``(B, w, W)``, the matrix ``C`` acting on image columns (the W axis).
    ``M = C·m·w``; the measurement is ``(C, m, w)`` flattened.
    """

    def __init__(self, image_shape: tuple[int, int, int], rows: Tensor, cols: Tensor):
        channels, H, W = image_shape
        if rows.dim() != 3 or cols.dim() != 3 or rows.shape[2] != H or cols.shape[2] != W:
            raise ValueError(
                f"separable operator on {H}×{W} images needs rows (B, m, {H}) and cols (B, w, {W}), "
                f"got {tuple(rows.shape)} and {tuple(cols.shape)}."
            )
        rows, cols = rows.to(torch.float64), cols.to(torch.float64)
        if not bool(rows.isfinite().all() and cols.isfinite().all()):
            raise ValueError("separable operator matrices must be finite; check the kernel.")
        m, w = rows.shape[1], cols.shape[1]
        super().__init__(image_shape, channels * m * w, torch.zeros(rows.shape[0]))
        self.low_shape = (channels, m, w)
        u_r, s, v_r = torch.linalg.svd(rows, full_matrices=False)  # (B, m, k), (B, k), (B, k, H)
        u_c, t, v_c = torch.linalg.svd(cols, full_matrices=False)
        singular = s[:, :, None] * t[:, None, :]  # (B, k_r, k_c): the singular values of A
        peak = singular.flatten(1).amax(1)
        if not bool((peak > 0).all()):
            raise ValueError("separable operator matrices must not be all zero; check the kernel.")
        kept = singular >= SINGULAR_THRESHOLD * peak[:, None, None]
        self.matrices64 = {
            "R": rows[:, None, None],  # (B, 1, 1, m, H)
            "C": cols[:, None, None],
            "U_r": u_r[:, None, None],
            "V_r": v_r[:, None, None],  # rows are right singular vectors: (B, 1, 1, k_r, H)
            "U_c": u_c[:, None, None],
            "V_c": v_c[:, None, None],
            "S": singular[:, None, None],  # (B, 1, 1, k_r, k_c)
            "S+": torch.where(kept, 1 / singular.clamp_min(torch.finfo(torch.float64).tiny), 0.0)[
                :, None, None
            ],
        }
        self.matrices32 = {k: v.to(torch.float32) for k, v in self.matrices64.items()}

    def _m(self, dtype: torch.dtype) -> dict[str, Tensor]:
        return self.matrices64 if dtype == torch.float64 else self.matrices32

    def _to(self, device: torch.device) -> Operator:
        moved = super()._to(device)
        moved.matrices64 = {k: v.to(device) for k, v in self.matrices64.items()}
        moved.matrices32 = {k: v.to(device) for k, v in self.matrices32.items()}
        return moved

    def _apply(self, x: Tensor) -> Tensor:  # (B, K, C, H, W) -> (B, K, C·m·w)
        m = self._m(x.dtype)
        return (m["R"] @ x @ m["C"].mT).flatten(2)

    def _adjoint(self, y: Tensor) -> Tensor:  # (B, K, M) -> (B, K, C, H, W)
        m = self._m(y.dtype)
        return m["R"].mT @ y.unflatten(2, self.low_shape) @ m["C"]

    def _filtered(self, y: Tensor, gains: Tensor) -> Tensor:
        """``V_r [gains ∘ (U_rᵀ Y U_c)] V_cᵀ``: ``y: (B, K, M)``, ``gains: (B, 1, 1, k_r, k_c)``."""
        m = self._m(y.dtype)
        coefficients = m["U_r"].mT @ y.unflatten(2, self.low_shape) @ m["U_c"]
        return m["V_r"].mT @ (coefficients * gains) @ m["V_c"]

    def _pinv(self, y: Tensor) -> Tensor:
        return self._filtered(y, self._m(y.dtype)["S+"])

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        m = self._m(y.dtype)
        lam = lam[:, None, None, None, None]
        gains = torch.where(lam > 0, m["S"] / (m["S"].square() + lam), m["S+"])
        return self._filtered(y, gains)
