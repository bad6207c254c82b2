"""In-painting families: a pixel mask shared by all channels (paper App. A.2.1 and A.2.4).

``A x`` keeps the visible pixels and zeroes the rest, in the image's shape flattened
(``M = C·H·W``), so masks of different examples stack; ``A⁺ = Aᵀ = A`` (an orthogonal
projection) and ``measurement_mask`` marks the visible coordinates. ``AAᵀ`` is the identity on
the visible pixels, so the noise-aware inverse is ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹ = A⁺/(1 + λ)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Operator
from .spec import Param

_MAX_DRAWS = 1000


class MaskOperator(Operator):
    """``mask: (B, H, W)`` bool, true where a pixel is visible (the same for every channel)."""

    def __init__(self, image_shape: tuple[int, int, int], mask: Tensor):
        C, H, W = image_shape
        if mask.shape[1:] != (H, W) or not bool(mask.flatten(1).any(1).all()):
            raise ValueError(
                "every in-painting mask must have the image's (H, W) and at least one visible pixel."
            )
        super().__init__(image_shape, C * H * W, torch.zeros(mask.shape[0]))
        self.mask = mask.bool()
        self.weights32 = self.mask[:, None, None].to(torch.float32)  # (B, 1, 1, H, W), made once

    def _weights(self, dtype: torch.dtype) -> Tensor:  # (B, 1, 1, H, W)
        return self.weights32 if dtype == torch.float32 else self.weights32.to(dtype)

    def _apply(self, x: Tensor) -> Tensor:
        return (x * self._weights(x.dtype)).flatten(2)

    def _pinv(self, y: Tensor) -> Tensor:
        return y.unflatten(2, self.image_shape) * self._weights(y.dtype)

    _adjoint = _pinv  # an orthogonal projection: Aᵀ = A⁺

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        return self._pinv(y) / (1 + lam)[:, None, None, None, None]  # exactly A⁺ y where λ = 0

    def measurement_mask(self) -> Tensor:
        return self.mask[:, None].expand(-1, self.image_shape[0], -1, -1).flatten(1)


class InpaintPatches:
    """``inpaint-patches``: keep a random subset of ``size``×``size`` patches of a regular grid.

    Parameters (left out: drawn per example, paper App. A.2.1):
        size: patch side in pixels, 1..min(H, W); drawn as ``2^U{0..⌊log2 min(H, W)⌋}``.
        keep: probability that a patch is visible, in (0, 1]; drawn ~U(0, 0.1).
    Patches at the right/bottom border are cropped when ``size`` does not divide the image.
    A mask with nothing visible is rejected and redrawn (size and keep too, where drawn); after
    1000 empty draws one uniformly chosen patch is made visible.
    """

    params = (
        Param("size", int, "patch side in pixels; drawn as 2^U{0..log2 min(H,W)}", low=1),
        Param(
            "keep",
            float,
            "probability that a patch is visible; drawn ~U(0, 0.1)",
            low=0.0,
            high=1.0,
            low_open=True,
        ),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> MaskOperator:
        _, H, W = image_shape
        if values["size"] is not None and values["size"] > min(H, W):
            raise ValueError(
                f"inpaint-patches: size={values['size']} is larger than the image; size must be 1..{min(H, W)}."
            )
        return MaskOperator(
            image_shape, torch.stack([cls._mask(values, H, W, g) for g in generators])
        )

    @staticmethod
    def _mask(values, H: int, W: int, g: torch.Generator) -> Tensor:
        for _ in range(_MAX_DRAWS):
            size = values["size"]
            if size is None:
                size = 2 ** int(torch.randint(0, int(math.log2(min(H, W))) + 1, (), generator=g))
            keep = values["keep"]
            if keep is None:
                keep = 0.1 * float(torch.rand((), generator=g))
            grid = torch.rand(math.ceil(H / size), math.ceil(W / size), generator=g) < keep
            if grid.any():
                break
        else:
            grid.view(-1)[torch.randint(0, grid.numel(), (), generator=g)] = True
        return grid.repeat_interleave(size, 0).repeat_interleave(size, 1)[:H, :W]


def _random_box(H: int, W: int, g: torch.Generator) -> Tensor:
    """``(H, W)`` bool, true inside the rectangle spanned by two distinct uniform pixels."""
    while True:
        (r0, r1), (c0, c1) = (
            torch.randint(0, H, (2,), generator=g).tolist(),
            torch.randint(0, W, (2,), generator=g).tolist(),
        )
        if (r0, c0) != (r1, c1):
            break
    box = torch.zeros(H, W, dtype=torch.bool)
    box[min(r0, r1) : max(r0, r1) + 1, min(c0, c1) : max(c0, c1) + 1] = True
    return box


class OutpaintBox:
    """``outpaint-box``: only one rectangle is visible (paper App. A.2.4; held out of training).

    The rectangle is spanned by two distinct pixels drawn uniformly over the image. No parameters
    besides ``noise``.
    """

    params: tuple[Param, ...] = ()

    @classmethod
    def build(cls, values, image_shape, generators) -> MaskOperator:
        _, H, W = image_shape
        if H * W < 2:
            raise ValueError("outpaint-box needs an image of at least 2 pixels.")
        return MaskOperator(image_shape, torch.stack([_random_box(H, W, g) for g in generators]))


def _square_box(H: int, W: int, size: int, g: torch.Generator) -> Tensor:
    """``(H, W)`` bool, true inside a ``size``×``size`` square placed uniformly with a margin of
    ``⌊H/16⌋`` rows and ``⌊W/16⌋`` columns from the border where it fits (DPS's ``random_sq_bbox``:
    16 pixels on 256²), closer to the border where it does not."""
    corner = []
    for n in (H, W):
        margin = min(n // 16, (n - size) // 2)
        corner.append(margin + int(torch.randint(0, n - size - 2 * margin + 1, (), generator=g)))
    box = torch.zeros(H, W, dtype=torch.bool)
    box[corner[0] : corner[0] + size, corner[1] : corner[1] + size] = True
    return box


class InpaintBox:
    """``inpaint-box``: one rectangle is hidden, the rest visible (the complement of outpaint-box).

    Parameters:
        size: the side of a hidden square placed at random (see :func:`_square_box`; DPS/DAPS:
            ``size=128`` on 256²), smaller than the image. Left out: the rectangle is drawn as for
            ``outpaint-box`` (one covering the whole image is redrawn).
    """

    params = (Param("size", int, "side of a hidden square at a random place; left out: a random rectangle", low=1),)

    @classmethod
    def build(cls, values, image_shape, generators) -> MaskOperator:
        _, H, W = image_shape
        size = values["size"]
        if size is not None:
            if size >= min(H, W):
                raise ValueError(
                    f"inpaint-box: size={size} hides the whole {H}×{W} image; size must be 1..{min(H, W) - 1}."
                )
            return MaskOperator(
                image_shape, torch.stack([~_square_box(H, W, size, g) for g in generators])
            )
        if H * W < 3:
            raise ValueError("inpaint-box needs an image of at least 3 pixels.")
        masks = []
        for g in generators:
            visible = ~_random_box(H, W, g)
            while not visible.any():
                visible = ~_random_box(H, W, g)
            masks.append(visible)
        return MaskOperator(image_shape, torch.stack(masks))


class InpaintRandom:
    """``inpaint-random``: random pixels are hidden (the same pixels in every channel).

    Parameters (left out: drawn per example):
        missing: the fraction of hidden pixels, in [0, 1): exactly ``⌊missing·H·W⌋`` pixels chosen
            uniformly without replacement, as DPS's random mask (``missing=0.7`` there); drawn
            ~U(0.5, 0.95). At least one pixel stays visible.
    """

    params = (
        Param("missing", float, "fraction of hidden pixels; drawn ~U(0.5, 0.95)", low=0.0, high=1.0),
    )

    @classmethod
    def build(cls, values, image_shape, generators) -> MaskOperator:
        _, H, W = image_shape
        if values["missing"] is not None and values["missing"] >= 1:
            raise ValueError("inpaint-random: missing=1 hides every pixel; missing must be < 1.")
        masks = []
        for g in generators:
            missing = values["missing"]
            if missing is None:
                missing = 0.5 + 0.45 * float(torch.rand((), generator=g, dtype=torch.float64))
            hidden = min(int(missing * H * W), H * W - 1)
            visible = torch.ones(H * W, dtype=torch.bool)
            visible[torch.randperm(H * W, generator=g)[:hidden]] = False
            masks.append(visible.view(H, W))
        return MaskOperator(image_shape, torch.stack(masks))
