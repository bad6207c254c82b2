"""Per-example random streams.

Every random draw that belongs to one example (its operator, its measurement noise, its sampler
noise) comes from a generator seeded by ``(seed, stream, index)`` alone, so example ``i`` is the
same whatever the batch size, the device or the number of processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor


def example_seed(seed: int, index: int, stream: str = "") -> int:
    """A 63-bit seed for example ``index`` of stream ``stream`` under the global ``seed``."""
    digest = hashlib.blake2b(f"{int(seed)}|{stream}|{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def example_generator(seed: int, index: int, stream: str = "") -> torch.Generator:
    """A CPU generator for one example (CPU so that draws do not depend on the device)."""
    return torch.Generator().manual_seed(example_seed(seed, index, stream))


def as_indices(batch_or_indices: int | Sequence[int] | torch.Tensor) -> list[int]:
    """``B`` means examples ``0..B-1``; a sequence names the global example indices."""
    if isinstance(batch_or_indices, int):
        return list(range(batch_or_indices))
    if isinstance(batch_or_indices, torch.Tensor):
        return [int(i) for i in batch_or_indices.tolist()]
    return [int(i) for i in batch_or_indices]


def uniform(seed: int, indices: int | Sequence[int] | torch.Tensor, stream: str = "") -> torch.Tensor:
    """``(B,)`` uniform [0, 1) draws; entry ``b`` depends on ``(seed, stream, i_b)`` only."""
    return torch.stack(
        [torch.rand((), generator=example_generator(seed, i, stream)) for i in as_indices(indices)]
    )


def randn(
    seed: int,
    indices: int | Sequence[int] | torch.Tensor,
    shape: Sequence[int],
    stream: str = "",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of shape ``(B, *shape)``; row ``b`` depends on ``(seed, stream, i_b)``."""
    rows = [
        torch.randn(tuple(shape), generator=example_generator(seed, i, stream))
        for i in as_indices(indices)
    ]
    return torch.stack(rows).to(device=device, dtype=dtype)


class ExampleNoise:
    """Per-example Gaussian streams: draw k of example ``i`` depends on ``(seed, stream, i, k)``.

    ``draw()`` returns ``(B, *shape)`` standard normal noise; ``draw(count)`` returns
    ``(count, B, *shape)`` in one transfer (a different, equally fixed, sequence of draws).
    """

    def __init__(
        self,
        seed: int,
        indices: Sequence[int],
        shape: Sequence[int],
        stream: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ):
        self.generators = [example_generator(seed, i, stream) for i in indices]
        self.shape, self.device, self.dtype = tuple(shape), device, dtype

    def draw(self, count: int | None = None) -> Tensor:
        if count is None:
            rows = [torch.randn(self.shape, generator=g) for g in self.generators]
            return torch.stack(rows).to(device=self.device, dtype=self.dtype)
        rows = [torch.randn((count, *self.shape), generator=g) for g in self.generators]
        return torch.stack(rows, 1).to(device=self.device, dtype=self.dtype)
