"""The shipped MNIST classifier whose penultimate layer gives the features of the offline FD.

``MnistClassifier`` is a small CNN on ``(N, 1, 32, 32)`` digits in ``[-1, 1]``: four 3×3
convolutions (16, 32, 64, 64 channels, GELU) with three 2×2 average poolings, then a
``1024 → 128`` linear layer + GELU (the *features*) and a ``128 → 10`` classifier head.
It is trained by ``benchmarks/train_classifier.py`` on the embedded training split only and
shipped as ``assets/mnist-classifier.safetensors`` with a JSON card holding its test accuracy.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

ASSET_NAME = "mnist-classifier"
ARCHITECTURE = "mnist-cnn-v1"
FEATURE_DIM = 128


class MnistClassifier(nn.Module):
    """``features``: ``(N, 1, 32, 32) → (N, 128)``; ``forward``: logits ``(N, 10)``."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.GELU
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), act(),
            nn.Conv2d(16, 32, 3, padding=1), act(), nn.AvgPool2d(2),  # 16×16
            nn.Conv2d(32, 64, 3, padding=1), act(), nn.AvgPool2d(2),  # 8×8
            nn.Conv2d(64, 64, 3, padding=1), act(), nn.AvgPool2d(2),  # 4×4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, FEATURE_DIM), act(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def asset_paths(path: str | Path | None = None) -> tuple[Path, Path]:
    """``(weights.safetensors, card.json)`` of ``path`` (a prefix) or of the shipped asset."""
    if path is None:
        base = Path(str(resources.files("invfussion").joinpath("assets", ASSET_NAME)))
    else:
        base = (
            Path(path).with_suffix("")
            if Path(path).suffix in (".safetensors", ".json")
            else Path(path)
        )
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


class MnistFeatures:
    """Feature extractor of the shipped MNIST classifier (a :class:`~.frechet.FeatureExtractor`).

    ``extractor(images)``: ``(N, 1, 32, 32)`` in ``[-1, 1]`` → ``(N, 128)`` float32 features (on
    the CPU), computed in batches of ``batch_size`` on ``device`` in full float32 (no TF32);
    ``extractor.classify(images)``: the predicted digits ``(N,)``.

    Args:
        path: weights prefix (``…/mnist-classifier`` or its ``.safetensors``); default: shipped.
    """

    name = "mnist-classifier"
    image_shape = (1, 32, 32)

    def __init__(
        self,
        path: str | Path | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 500,
    ):
        weights, card = asset_paths(path)
        if not weights.is_file():
            raise FileNotFoundError(
                f"MNIST classifier weights not found at {weights}; run "
                "`python benchmarks/train_classifier.py` to train and export them."
            )
        self.card = json.loads(card.read_text()) if card.is_file() else {}
        self.model = MnistClassifier()
        self.model.load_state_dict(load_file(str(weights)))
        self.model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @property
    def test_accuracy(self) -> float | None:
        """Accuracy on the 500 embedded test digits, as measured at export (from the JSON card)."""
        return self.card.get("test_accuracy")

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"MNIST features need images of shape (N, 1, 32, 32) in [-1, 1], got "
                f"{tuple(images.shape)}; pad or resize the digits to 32×32."
            )
        # full float32 convolutions (no TF32) so that FD values do not depend on the device
        with torch.backends.cudnn.flags(
            enabled=True, benchmark=False, deterministic=True, allow_tf32=False
        ):
            chunks = [
                self.model.features(chunk.to(self.device, torch.float32)).cpu()
                for chunk in images.split(self.batch_size)
            ]
        return torch.cat(chunks)

    @torch.no_grad()
    def classify(self, images: Tensor) -> Tensor:
        """The classifier's digit ``(N,)`` int64 (on the CPU) for ``images: (N, 1, 32, 32)`` in [-1, 1]."""
        return self.model.head(self(images).to(self.device)).argmax(-1).cpu()
