"""One operator batch made of several sub-batches (mixed families, or mixed strides/factors).

``GroupedOperator`` holds sub-operators, each for some positions of the batch, and applies each
to its own examples in one call: inputs are gathered per group, measurements zero-padded to the
largest ``M`` and scattered back by a permutation (no in-place writes, so autograd flows).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator


class GroupedOperator(Operator):
    """Examples ``positions[g]`` of the batch are handled by ``parts[g]`` (in that order).

    ``M`` is the largest ``M`` of the parts; shorter measurements are zero-padded at the end and
    ``measurement_mask`` marks the padding as not real.
    """

    def __init__(self, parts: Sequence[Operator], positions: Sequence[Sequence[int]]):
        order = [int(p) for group in positions for p in group]
        if sorted(order) != list(range(len(order))) or any(
            op.batch_size != len(group) for op, group in zip(parts, positions, strict=True)
        ):
            raise ValueError(
                "grouped operator positions must cover 0..B-1 once, one per example of each part."
            )
        shapes = {op.image_shape for op in parts}
        if len(shapes) != 1:
            raise ValueError(f"grouped operators must share one image shape, got {sorted(shapes)}.")
        device = parts[0].device
        super().__init__(
            parts[0].image_shape,
            max(op.measurement_size for op in parts),
            torch.cat([op.noise_std for op in parts]).index_select(0, _inverse(order, device)),
        )
        self.parts = list(parts)
        self.positions = [torch.tensor(list(g), dtype=torch.long, device=device) for g in positions]
        self.inverse = _inverse(order, device)

    def _merge(self, chunks: list[Tensor]) -> Tensor:
        """Per-group ``(B_g, ...)`` chunks → one ``(B, ...)`` tensor in batch order."""
        return torch.cat(chunks).index_select(0, self.inverse)

    def _apply(self, x: Tensor) -> Tensor:
        M = self.measurement_size
        chunks = [
            F.pad(op._apply(x.index_select(0, idx)), (0, M - op.measurement_size))
            for op, idx in zip(self.parts, self.positions)
        ]
        return self._merge(chunks)

    def _pinv(self, y: Tensor) -> Tensor:
        chunks = [
            op._pinv(y.index_select(0, idx)[..., : op.measurement_size])
            for op, idx in zip(self.parts, self.positions)
        ]
        return self._merge(chunks)

    def measurement_mask(self) -> Tensor:
        M = self.measurement_size
        return self._merge(
            [F.pad(op.measurement_mask(), (0, M - op.measurement_size)) for op in self.parts]
        )

    def _to(self, device: torch.device) -> GroupedOperator:
        moved = super()._to(device)
        moved.positions = [idx.to(device) for idx in self.positions]
        return moved


def _inverse(order: list[int], device: torch.device) -> Tensor:
    inv = torch.empty(len(order), dtype=torch.long)
    inv[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return inv.to(device)


def group_by(
    keys: Sequence[Hashable], build: Callable[[Hashable, list[int]], Operator]
) -> Operator:
    """Build one sub-batch per distinct key (``build(key, positions)``) and group them.

    A single group is returned as is (no padding, no gather).
    """
    groups: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key, []).append(position)
    if len(groups) == 1:
        ((key, positions),) = groups.items()
        return build(key, positions)
    return GroupedOperator([build(k, p) for k, p in groups.items()], list(groups.values()))
