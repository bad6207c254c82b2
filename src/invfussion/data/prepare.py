"""Turn a folder of images into an EDM-style training zip (``invfussion prepare-data``).

Every image is decoded with the shared rules of :mod:`invfussion.data.images` (formats, modes,
bit depth, EXIF orientation), converted to one channel count, centre-cropped, resized and stored
as ``00000000.png``, ``00000001.png``, … in sorted source order: 8-bit grey or RGB, or 16-bit grey
where the source had more than 8 bits (such sources are grey: Pillow decodes 16-bit colour at 8
bits, and cannot write 16-bit colour PNGs, so in an RGB dataset they stay grey in the zip and the
loader repeats them to RGB). ``dataset.json`` records the channel count and, when every image lies
in one first-level subfolder (and there are at least two), the class labels.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..storage import replace_atomically
from .datasets import LABELS_FILE, labels_from_subfolders
from .images import (
    FORMATS,
    IMAGE_SUFFIXES,
    DecodedImage,
    ImageError,
    center_crop_resize,
    convert_channels,
    decode_image,
    has_colour,
)


@dataclass
class PrepareReport:
    """What :func:`prepare_data` did.

    Attributes:
        dest: the zip written.
        channels: the dataset's channel count; channels_reason: why (given, or inferred).
        written: images stored.
        converted: conversion kind (see :data:`invfussion.data.images.NOTES`, plus ``"resized"``)
            → number of images it was applied to.
        skipped: reason → number of source files left out.
    """

    dest: Path
    channels: int
    channels_reason: str
    written: int = 0
    converted: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        """One line: written, converted (by kind), skipped (by reason)."""

        def by_kind(counts: Counter) -> str:
            return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"

        return (
            f"wrote {self.written} images to {self.dest} with {self.channels} channel"
            f"{'s' if self.channels > 1 else ''} ({self.channels_reason}); "
            f"converted: {by_kind(self.converted)}; skipped: {by_kind(self.skipped)}"
        )


def encode_png(image: DecodedImage) -> bytes:
    """PNG bytes of ``image``: 8-bit grey or RGB, or 16-bit grey when ``image.high_bit_depth``
    (high-bit-depth images are grey, so their channel 0 holds all of them)."""
    if image.high_bit_depth:
        array = np.round(image.pixels[:, :, 0] * 65535.0).astype(np.uint16)
    else:
        array = np.round(image.pixels * 255.0).astype(np.uint8)
        array = array[:, :, 0] if image.channels == 1 else array
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def infer_channels(paths: list[Path]) -> tuple[int, str]:
    """3 if any readable file has colour, else 1, with the reason in words (headers only)."""
    coloured = next((path for path in paths if has_colour(path)), None)
    if coloured is None:
        return 1, "every image is grey; pass --channels 3 for RGB"
    return 3, f"{coloured.name} has colour; pass --channels 1 for grey"


def prepare_data(
    src: str | os.PathLike,
    dest_zip: str | os.PathLike,
    resolution: int,
    channels: int | None = None,
    value_range: tuple[float, float] | None = None,
    strict: bool = False,
    progress: bool = True,
) -> PrepareReport:
    """Write every image under ``src`` (recursive), converted, cropped and resized, to a PNG zip.

    Args:
        src: a folder of images (see :data:`invfussion.data.images.IMAGE_SUFFIXES`).
        dest_zip: the zip to write; it is written to ``<dest_zip>.partial`` and renamed at the
            end, so an interrupted or failed run leaves no half-written dataset (nor the partial).
        resolution: output side in pixels.
        channels: 1 or 3; ``None``: 3 if any source image has colour, else 1.
        value_range: ``(lo, hi)`` window in the sources' units (default: each type's full range).
        strict: raise ``ValueError`` on the first image that cannot be used instead of skipping it.

    Returns:
        The report (see :meth:`PrepareReport.summary`).
    """

    src, dest_zip = Path(src), Path(dest_zip)
    if not src.is_dir():
        raise FileNotFoundError(
            f"source folder {src} does not exist; pass a folder of {FORMATS} images."
        )
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"--channels must be 1 (grey) or 3 (RGB), got {channels}.")
    names = sorted(
        p.relative_to(src).as_posix()
        for p in src.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not names:
        raise FileNotFoundError(
            f"no {FORMATS} images found under {src}; point at a folder of images."
        )
    labels = labels_from_subfolders(names)
    report = PrepareReport(
        dest_zip, *((channels, "given") if channels else infer_channels([src / n for n in names]))
    )
    dest_zip.parent.mkdir(parents=True, exist_ok=True)
    partial = dest_zip.with_name(dest_zip.name + ".partial")
    written: list[list] = []
    try:
        with (
            zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive,
            tqdm(  # on a terminal only, and erased at the end: the report line sums it up
                names, desc=f"prepare-data ({report.channels} ch)", unit="img", leave=False,
                disable=None if progress else True,
            ) as bar,
        ):
            for name in bar:
                try:
                    decoded = decode_image((src / name).read_bytes(), value_range=value_range)
                    image = convert_channels(decoded, report.channels)
                except (ImageError, OSError) as error:
                    if strict:
                        raise ValueError(
                            f"{src / name}: {error}; fix or remove it, or drop --strict to skip it."
                        ) from None
                    report.skipped[getattr(error, "reason", "unreadable")] += 1
                    continue
                resized = ("resized",) if image.size != (resolution, resolution) else ()
                report.converted.update(image.conversions + resized)
                target = f"{len(written):08d}.png"
                archive.writestr(target, encode_png(center_crop_resize(image, resolution)))
                written.append([target, labels[name] if labels else -1])
            meta = {"labels": written if labels else None, "channels": report.channels}
            archive.writestr(LABELS_FILE, json.dumps(meta))
        replace_atomically(partial, dest_zip)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    report.written = len(written)
    return report

