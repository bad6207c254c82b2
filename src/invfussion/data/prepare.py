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
    decode_image,
    fit_image,
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
        skipped_files: ``(path relative to the source folder, why)`` of each file left out.
        skipped_list: the text file naming every skipped file (``<dest>.skipped.txt``), if any.
    """

    dest: Path
    channels: int
    channels_reason: str
    written: int = 0
    converted: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    skipped_list: Path | None = None

    SHOWN = 3
    """Skipped files named in the summary line (all are in :attr:`skipped_list`)."""

    def summary(self) -> str:
        """One line: written, converted (by kind), skipped (by reason, naming the first few files)."""

        def by_kind(counts: Counter) -> str:
            return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"

        named = ""
        if self.skipped_files:
            shown = ", ".join(name for name, _ in self.skipped_files[: self.SHOWN])
            more = f" and {len(self.skipped_files) - self.SHOWN} more" if len(self.skipped_files) > self.SHOWN else ""
            named = f" ({shown}{more}; all listed with reasons in {self.skipped_list})"
        return (
            f"wrote {self.written} images to {self.dest} with {self.channels} channel"
            f"{'s' if self.channels > 1 else ''} ({self.channels_reason}); "
            f"converted: {by_kind(self.converted)}; skipped: {by_kind(self.skipped)}{named}"
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
        strict: raise ``ValueError`` on the first image that cannot be used instead of skipping it;
            without it every skipped file is listed in ``<dest_zip>.skipped.txt``.

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
                    image = fit_image(decoded, report.channels, resolution)
                except (ImageError, OSError) as error:
                    if strict:
                        raise ValueError(
                            f"{src / name}: {error}; fix or remove it, or drop --strict to skip it."
                        ) from None
                    report.skipped[getattr(error, "reason", "unreadable")] += 1
                    report.skipped_files.append((name, str(error)))
                    continue
                report.converted.update(image.conversions)
                target = f"{len(written):08d}.png"
                archive.writestr(target, encode_png(image))
                written.append([target, labels[name] if labels else -1])
            meta = {"labels": written if labels else None, "channels": report.channels}
            archive.writestr(LABELS_FILE, json.dumps(meta))
        replace_atomically(partial, dest_zip)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    report.written = len(written)
    skipped_list = dest_zip.with_name(dest_zip.name + ".skipped.txt")
    if report.skipped_files:
        skipped_list.write_text("".join(f"{src / name}: {why}\n" for name, why in report.skipped_files), encoding="utf-8")
        report.skipped_list = skipped_list
    else:
        skipped_list.unlink(missing_ok=True)  # a list left by an earlier run of this zip
    return report

