"""Traditional exponential moving average of the weights, with a half-life counted in images."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch_images: int, images_seen: int, half_life_images: float, rampup_ratio: float | None) -> float:
    """Decay ``β = 0.5^(batch / half_life)`` for one step of ``batch_images`` images.

    With ``rampup_ratio`` set, the half-life is capped at ``rampup_ratio · images_seen`` so the
    average forgets the random initialisation quickly early in training.
    """
    half_life = float(half_life_images)
    if rampup_ratio is not None:
        half_life = min(half_life, rampup_ratio * images_seen)
    if half_life <= 0:
        return 0.0
    return 0.5 ** (batch_images / half_life)


class EMA:
    """A frozen copy of ``net`` whose floating-point parameters and buffers track ``net``'s.

    Args:
        net: the model being trained (the raw module, not a DDP wrapper).
        half_life_images: images after which an old weight's contribution has halved.
        rampup_ratio: cap the half-life at this fraction of the images seen (``None``: no cap).
    """

    def __init__(self, net: nn.Module, half_life_images: float, rampup_ratio: float | None = 0.05):
        if half_life_images <= 0:
            raise ValueError(f"EMA half-life must be positive, got {half_life_images}; pass a number of images > 0.")
        self.half_life_images = float(half_life_images)
        self.rampup_ratio = rampup_ratio
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self._pairs_of: tuple[int, list[torch.Tensor], list[torch.Tensor]] | None = None

    def _pairs(self, net: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Matching floating-point tensors (EMA copy, ``net``), collected once per ``net``."""
        if self._pairs_of is None or self._pairs_of[0] != id(net):
            src = dict(net.state_dict(keep_vars=True))
            dst, new = [], []
            for name, tensor in self.net.state_dict(keep_vars=True).items():
                if tensor.is_floating_point():
                    dst.append(tensor.data)
                    new.append(src[name].detach())
            self._pairs_of = (id(net), dst, new)
        return self._pairs_of[1], self._pairs_of[2]

    @torch.no_grad()
    def update(self, net: nn.Module, batch_images: int, images_seen: int) -> float:
        """Blend ``net``'s weights in after a step; ``images_seen`` counts this step's images. Returns β."""
        beta = ema_beta(batch_images, images_seen, self.half_life_images, self.rampup_ratio)
        dst, new = self._pairs(net)
        torch._foreach_lerp_(dst, new, 1.0 - beta)
        return beta
