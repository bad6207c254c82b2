"""One operator batch made of several sub-batches (mixed families, or mixed strides/factors).

``GroupedOperator`` holds sub-operators, each for some positions of the batch, and applies each
to its own examples in one call. When every part holds one contiguous slice of the batch, in
order (what :func:`in_part_order` makes, and what the training loader feeds), parts read views of
their slice and the results are concatenated: no gather, no scatter. Any other order (a user's
mixed batch) is gathered per part and scattered back by a permutation. Measurements are
zero-padded to the largest ``M`` only where a padded ``(B, M)`` tensor must come out (``A x``,
the measurement mask); :meth:`Operator.round_trip` and the inverse directions run every part on
its own unpadded measurements, the noise-aware ones with the group's ``λ`` of its examples (the
parts' own ``noise_std`` is not read: it may predate a later ``op.noise_std = ...``). No in-place
writes, so autograd flows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator, Transform


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
        self.parts = list(parts)
        self.sizes = [len(group) for group in positions]
        # Contiguous: part g holds the slice after parts 0..g-1, in order (then no permutation).
        self.contiguous = order == list(range(len(order)))
        self.positions = [torch.tensor(list(g), dtype=torch.long, device=device) for g in positions]
        self.inverse = _inverse(order, device)
        super().__init__(
            parts[0].image_shape,
            max(op.measurement_size for op in parts),
            self._merge([op.noise_std for op in parts]),
        )

    def _split(self, t: Tensor) -> list[Tensor]:
        """``(B, ...)`` → one ``(B_g, ...)`` chunk per part (views when contiguous)."""
        if self.contiguous:
            return list(t.split(self.sizes))
        return [t.index_select(0, idx) for idx in self.positions]

    def _merge(self, chunks: list[Tensor]) -> Tensor:
        """Per-part ``(B_g, ...)`` chunks → one ``(B, ...)`` tensor in batch order."""
        merged = torch.cat(chunks)
        return merged if self.contiguous else merged.index_select(0, self.inverse)

    def _apply(self, x: Tensor) -> Tensor:
        M = self.measurement_size
        return self._merge(
            [F.pad(op._apply(x_g), (0, M - op.measurement_size)) for op, x_g in zip(self.parts, self._split(x))]
        )

    def _pinv(self, y: Tensor) -> Tensor:
        return self._to_images_per_part(y, lambda op, t: op._pinv(t))

    def _adjoint(self, y: Tensor) -> Tensor:
        return self._to_images_per_part(y, lambda op, t: op._adjoint(t))

    def _pinv_noisy(self, y: Tensor, lam: Tensor) -> Tensor:
        return self._to_images_per_part(y, lambda op, t, lam_g: op._pinv_noisy(t, lam_g), lam)

    def _to_images_per_part(
        self, y: Tensor, method: Callable[..., Tensor], *per_example: Tensor
    ) -> Tensor:
        """``method(part, y_g, *per_example_g)`` on each part's unpadded ``y_g: (B_g, K, M_g)`` (and
        its slices of the ``(B, ...)`` tensors ``per_example``) → ``(B, K, C, H, W)``."""
        chunks = zip(self.parts, self._split(y), *map(self._split, per_example))
        return self._merge(
            [method(op, y_g[..., : op.measurement_size], *rest) for op, y_g, *rest in chunks]
        )

    def _round_trip(self, z: Tensor, y: Tensor, transform: Transform, lam: Tensor) -> Tensor:
        return self._merge(
            [
                op._round_trip(z_g, y_g[:, : op.measurement_size], transform, lam_g)
                for op, z_g, y_g, lam_g in zip(
                    self.parts, self._split(z), self._split(y), self._split(lam)
                )
            ]
        )

    def measurement_mask(self) -> Tensor:
        M = self.measurement_size
        return self._merge(
            [F.pad(op.measurement_mask(), (0, M - op.measurement_size)) for op in self.parts]
        )

    def with_noise_std(self, noise_std: Tensor) -> GroupedOperator:
        """As :meth:`Operator.with_noise_std`, and every part gets its examples' σ_y."""
        changed = super().with_noise_std(noise_std)
        changed.parts = [op.with_noise_std(sigma) for op, sigma in zip(self.parts, self._split(changed.noise_std))]
        return changed

    def _to(self, device: torch.device) -> GroupedOperator:
        moved = super()._to(device)
        moved.positions = [idx.to(device) for idx in self.positions]
        return moved


def _inverse(order: list[int], device: torch.device) -> Tensor:
    inv = torch.empty(len(order), dtype=torch.long)
    inv[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return inv.to(device)


def in_part_order(op: Operator) -> tuple[Operator, list[int]]:
    """The same operators with the batch reordered so that every part of ``op`` (and of its
    nested grouped parts) is one contiguous slice: returns ``(reordered, order)`` where example
    ``i`` of ``reordered`` is example ``order[i]`` of ``op``. Nothing is redrawn; the measurement
    noise is ``op``'s own (a part's ``noise_std`` may predate an ``op.noise_std = ...``, as
    ``from_spec`` sets it on the outer operator of a grouped family)."""
    if not isinstance(op, GroupedOperator):
        return op, list(range(op.batch_size))
    parts, order = [], []
    for part, idx in zip(op.parts, op.positions):
        part, inner = in_part_order(part)
        parts.append(part)
        order.extend(int(idx[j]) for j in inner)
    starts = [0]
    for part in parts:
        starts.append(starts[-1] + part.batch_size)
    reordered = GroupedOperator(parts, [range(a, b) for a, b in zip(starts, starts[1:])])
    return reordered.with_noise_std(op.noise_std[order]), order


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
