"""Classifier-free guidance (CFG) around any denoiser, and the checks of a requested class.

With a class ``c`` and a weight ``w``, the guided denoiser is ``D = D_null.lerp(D_c, w)``
(NOTES §5): ``w = 1`` is the conditional call, ``w = 0`` the null-class call (the class that
label dropout trains), ``w > 1`` pushes past the conditional output. :func:`guided` binds the
class (and applies CFG) once, so every sampler — the EDM solvers, the one-call MMSE and NPPC, the
zero-shot samplers, which call ``net(x, σ)`` — drives a class-conditional prior unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import Tensor


class Guided:
    """``net`` with ``class_labels`` bound and, with ``cfg = w``, classifier-free guidance.

    Called like ``net`` (``x_noisy: (B, C, H, W)``, ``sigma``, any further arguments); with CFG it
    makes two calls, the second with ``class_labels=None`` (the null class), and returns
    ``null.lerp(conditional, w)`` — for a tuple of outputs (e.g. ``return_pcs=True``), each
    member's. Attribute access falls through to ``net``.
    """

    def __init__(self, net: Callable, class_labels: Tensor, cfg: float | None):
        self.net, self.class_labels, self.cfg = net, class_labels, cfg

    def __call__(self, x: Tensor, sigma: Tensor | float, *args: Any, **kwargs: Any) -> Any:
        conditional = self.net(x, sigma, *args, class_labels=self.class_labels, **kwargs)
        if self.cfg is None:
            return conditional
        null = self.net(x, sigma, *args, class_labels=None, **kwargs)
        if isinstance(conditional, tuple):
            return tuple(n.lerp(c, self.cfg) for n, c in zip(null, conditional))
        return null.lerp(conditional, self.cfg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["net"], name)


def check_cfg(has_class: bool, cfg: float | None) -> None:
    """Raise ``ValueError`` unless ``cfg`` is ``None`` or a finite weight ``≥ 0`` with a class."""
    if cfg is None:
        return
    if not math.isfinite(cfg) or cfg < 0:
        raise ValueError(f"the guidance weight cfg must be a finite number ≥ 0, got {cfg}.")
    if not has_class:
        raise ValueError("guidance (cfg) needs a class label to guide towards; give a class or drop cfg.")


def guided(net: Callable, class_labels: Tensor | None, cfg: float | None) -> Callable:
    """``net`` itself without a class, else a :class:`Guided` denoiser (``class_labels: (B,)``,
    as the network takes them); ``ValueError`` for a bad ``cfg`` (see :func:`check_cfg`)."""
    check_cfg(class_labels is not None, cfg)
    return net if class_labels is None else Guided(net, class_labels, cfg)


def calls_per_evaluation(cfg: float | None) -> int:
    """Network calls per guided denoiser evaluation: 2 with CFG (class and null), else 1."""
    return 1 if cfg is None else 2


def check_guidance(net: Callable, class_labels: Tensor | None, cfg: float | None) -> None:
    """A user's class request against the model: ``ValueError`` (one line) if ``cfg`` is bad or
    comes without a class, if the model has no classes, or a label lies outside
    ``[0, net.num_classes)`` (the null class ``num_classes`` is what "no class" means)."""
    check_cfg(class_labels is not None, cfg)
    if class_labels is None:
        return
    num_classes = int(getattr(net, "num_classes", 0) or 0)
    if not num_classes:
        raise ValueError("this model is not class-conditional; drop the class label (and cfg).")
    outside = class_labels[(class_labels < 0) | (class_labels >= num_classes)]
    if class_labels.dtype.is_floating_point or outside.numel():
        bad = outside[0].item() if outside.numel() else class_labels[0].item()
        raise ValueError(
            f"class label {bad} is not one of this model's classes; pick an integer from 0 to {num_classes - 1}."
        )
