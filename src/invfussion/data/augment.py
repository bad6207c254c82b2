"""EDM-style geometric augmentation whose parameters become a label for the network.

Each example draws its own transform from ``seeding.example_generator(seed, index, "augment")``,
so example ``i`` is augmented the same way whatever the batch it sits in. The network is told the
transform through ``aug_labels`` (its mapping network takes them, EDM "non-leaky" augmentation),
and is sampled with all-zero labels, which mean "no augmentation".

Label vector (``Augment.label_dim = 7``), every entry 0 for the identity:

====  =====================================================================
0     x-flip (1 if flipped)
1, 2  integer translation (tx / W, ty / H), |t| ≤ 0.125 of the size
3     isotropic scale, log2 s, s = 2^N(0, 0.2²)
4, 5  rotation θ ~ U(−π, π]: (cos θ − 1, sin θ)
6     anisotropic scale, log2 s (x scaled by s, y by 1/s), s = 2^N(0, 0.2²)
====  =====================================================================

x-flip (``xflip=True``) happens with probability 1/2, like EDM's dataset mirroring; each other
transform is applied with probability ``p``. Resampling is bilinear with reflection padding;
flips and integer translations land on pixel centres and are exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import seeding

TRANSLATE_MAX = 0.125
SCALE_STD = 0.2


class Augment:
    """Callable ``(images, seed, indices) → (augmented, aug_labels)``.

    Args:
        p: probability of each geometric transform (translation, scaling, rotation, anisotropy).
        xflip: mirror horizontally with probability 1/2.
    """

    label_dim = 7

    def __init__(self, p: float, xflip: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation probability p must lie in [0, 1], got {p}.")
        self.p, self.xflip = float(p), bool(xflip)

    @property
    def active(self) -> bool:
        return self.p > 0 or self.xflip

    def __call__(
        self, images: Tensor, seed: int = 0, indices: int | Sequence[int] | Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Augment ``images: (B, C, H, W)``; example ``b`` uses the stream of ``(seed, indices[b])``.

        Returns:
            augmented ``(B, C, H, W)`` (same dtype and device), ``aug_labels: (B, 7)`` float32.
        """
        batch, _, height, width = images.shape
        index_list = seeding.as_indices(batch if indices is None else indices)
        if len(index_list) != batch:
            raise ValueError(
                f"got {len(index_list)} indices for a batch of {batch}; pass one index per image."
            )
        matrices, labels = zip(
            *(
                self._draw(seeding.example_generator(seed, i, "augment"), height, width)
                for i in index_list
            )
        )
        labels = torch.stack(labels).to(images.device)
        if not self.active:
            return images, labels
        theta = torch.stack(matrices).to(device=images.device, dtype=torch.float32)
        grid = F.affine_grid(theta, (batch, 1, height, width), align_corners=False)
        out = F.grid_sample(
            images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        return out.to(images.dtype), labels

    def _draw(self, generator: torch.Generator, height: int, width: int) -> tuple[Tensor, Tensor]:
        """One example's ``(2, 3)`` sampling matrix in normalised coordinates and its label ``(7,)``."""
        # Draw every value in a fixed order so the stream does not depend on which transforms apply.
        u = torch.rand(5, generator=generator, dtype=torch.float64)
        z = torch.randn(2, generator=generator, dtype=torch.float64)
        t = torch.rand(3, generator=generator, dtype=torch.float64)
        apply = u[1:] < self.p
        flip = 1.0 if self.xflip and u[0] < 0.5 else 0.0
        tx = round(float(t[0] * 2 - 1) * TRANSLATE_MAX * width) if apply[0] else 0
        ty = round(float(t[1] * 2 - 1) * TRANSLATE_MAX * height) if apply[0] else 0
        log_scale = float(z[0]) * SCALE_STD if apply[1] else 0.0
        angle = float(t[2] * 2 - 1) * math.pi if apply[2] else 0.0
        log_aniso = float(z[1]) * SCALE_STD if apply[3] else 0.0

        # Forward map (pixel units, origin at the image centre): aniso → rotate → scale → translate → flip.
        s, a = 2.0**log_scale, 2.0**log_aniso
        c, n = math.cos(angle), math.sin(angle)
        forward = torch.tensor([[1 - 2 * flip, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
        forward = forward @ torch.tensor([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=torch.float64)
        forward = forward @ torch.diag(torch.tensor([s, s, 1.0], dtype=torch.float64))
        forward = forward @ torch.tensor([[c, -n, 0], [n, c, 0], [0, 0, 1]], dtype=torch.float64)
        forward = forward @ torch.diag(torch.tensor([a, 1 / a, 1.0], dtype=torch.float64))
        # grid_sample needs output → input in coordinates normalised to [-1, 1].
        to_normalised = torch.diag(torch.tensor([2 / width, 2 / height, 1.0], dtype=torch.float64))
        sampling = to_normalised @ torch.linalg.inv(forward) @ torch.linalg.inv(to_normalised)
        label = torch.tensor(
            [
                flip,
                tx / width,
                ty / height,
                log_scale,
                math.cos(angle) - 1,
                math.sin(angle),
                log_aniso,
            ],
            dtype=torch.float32,
        )
        return sampling[:2].to(torch.float32), label
