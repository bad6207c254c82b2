"""The operator interface every degradation family implements.

An ``Operator`` is a *batch* of ``B`` linear maps ``A_b: R^{C×H×W} → R^{M_b}``, one per example,
with measurement noise ``σ_y`` per example. Measurements of every example are zero-padded to one
``M`` so mixed batches stack. Subclasses implement three methods on image *stacks*:

- ``_apply(x)``: ``x: (B, K, C, H, W)`` → ``(B, K, M)``
- ``_pinv(y)``: ``y: (B, K, M)`` → ``(B, K, C, H, W)``
- ``_adjoint(y)``: ``y: (B, K, M)`` → ``(B, K, C, H, W)``, the transpose ``Aᵀ`` (optional: only
  ``op.AT`` and what uses it, e.g. ``sampling.lmmse``, need it)
- ``_pinv_noisy(y, lam)`` (optional): the Tikhonov inverse ``Aᵀ(AAᵀ + λ_b I)⁻¹`` for ``λ: (B,)``,
  exactly ``_pinv(y)`` where ``λ_b = 0``. The default solves by conjugate gradients with
  ``_apply`` and ``_adjoint`` (see :meth:`Operator._pinv_noisy`); families give closed forms.

all computed in the dtype they are given (float32 or float64); the public methods handle the
``(B, C, H, W)`` / ``(B, K, C, H, W)`` dispatch, disable autocast, and return the input's dtype.

Noise-aware inverse. With noisy measurements ``y = A x + σ_y ε`` the exact ``A⁺`` amplifies
``σ_y`` by ``1/s`` along a singular value ``s`` of ``A`` (``~10⁴`` for strided blur). The
network input and the Feature Degradation Layers therefore use ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹`` with
``λ = σ_y²/σ_d²`` per example (``σ_d = SIGMA_DATA = 0.5``, the data standard deviation the
networks assume): the Wiener-like regulariser of a white prior of variance ``σ_d²``, which keeps a
singular direction by the factor ``s²/(s² + λ)`` and bounds the noise gain by ``σ_d/(2σ_y)``
(``σ_y = 0.05`` gives ``λ = 0.01``). At ``σ_y = 0`` it is the exact ``A⁺``. Projections
(``op.project``) and C-FD keep the exact ``A⁺``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import seeding
from ..linalg import conjugate_gradients

SIGMA_DATA = 0.5
"""``σ_d``: the data standard deviation the networks assume, the prior scale of ``A⁺_σ``."""

CG_MAX_ITER, CG_RTOL = 500, 1e-6
"""Conjugate-gradient budget of the default :meth:`Operator._pinv_noisy`."""

Transform = Callable[[Tensor, Tensor], Tensor]
"""``transform(y: (B, M), Ay: (B, K, M)) → (B, K, M)``, acting on each measurement coordinate on its
own (see :meth:`Operator.round_trip`)."""


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Operators compute in float64 when given float64, else in float32 (bf16/fp16 are upcast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tikhonov_weight(noise_std: Tensor) -> Tensor:
    """``λ = σ_y²/σ_d²`` per example, ``(B,)`` → ``(B,)``: the weight of ``A⁺_σ`` (0 when noiseless)."""
    return (noise_std / SIGMA_DATA).square()


class Operator:
    """A batch of ``B`` linear degradation operators on images of shape ``(C, H, W)``.

    Attributes:
        image_shape: ``(C, H, W)``.
        measurement_size: ``M``, the padded length of one measurement.
        noise_std: ``(B,)`` measurement noise ``σ_y`` per example.
    """

    def __init__(self, image_shape: tuple[int, int, int], measurement_size: int, noise_std: Tensor):
        self.image_shape = tuple(int(s) for s in image_shape)
        self.measurement_size = int(measurement_size)
        self.noise_std = noise_std.to(torch.float32).reshape(-1)

    # -- to implement -------------------------------------------------------------------------
    def _apply(self, x: Tensor) -> Tensor:  # (B, K, C, H, W) -> (B, K, M)
        raise NotImplementedError

    def _pinv(self, y: Tensor) -> Tensor:  # (B, K, M) -> (B, K, C, H, W)
        raise NotImplementedError

    def _adjoint(self, y: Tensor) -> Tensor:  # (B, K, M) -> (B, K, C, H, W)
        raise NotImplementedError(
            f"{type(self).__name__} has no adjoint; implement its _adjoint(y): (B, K, M) -> "
            "(B, K, C, H, W), the transpose of _apply, to use op.AT (and lmmse)."
        )

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:  # (B, K, M), (B,) -> (B, K, C, H, W)
        """``Aᵀ(AAᵀ + λ_b I)⁻¹ y`` by default: conjugate gradients on ``(AAᵀ + λ_b I) z = y`` for every
        example with ``λ_b > 0`` (and stack entry), using ``_apply`` and ``_adjoint``, to a relative
        residual of ``CG_RTOL`` (at most ``CG_MAX_ITER`` iterations); ``_pinv(y)`` where ``λ_b = 0``.
        Families with a closed form override it."""
        noisy = lam > 0
        if not bool(noisy.any()):
            return self._pinv(y)
        if type(self)._adjoint is Operator._adjoint:
            raise NotImplementedError(
                f"{type(self).__name__} has neither _pinv_noisy nor _adjoint; implement _adjoint(y) "
                "(the transpose of _apply) or _pinv_noisy(y, lam) to use noisy measurements (σ_y > 0)."
            )
        B, K, M = y.shape
        damping = torch.where(noisy, lam, torch.ones_like(lam)).repeat_interleave(K)[:, None]

        def gram(p: Tensor) -> Tensor:  # (B·K, M) -> (AAᵀ + λI) p
            return self._apply(self._adjoint(p.reshape(B, K, M))).flatten(0, 1) + damping * p

        z = conjugate_gradients(gram, y.flatten(0, 1), CG_MAX_ITER, CG_RTOL)
        solved = self._adjoint(z.reshape(B, K, M))
        if bool(noisy.all()):
            return solved
        return torch.where(noisy[:, None, None, None, None], solved, self._pinv(y))

    def _round_trip(self, z: Tensor, y: Tensor, transform: Transform, lam: Tensor) -> Tensor:
        """``A⁺_σ transform(y, A z)``: ``z: (B, K, C, H, W)``, ``y: (B, M)``, ``λ: (B,)`` →
        ``(B, K, C, H, W)``."""
        return self._pinv_noisy(transform(y, self._apply(z)), lam)

    def measurement_mask(self) -> Tensor:
        """``(B, M)`` bool: which coordinates of each measurement are real (not padding)."""
        return torch.ones(
            self.batch_size, self.measurement_size, dtype=torch.bool, device=self.device
        )

    def _to(self, device: torch.device) -> Operator:
        """A shallow copy whose tensor attributes (and operators held in lists) live on ``device``."""
        moved = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                setattr(moved, name, value.to(device))
            elif isinstance(value, list) and value and all(isinstance(v, Operator) for v in value):
                setattr(moved, name, [v.to(device) for v in value])
        return moved

    # -- public interface ---------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return int(self.noise_std.shape[0])

    @property
    def device(self) -> torch.device:
        return self.noise_std.device

    def to(self, device: torch.device | str) -> Operator:
        device = torch.device(device)
        if device == self.device:
            return self
        moved = self._to(device)
        moved.noise_std = self.noise_std.to(device)
        return moved

    def with_noise_std(self, noise_std: Tensor) -> Operator:
        """A shallow copy with measurement noise ``noise_std: (B,)`` (the same linear maps)."""
        changed = copy.copy(self)
        changed.noise_std = noise_std.to(torch.float32, copy=True).to(self.device).reshape(self.batch_size)
        return changed

    def A(self, x: Tensor) -> Tensor:
        """``x: (B, C, H, W)`` → ``(B, M)``; ``x: (B, K, C, H, W)`` → ``(B, K, M)``."""
        stack = self._as_stack(x, image=True)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self._apply(stack.to(compute_dtype(x.dtype)))
        return out.to(x.dtype) if x.dim() == 5 else out[:, 0].to(x.dtype)

    def pinv(self, y: Tensor) -> Tensor:
        """``y: (B, M)`` → ``(B, C, H, W)``; ``y: (B, K, M)`` → ``(B, K, C, H, W)``."""
        return self._to_images(self._pinv, y)

    def pinv_noisy(self, y: Tensor, lam: Tensor | None = None) -> Tensor:
        """The noise-aware inverse ``A⁺_σ y = Aᵀ(AAᵀ + λI)⁻¹ y`` (see the module docstring).

        ``y: (B, M)`` → ``(B, C, H, W)``; ``y: (B, K, M)`` → ``(B, K, C, H, W)``. ``lam: (B,)``
        non-negative, default ``σ_y²/σ_d²`` from ``noise_std``; where it is 0 the result is
        exactly ``pinv(y)``.
        """
        if lam is not None and lam.shape != (self.batch_size,):
            raise ValueError(
                f"lam must have shape ({self.batch_size},), one weight per example, "
                f"got {tuple(lam.shape)}."
            )
        return self._to_images(lambda t: self._pinv_noisy(t, self._weight(lam, t)), y)

    def AT(self, y: Tensor) -> Tensor:
        """The adjoint ``Aᵀ y``: ``y: (B, M)`` → ``(B, C, H, W)``; ``(B, K, M)`` → ``(B, K, C, H, W)``.

        ``⟨A x, y⟩ = ⟨x, Aᵀ y⟩``; padded measurement coordinates contribute nothing.
        """
        return self._to_images(self._adjoint, y)

    def round_trip(self, z: Tensor, y: Tensor, transform: Transform) -> Tensor:
        """``A⁺_σ transform(y, A z)`` for an image stack ``z: (B, K, C, H, W)`` and ``y: (B, M)``
        (the noise-aware inverse :meth:`pinv_noisy`; exactly ``A⁺`` for noiseless examples).

        ``transform`` maps ``(y: (B, M), A z: (B, K, M))`` to ``(B, K, M)`` and must act on every
        measurement coordinate on its own (as the Feature Degradation Layer's mix does): then a
        grouped operator runs it per part on unpadded measurements. Computed in float32 (float64
        for float64 input) with autocast off; returns ``z``'s dtype.
        """
        stack = self._as_stack(z, image=True)
        if z.dim() != 5 or y.shape != (self.batch_size, self.measurement_size):
            raise ValueError(
                f"round_trip expects an image stack (B, K, C, H, W) and y of shape "
                f"({self.batch_size}, {self.measurement_size}), got {tuple(z.shape)} and {tuple(y.shape)}."
            )
        dtype = compute_dtype(z.dtype)
        with torch.autocast(device_type=z.device.type, enabled=False):
            stack = stack.to(dtype)
            lam = self._weight(None, stack)
            return self._round_trip(stack, y.to(dtype), transform, lam).to(z.dtype)

    def measure(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        indices: Sequence[int] | None = None,
    ) -> Tensor:
        """``y = A x + σ_y ε`` for ``x: (B, C, H, W)``.

        The noise comes from ``generator`` if given, else from per-example streams of ``seed``
        (example ``b`` uses global index ``indices[b]``, default ``b``), else from the global
        generator.
        """
        y = self.A(x)
        if not bool((self.noise_std > 0).any()):
            return y
        if seed is not None:
            eps = seeding.randn(
                seed,
                y.shape[0] if indices is None else indices,
                y.shape[1:],
                "measurement",
                y.device,
                y.dtype,
            )
        else:
            eps = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
        eps = eps * self.measurement_mask().to(y.dtype)  # padded coordinates stay zero
        return y + self.noise_std.to(y.device, y.dtype)[:, None] * eps

    def project(self, x: Tensor, y: Tensor) -> Tensor:
        """``x + A⁺(y − A x)``: the closest point to ``x`` consistent with ``y`` (noiseless)."""
        return x + self.pinv(y - self.A(x))

    # -- helpers ------------------------------------------------------------------------------
    def _to_images(self, method: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
        """Apply a ``(B, K, M) → (B, K, C, H, W)`` hook to ``y: (B, [K,] M)``, autocast off."""
        stack = self._as_stack(y, image=False)
        with torch.autocast(device_type=y.device.type, enabled=False):
            out = method(stack.to(compute_dtype(y.dtype)))
        return out.to(y.dtype) if y.dim() == 3 else out[:, 0].to(y.dtype)

    def _weight(self, lam: Tensor | None, like: Tensor) -> Tensor:
        """``λ: (B,)`` on ``like``'s device and dtype; ``None``: ``σ_y²/σ_d²`` computed in that dtype."""
        if lam is None:
            return tikhonov_weight(self.noise_std.to(like.device, like.dtype))
        return lam.to(like.device, like.dtype)

    def _as_stack(self, t: Tensor, image: bool) -> Tensor:
        base = 3 if image else 1
        what = (
            f"images of shape (B, [K,] {', '.join(map(str, self.image_shape))})"
            if image
            else (f"measurements of shape (B, [K,] {self.measurement_size})")
        )
        if t.dim() not in (base + 1, base + 2) or t.shape[0] != self.batch_size:
            raise ValueError(
                f"operator batch of {self.batch_size} expects {what}, got {tuple(t.shape)}; "
                "pass one image (or stack) per operator."
            )
        stack = t if t.dim() == base + 2 else t.unsqueeze(1)
        tail = tuple(stack.shape[2:])
        expected = self.image_shape if image else (self.measurement_size,)
        if tail != tuple(expected):
            raise ValueError(
                f"expected {what}, got {tuple(t.shape)}; resize or pick a matching operator."
            )
        return stack
