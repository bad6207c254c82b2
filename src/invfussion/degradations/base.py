"""The operator interface every degradation family implements.

An ``Operator`` is a *batch* of ``B`` linear maps ``A_b: R^{C×H×W} → R^{M_b}``, one per example,
with measurement noise ``σ_y`` per example. Measurements of every example are zero-padded to one
``M`` so mixed batches stack. Subclasses implement three methods on image *stacks*:

- ``_apply(x)``: ``x: (B, K, C, H, W)`` → ``(B, K, M)``
- ``_pinv(y)``: ``y: (B, K, M)`` → ``(B, K, C, H, W)``
- ``_adjoint(y)``: ``y: (B, K, M)`` → ``(B, K, C, H, W)``, the transpose ``Aᵀ`` (optional: only
  ``op.AT`` and what uses it, e.g. ``sampling.lmmse``, need it)

all computed in the dtype they are given (float32 or float64); the public methods handle the
``(B, C, H, W)`` / ``(B, K, C, H, W)`` dispatch, disable autocast, and return the input's dtype.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import seeding

Transform = Callable[[Tensor, Tensor], Tensor]
"""``transform(y: (B, M), Ay: (B, K, M)) → (B, K, M)``, acting on each measurement coordinate on its
own (see :meth:`Operator.round_trip`)."""


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Operators compute in float64 when given float64, else in float32 (bf16/fp16 are upcast)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


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

    def _round_trip(self, z: Tensor, y: Tensor, transform: Transform) -> Tensor:
        """``A⁺ transform(y, A z)``: ``z: (B, K, C, H, W)``, ``y: (B, M)`` → ``(B, K, C, H, W)``."""
        return self._pinv(transform(y, self._apply(z)))

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

    def AT(self, y: Tensor) -> Tensor:
        """The adjoint ``Aᵀ y``: ``y: (B, M)`` → ``(B, C, H, W)``; ``(B, K, M)`` → ``(B, K, C, H, W)``.

        ``⟨A x, y⟩ = ⟨x, Aᵀ y⟩``; padded measurement coordinates contribute nothing.
        """
        return self._to_images(self._adjoint, y)

    def round_trip(self, z: Tensor, y: Tensor, transform: Transform) -> Tensor:
        """``A⁺ transform(y, A z)`` for an image stack ``z: (B, K, C, H, W)`` and ``y: (B, M)``.

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
            return self._round_trip(stack.to(dtype), y.to(dtype), transform).to(z.dtype)

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
