"""Turn a folder of images into an EDM-style training zip (``invfussion prepare-data``)."""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from .datasets import IMAGE_SUFFIXES, LABELS_FILE, labels_from_subfolders


def center_crop_resize(image: Image.Image, resolution: int) -> Image.Image:
    """Crop the largest centred square, then resize it to ``resolution``² (Lanczos)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((resolution, resolution), Image.Resampling.LANCZOS)


def prepare_data(
    src: str | os.PathLike, dest_zip: str | os.PathLike, resolution: int, progress: bool = True
) -> int:
    """Write every PNG/JPEG under ``src`` (recursive), centre-cropped and resized, to a PNG zip.

    Images are stored as ``00000000.png``, ``00000001.png``, … in sorted source order, in grey
    (``L``) if the source is grey and RGB otherwise. When every image lies in one first-level
    subfolder (and there are at least two), a ``dataset.json`` with those class labels is added.
    Unreadable images are skipped with a warning. The zip is written to a temporary name and
    renamed at the end, so an interrupted run leaves no half-written dataset.

    Returns:
        The number of images written.
    """
    src, dest_zip = Path(src), Path(dest_zip)
    if not src.is_dir():
        raise FileNotFoundError(
            f"source folder {src} does not exist; pass a folder of PNG/JPEG images."
        )
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}.")
    names = sorted(
        p.relative_to(src).as_posix()
        for p in src.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not names:
        raise FileNotFoundError(
            f"no PNG or JPEG images found under {src}; point at a folder of images."
        )
    labels = labels_from_subfolders(names)
    dest_zip.parent.mkdir(parents=True, exist_ok=True)
    partial = dest_zip.with_name(dest_zip.name + ".partial")
    written: list[list] = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in tqdm(names, desc="prepare-data", unit="img", disable=not progress):
            try:
                with Image.open(src / name) as image:
                    image.load()
                    mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                    out = center_crop_resize(image.convert(mode), resolution)
            except (OSError, ValueError, SyntaxError) as error:
                warnings.warn(f"skipping unreadable image {name}: {error}", stacklevel=2)
                continue
            target = f"{len(written):08d}.png"
            buffer = io.BytesIO()
            out.save(buffer, format="PNG")
            archive.writestr(target, buffer.getvalue())
            written.append([target, labels[name] if labels else -1])
        if labels:
            archive.writestr(LABELS_FILE, json.dumps({"labels": written}))
    os.replace(partial, dest_zip)
    return len(written)
