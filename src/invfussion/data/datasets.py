"""Image datasets: a folder of images, an EDM-style zip of PNGs, and the embedded MNIST subset.

Every dataset yields ``(image, label)`` with ``image: (C, H, W)`` float32 in ``[-1, 1]`` and
``label`` an int (``-1`` when the dataset has no labels); it works with ``torch.utils.data``.

Decoding follows :mod:`invfussion.data.images` (formats, bit depth, modes, EXIF orientation),
as everywhere else an image enters.

Unreadable images. A file that fails to decode is skipped: the dataset warns once per file,
counts it in ``dataset.skipped`` (distinct files, counted in the process that read them) and
returns the next readable image in index order instead (wrapping around), so an epoch never
crashes on one bad file and the substitute for index ``i`` is the same on every run.

Shape rules. Every image is converted to one channel count: ``channels`` if given, else the
``"channels"`` entry of the ``dataset.json`` (written by ``prepare-data``), else 3 if any image
has colour and 1 otherwise (a scan of the file headers). A ``resolution`` (default: the first
image's size) must match every image exactly: a mismatch raises ``ValueError`` pointing at
``invfussion prepare-data``, which crops and resizes.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from .images import (
    FORMATS,
    IMAGE_SUFFIXES,
    DecodedImage,
    ImageError,
    convert_channels,
    decode_image,
    has_colour,
    read_image,
)
from .mnist import load_mnist

LABELS_FILE = "dataset.json"


def labels_from_subfolders(relative_paths: list[str]) -> dict[str, int] | None:
    """Class labels from top-level subfolder names (sorted, numbered from 0).

    Returns ``None`` unless every image lies directly in one first-level subfolder and there are
    at least two such subfolders.
    """
    parts = [Path(p).parts for p in relative_paths]
    if not parts or any(len(p) != 2 for p in parts):
        return None
    classes = sorted({p[0] for p in parts})
    if len(classes) < 2:
        return None
    index = {name: i for i, name in enumerate(classes)}
    return {path: index[p[0]] for path, p in zip(relative_paths, parts)}


def read_dataset_json(text: str, source: str) -> tuple[dict[str, int], int | None]:
    """Parse EDM's ``{"labels": [[filename, label], ...]}`` (``"labels": null`` means none) and the
    ``"channels"`` (1 or 3) that ``prepare-data`` adds; returns ``(labels, channels or None)``."""
    try:
        record = json.loads(text)
        entries, channels = record.get("labels") or [], record.get("channels")
        if channels not in (None, 1, 3):
            raise ValueError(f'"channels" must be 1 or 3, got {channels!r}')
        return {str(name).replace("\\", "/"): int(label) for name, label in entries}, channels
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{source} is not a valid dataset.json ({error}); write "
            '{"labels": [["file.png", 0], ...]} or delete it.'
        ) from None


class ImageDataset(torch.utils.data.Dataset):
    """Base for file-backed datasets: subclasses list ``names`` and implement ``_read_bytes``."""

    def __init__(
        self,
        names: list[str],
        labels: dict[str, int] | None,
        resolution: int | None,
        channels: int | None,
        source: str,
    ):
        if not names:
            raise FileNotFoundError(
                f"no {FORMATS} images found in {source}; point at a folder or zip of images."
            )
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}.")
        self.names = names
        self.source = source
        self.labels = [labels.get(name, -1) for name in names] if labels else [-1] * len(names)
        self.num_classes = max(self.labels) + 1
        self.skipped = 0
        self._bad: set[int] = set()
        first = self._first_readable()
        self.channels = channels or self._scan_channels()
        self.resolution = resolution or first.size[0]
        self.image_shape = (self.channels, self.resolution, self.resolution)

    def _read_bytes(self, index: int) -> bytes:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        for offset in range(len(self)):
            i = (int(index) + offset) % len(self)
            image = self._decode(i)
            if image is not None:
                return self._to_tensor(image, i), self.labels[i]
        raise ValueError(
            f"none of the {len(self)} images in {self.source} can be read; check the files."
        )

    def _scan_channels(self) -> int:
        """3 if any readable image has colour (from the headers), else 1."""
        for i in range(len(self)):
            try:
                if i not in self._bad and has_colour(self._read_bytes(i)):
                    return 3
            except (OSError, zipfile.BadZipFile):
                continue  # unreadable: skipped with a warning when it is decoded
        return 1

    def _first_readable(self) -> DecodedImage:
        for i in range(len(self)):
            image = self._decode(i)
            if image is not None:
                return image
        raise ValueError(
            f"none of the {len(self)} images in {self.source} can be read; check the files."
        )

    def _decode(self, index: int) -> DecodedImage | None:
        if index in self._bad:
            return None
        try:
            return decode_image(self._read_bytes(index))
        except (ImageError, OSError, zipfile.BadZipFile) as error:
            self._bad.add(index)
            self.skipped += 1
            warnings.warn(
                f"skipping unreadable image {self.names[index]} in {self.source}: {error}",
                stacklevel=3,
            )
            return None

    def read(self, index: int, image_shape: tuple[int, int, int]) -> tuple[Tensor, list[str]]:
        """Image ``index`` as ``(C, H, W)`` for a model of ``image_shape`` and one note per
        conversion: the path of ``restore --input`` (:func:`~invfussion.data.images.read_image`:
        channels converted, other sizes centre-cropped and resized). Raises ``ImageError``."""
        return read_image(self._read_bytes(index), image_shape)

    def _to_tensor(self, image: DecodedImage, index: int) -> Tensor:
        if image.size != (self.resolution, self.resolution):
            raise ValueError(
                f"image {self.names[index]} in {self.source} is {image.size[0]}×{image.size[1]}, "
                f"expected {self.resolution}×{self.resolution}; run `invfussion prepare-data` to crop and resize."
            )
        return convert_channels(image, self.channels).tensor()


class ImageFolderDataset(ImageDataset):
    """All image files under ``root`` (recursive, sorted by relative path; see ``IMAGE_SUFFIXES``).

    Labels: ``root/dataset.json`` if present, else the first-level subfolder names when every
    image lies in one (see :func:`labels_from_subfolders`), else ``-1``.
    """

    def __init__(
        self, root: str | os.PathLike, resolution: int | None = None, channels: int | None = None
    ):
        root = Path(root)
        names = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        labels_file = root / LABELS_FILE
        labels, stored_channels = (
            read_dataset_json(labels_file.read_text(), str(labels_file))
            if labels_file.is_file()
            else (labels_from_subfolders(names), None)
        )
        self.root = root
        super().__init__(names, labels, resolution, channels or stored_channels, str(root))

    def _read_bytes(self, index: int) -> bytes:
        return (self.root / self.names[index]).read_bytes()


class ZipDataset(ImageDataset):
    """An EDM-style zip of images with an optional ``dataset.json`` at its root.

    The zip is reopened lazily in each process, so the dataset is safe to use from
    ``DataLoader`` workers.
    """

    def __init__(
        self, path: str | os.PathLike, resolution: int | None = None, channels: int | None = None
    ):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        try:
            members = self._archive().namelist()
        except zipfile.BadZipFile:
            raise ValueError(
                f"{self.path} is not a valid zip file; rebuild it with `invfussion prepare-data`."
            ) from None
        names = sorted(n for n in members if Path(n).suffix.lower() in IMAGE_SUFFIXES)
        labels, stored_channels = (
            read_dataset_json(
                self._archive().read(LABELS_FILE).decode(), f"{self.path}/{LABELS_FILE}"
            )
            if LABELS_FILE in members
            else (None, None)
        )
        super().__init__(names, labels, resolution, channels or stored_channels, str(self.path))

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def _read_bytes(self, index: int) -> bytes:
        return self._archive().read(self.names[index])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None, "_zip_pid": -1}


class MNISTDataset(torch.utils.data.Dataset):
    """The embedded MNIST subset (see :func:`invfussion.data.load_mnist`); labels are digits."""

    def __init__(self, split: str = "train"):
        self.images, labels = load_mnist(split)
        self.labels = labels.tolist()
        self.split = split
        self.skipped = 0
        self.num_classes = 10
        self.channels, self.resolution = 1, 32
        self.image_shape = (1, 32, 32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], self.labels[index]


def open_dataset(
    source: str | os.PathLike,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
) -> torch.utils.data.Dataset:
    """A dataset from ``"mnist"`` (the embedded subset), a ``.zip`` file or an image folder.

    Args:
        source: ``"mnist"``, a zip path, or a directory.
        resolution: required image size (square); ``None`` takes the first image's size.
        split: ``"train"``, ``"validation"`` or ``"test"`` for MNIST; a zip or folder is a single split, so only the
            default ``"train"`` is accepted for paths.
        channels: force 1 (grey) or 3 (RGB); ``None`` infers it from the first image.
    """
    if str(source) == "mnist":
        if resolution not in (None, 32):
            raise ValueError(
                f"the embedded MNIST is 32×32, got resolution={resolution}; drop --resolution or use 32."
            )
        if channels not in (None, 1):
            raise ValueError(f"the embedded MNIST is greyscale, got channels={channels}; use 1.")
        return MNISTDataset(split)
    if split != "train":
        raise ValueError(
            f"split={split!r} applies only to mnist; a folder or zip is one split, so pass the one you mean."
        )
    path = Path(source)
    if path.is_dir():
        return ImageFolderDataset(path, resolution, channels)
    if path.is_file():
        return ZipDataset(path, resolution, channels)
    raise FileNotFoundError(
        f"dataset {source} does not exist; pass `mnist`, a folder of images or a zip."
    )
