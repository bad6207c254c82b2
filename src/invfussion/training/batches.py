"""What one process trains on at one step, drawn deterministically.

Step ``t`` of a run with global batch ``B`` trains on the global examples ``g = t·B + p`` for
positions ``p = 0..B-1``. Example ``g`` is dataset item ``perm_e[g mod N]`` with epoch
``e = g div N`` and ``perm_e`` a permutation seeded by ``(seed, e)``; its σ, its noise ε, its
augmentation, its degradation operator, its measurement noise and its label dropout each come from
a per-example stream of ``(seed, g)`` (:mod:`invfussion.seeding`). So the examples, and every
random number attached to them, depend on the configuration and the step alone — not on the batch
a rank holds, the number of processes, the device, or whether the run was resumed.

Within a batch, the examples are ordered so that each degradation family (and each motion-blur
stride) is one contiguous slice: the operator then works on views of its slices, without gathers,
scatters or padding (:func:`~invfussion.degradations.in_part_order`). The order moves whole
examples, never their random numbers.

``StepBatches`` is a map-style dataset over steps, so a ``DataLoader`` with worker processes
prepares the next batches (operators included) while the network trains.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import seeding
from ..seeding import uniform
from ..degradations.base import Operator
from ..degradations.grouped import in_part_order
from .losses import TrainingBatch


def dataset_order(seed: int, epoch: int, size: int) -> Tensor:
    """``(size,)`` the order in which epoch ``epoch`` visits the dataset."""
    return torch.randperm(size, generator=seeding.example_generator(seed, epoch, "data-order"))


def measure(op: Operator, images: Tensor, seed: int, indices: list[int]) -> Tensor:
    """``y = A x + σ_y ε: (B, M)`` with example ``b``'s ε from the stream of global index ``indices[b]``.

    (``Operator.measure(seed=...)`` keys its noise by position in the batch, which would differ
    between a rank's shard and the full batch.)
    """
    y = op.A(images)
    if not bool((op.noise_std > 0).any()):
        return y
    eps = seeding.randn(seed, indices, y.shape[1:], "measurement", y.device, y.dtype)
    eps = eps * op.measurement_mask().to(y.dtype)  # padded coordinates stay zero
    return y + op.noise_std.to(y.device, y.dtype)[:, None] * eps


class StepBatches(torch.utils.data.Dataset):
    """Item ``t``: this rank's :class:`TrainingBatch` for step ``t`` (on the CPU).

    Args:
        dataset: yields ``(image (C, H, W) in [-1, 1], label)``; label ``-1`` means unlabelled.
        seed: the run's seed.
        global_batch: ``B``, examples per step over all processes.
        positions: this rank's slice of ``0..B-1``.
        mixture: draws the degradation operators (``None``: unconditional training, no operator).
        num_classes: the network's class count (0: no class labels); dropped or missing labels
            become the null class ``num_classes``.
        label_dropout: probability of replacing an example's label by the null class.
        augment: ``(images, seed, indices) → (images, aug_labels)``, or ``None``.
    """

    def __init__(self, dataset, *, seed: int, global_batch: int, positions: slice, mixture=None,
                 num_classes: int = 0, label_dropout: float = 0.0, augment=None):
        self.dataset, self.seed, self.global_batch, self.positions = dataset, int(seed), int(global_batch), positions
        self.mixture, self.num_classes, self.label_dropout, self.augment = mixture, int(num_classes), float(label_dropout), augment
        self._orders: dict[int, Tensor] = {}
        self.image_shape = tuple(dataset[0][0].shape)

    def __len__(self) -> int:  # steps are unbounded; the sampler decides which ones are read
        return 2**62

    def global_indices(self, step: int) -> list[int]:
        """This rank's global example indices at ``step``."""
        return [step * self.global_batch + p for p in range(self.global_batch)[self.positions]]

    def _item(self, g: int) -> int:
        size = len(self.dataset)
        epoch = g // size
        if epoch not in self._orders:
            self._orders = {epoch: dataset_order(self.seed, epoch, size), **{e: o for e, o in self._orders.items() if e > epoch - 2}}
        return int(self._orders[epoch][g % size])

    def __getitem__(self, step: int) -> TrainingBatch:
        indices = self.global_indices(int(step))
        op = None
        if self.mixture is not None:
            # Families (and motion-blur strides) become contiguous slices, so the operator runs each
            # part on a view of its slice; every example keeps its own streams, whatever its position.
            op, order = in_part_order(self.mixture.sample(
                len(indices), self.image_shape, seed=self.seed, device="cpu", indices=indices))
            indices = [indices[i] for i in order]
        items = [self.dataset[self._item(g)] for g in indices]
        images = torch.stack([image for image, _ in items]).float()
        aug_labels = None
        if self.augment is not None:
            images, aug_labels = self.augment(images, self.seed, indices)
        class_labels = None
        if self.num_classes:
            labels = torch.tensor([int(label) for _, label in items], dtype=torch.long)
            dropped = uniform(self.seed, indices, "label-dropout") < self.label_dropout
            class_labels = torch.where(dropped | (labels < 0), self.num_classes, labels)
        return TrainingBatch(
            images=images,
            noise=seeding.randn(self.seed, indices, images.shape[1:], "noise"),
            sigma_normal=seeding.randn(self.seed, indices, (), "sigma"),
            op=op, y=None if op is None else measure(op, images, self.seed, indices),
            class_labels=class_labels, aug_labels=aug_labels,
            indices=torch.tensor(indices, dtype=torch.long),
            step=int(step),
            share_draw=None if op is None else uniform(self.seed, indices, "mmse-share"),
        )
