"""Cost of a restoration method: wall-clock seconds per image and denoiser calls (NFE)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Cost:
    """Wall-clock ``seconds_per_image``, ``nfe`` denoiser calls per image, over ``images``."""

    seconds_per_image: float
    nfe: int
    images: int


def measure_cost(run: Callable[[], T], images: int, nfe: int) -> tuple[T, Cost]:
    """Call ``run()`` once (it restores ``images`` images) and time it.

    CUDA work is synchronised before and after so that asynchronous kernels are counted.
    Returns ``run``'s result and its :class:`Cost`.
    """
    if images < 1:
        raise ValueError(
            f"images must be at least 1, got {images}; pass how many images run() restores."
        )
    synchronise = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    synchronise()
    start = time.perf_counter()
    result = run()
    synchronise()
    return result, Cost((time.perf_counter() - start) / images, int(nfe), int(images))
