"""Counting denoiser calls (NFE: number of function evaluations)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class NFECounter:
    """Wrap a denoiser and count its calls: ``.nfe`` is the number of (batched) calls so far.

    Attribute access falls through to the wrapped network, so the counter can stand in for it.
    """

    def __init__(self, net: Callable):
        self.net = net
        self.nfe = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.nfe += 1
        return self.net(*args, **kwargs)

    def reset(self) -> None:
        self.nfe = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["net"], name)
