"""Validation during training: the EMA network on fixed held-out images × operators.

Figures (scalars for ``RUN/log.jsonl`` and TensorBoard; the progress bar shows a headline):

- ``val/loss@sigma=s`` (s in :data:`LOSS_SIGMAS`) and their mean ``val/loss``: the EDM-weighted
  denoising error ``λ(σ)·mean‖D(x + σε; σ, A, y) − x‖²`` with ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²`` —
  without the learned log-variance, so it is a plain number to compare across steps and runs.
  Diffusion models only; conditional ones see operators drawn from their training mixture.
- ``val/mmse_psnr/<spec>`` per family of the training mixture and their mean ``val/mmse_psnr``:
  the one-call MMSE estimate (:func:`sampling.mmse`) on :data:`MMSE_IMAGES` images (conditional
  models, every objective).
- ``val/posterior_psnr/<spec>`` and their mean ``val/posterior_psnr``: one posterior sample with
  :data:`POSTERIOR_STEPS` Heun steps on :data:`POSTERIOR_IMAGES` of those images (conditional
  diffusion models).
- ``val/seconds``: what the validation took.

Operators, measurement noise and sampler noise come from per-example streams of the fixed
:data:`SEED` (not the run's seed), so figures are comparable across steps and runs, and the
training's random state is never touched.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import seeding
from ..degradations import Mixture, Operator, from_spec
from ..degradations.grouped import group_by
from ..metrics import psnr

SEED = 0
MMSE_IMAGES = 50
POSTERIOR_IMAGES = 10
POSTERIOR_STEPS = 6
LOSS_SIGMAS = (0.2, 1.0, 5.0)
CHUNK = 64  # examples per network call


def spread(size: int, count: int) -> list[int]:
    """``min(count, size)`` indices spread evenly over ``range(size)``."""
    count = min(count, size)
    return [i * size // count for i in range(count)]


class Cases:
    """Every (family, image) pair of ``specs × rows``, family-major, as operator batches of at most
    :data:`CHUNK` examples (mixed families) with their measurements of ``images[rows]``.

    Example (family f, image r) draws its operator and measurement noise from ``(SEED, r)``, so a
    pair is the same in any subset of rows.
    """

    def __init__(self, specs: list[str], rows: list[int], images: Tensor):
        shape, device = tuple(images.shape[1:]), images.device
        self.specs, self.per_family = specs, len(rows)
        keys = [(spec, r) for spec in specs for r in rows]
        self.chunks: list[tuple[Operator, Tensor, list[int]]] = []
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            ids = [r for _, r in part]
            op = group_by([spec for spec, _ in part], lambda spec, pos, ids=ids: from_spec(
                spec, shape, seed=SEED, device=device, indices=[ids[p] for p in pos]))
            self.chunks.append((op, op.measure(images[ids], seed=SEED, indices=ids), ids))

    def psnr_per_family(
        self, restore: Callable[[Operator, Tensor, list[int]], Tensor], images: Tensor
    ) -> dict[str, float]:
        """Mean PSNR per family of ``restore(op, y, rows) → (B, C, H, W)`` against ``images[rows]``."""
        if not self.chunks:
            return {}
        scores = torch.cat([psnr(restore(op, y, ids), images[ids]) for op, y, ids in self.chunks])
        return dict(zip(self.specs, scores.reshape(len(self.specs), self.per_family).mean(1).tolist()))


class Validator:
    """Computes the validation figures of a network (module docstring) on fixed inputs.

    Args:
        images: ``(N, C, H, W)`` held-out images in ``[-1, 1]``, all used for the loss and the MMSE.
        labels: ``(N,)`` class labels the network takes (the null class where unlabelled), or ``None``.
        mixture: the training distribution over operators (``None``: an unconditional model).
        objective: the training objective; the loss and posterior figures need ``"diffusion"``.
        sigma_data: the network's σ_d (for the loss weight).
        mmse_sigma: the noise level of the one-call MMSE estimate.
    """

    def __init__(self, images: Tensor, labels: Tensor | None, mixture: Mixture | None, objective: str,
                 sigma_data: float, mmse_sigma: float):
        if images.shape[0] > CHUNK:
            raise ValueError(f"validation takes at most {CHUNK} images, got {images.shape[0]}.")
        self.images, self.labels = images, labels
        self.diffusion = objective == "diffusion"
        self.sigma_data, self.mmse_sigma = float(sigma_data), float(mmse_sigma)
        n = images.shape[0]
        specs = [] if mixture is None else list(dict.fromkeys(mixture.specs))
        self.mmse_cases = Cases(specs, list(range(n)), images)
        self.posterior_cases = Cases(specs, spread(n, POSTERIOR_IMAGES), images)
        self.loss_op = self.loss_y = None
        if mixture is not None:
            self.loss_op = mixture.sample(n, tuple(images.shape[1:]), seed=SEED, device=images.device)
            self.loss_y = self.loss_op.measure(images, seed=SEED)
        self.loss_noise = seeding.randn(SEED, n, images.shape[1:], "validation-loss", images.device)

    def _labels(self, rows: list[int]) -> Tensor | None:
        return None if self.labels is None else self.labels[rows]

    @torch.no_grad()
    def __call__(self, net: nn.Module) -> dict[str, float]:
        """The figures of ``net`` (in eval mode, e.g. the EMA network), named as in the module docstring."""
        from ..sampling import mmse, posterior

        start = time.perf_counter()
        figures: dict[str, float] = {}
        if self.diffusion:
            for sigma in LOSS_SIGMAS:
                sigmas = torch.full((self.images.shape[0],), sigma, device=self.images.device)
                denoised = net(self.images + sigma * self.loss_noise, sigmas, op=self.loss_op, y=self.loss_y,
                               class_labels=self.labels)
                weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
                figures[f"val/loss@sigma={sigma:g}"] = weight * float((denoised.float() - self.images).square().mean())
            figures["val/loss"] = sum(figures.values()) / len(LOSS_SIGMAS)
        kinds = {"mmse_psnr": (self.mmse_cases, lambda op, y, ids: mmse(
            net, op, y, self.mmse_sigma, seed=SEED, indices=ids, class_labels=self._labels(ids)))}
        if self.diffusion:
            kinds["posterior_psnr"] = (self.posterior_cases, lambda op, y, ids: posterior(
                net, op, y, steps=POSTERIOR_STEPS, class_labels=self._labels(ids), seed=SEED, indices=ids))
        for kind, (cases, restore) in kinds.items():
            per_family = cases.psnr_per_family(restore, self.images)
            figures.update({f"val/{kind}/{spec}": value for spec, value in per_family.items()})
            if per_family:
                figures[f"val/{kind}"] = sum(per_family.values()) / len(per_family)
        figures["val/seconds"] = time.perf_counter() - start
        return figures


def headline(figures: dict[str, float]) -> dict[str, str]:
    """The progress bar's share of ``figures``: the mean MMSE PSNR, else the validation loss."""
    if "val/mmse_psnr" in figures:
        return {"val_psnr": f"{figures['val/mmse_psnr']:.2f}"}
    return {"val_loss": f"{figures['val/loss']:.4f}"} if "val/loss" in figures else {}


def validation_set(data: str, val_data: str | None, image_shape: tuple[int, int, int]):
    """The held-out images: ``val_data`` if given, else the embedded MNIST validation split when
    training on ``mnist``; ``None`` (and one line on stderr saying why) for other data."""
    from ..data import open_dataset

    source = val_data if val_data is not None else (data if data == "mnist" else None)
    if source is None:
        print(f"validation skipped: {data} has no held-out split; pass --val-data PATH (images the model "
              "never trains on) to validate.", file=sys.stderr)
        return None
    dataset = open_dataset(source, image_shape[-1], split="validation" if source == "mnist" else "train",
                           channels=image_shape[0])
    if len(dataset) == 0:
        raise ValueError(f"--val-data {source} has no images; point it at a folder or zip with images.")
    return dataset


def build_validator(data: str, val_data: str | None, image_shape: tuple[int, int, int], num_classes: int,
                    mixture: Mixture | None, objective: str, sigma_data: float, mmse_sigma: float,
                    device: torch.device) -> Validator | None:
    """A :class:`Validator` on :func:`validation_set`'s images, or ``None`` where there are none."""
    dataset = validation_set(data, val_data, image_shape)
    if dataset is None:
        return None
    items = [dataset[i] for i in spread(len(dataset), MMSE_IMAGES)]
    images = torch.stack([image for image, _ in items]).float()
    labels = None
    if num_classes:
        raw = torch.tensor([int(label) for _, label in items], dtype=torch.long)
        labels = torch.where((raw < 0) | (raw >= num_classes), num_classes, raw)  # the null class
    return Validator(images.to(device), None if labels is None else labels.to(device), mixture, objective,
                     sigma_data, mmse_sigma)
