"""Decoding one image file into model pixels: the rules every entry point shares.

``train --data``, ``prepare-data``, ``restore --input``, ``evaluate --data`` and the web page's
upload all call :func:`decode_image` (the last three through :func:`read_image`, which also fits
the image to the model: channels converted, other sizes centre-cropped and resized, as
``prepare-data`` does), so an image means the same thing wherever it comes in:

- Formats: PNG, JPEG, TIFF, BMP and WebP (:data:`IMAGE_SUFFIXES`); the EXIF orientation is applied.
- Values: scaled from the full range of the file's own type — 0..255 for 8-bit, 0..65535 for
  16-bit (and for Pillow's 32-bit ``I`` mode, which holds 16-bit PNG/TIFF data), 0..1 for float —
  never rounded to 8 bits. A window ``value_range=(lo, hi)`` in the file's units replaces it (values
  outside it are clipped); without one, values beyond the type's range are an error, not a guess.
  Pillow reads 16-bit *colour* PNG/TIFF at 8 bits; such files are decoded at 8 bits and say so.
- Channels: grey files (``1``, ``L``, ``LA``, ``I;16``, ``I``, ``F``) have one channel, every
  other mode three. Palette images are expanded, transparency is composited on black (the
  colour times its alpha), CMYK and other colour spaces are converted to RGB as Pillow does.
  Grey → RGB repeats the channel; RGB → grey takes the ITU-R 601 luma
  ``0.299 R + 0.587 G + 0.114 B``.

Everything that changed the image is listed in :attr:`DecodedImage.conversions`, so callers can
report it. A file that cannot be used raises :class:`ImageError` with a short ``reason``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FORMATS = "PNG, JPEG, TIFF, BMP or WebP"
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_TYPE_RANGES = {"u1": (0.0, 255.0), "u2": (0.0, 65535.0), "i4": (0.0, 65535.0), "f4": (0.0, 1.0)}
"""Full range per sample type (NumPy's code, no byte order); Pillow's ``I`` holds 16-bit data."""
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_ORIENTATION = 0x0112  # the EXIF orientation tag

NOTES = {
    "palette": "expanded the palette image to RGB",
    "alpha": "composited the transparent parts on black",
    "grey→RGB": "converted the grayscale image to RGB",
    "colour→grey": "converted the colour image to grayscale",
    "EXIF": "applied the EXIF orientation",
    "16-bit→8-bit": "read the 16-bit colour (or grey + alpha) image at 8 bits, as Pillow does",
    "resized": "cropped its centred square and resized it",
}
"""What each conversion kind did, as a phrase for notes; other kinds name a colour space → RGB."""


class ImageError(ValueError):
    """An image file that cannot be used; ``reason`` is a short kind for reports (``"empty"``,
    ``"not an image"``, ``"corrupt or truncated"``, ``"too large"``, ``"values out of range"``,
    ``"not finite"``, ``"unsupported"``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """One decoded image.

    Attributes:
        pixels: ``(H, W, C)`` float32 in ``[0, 1]``, ``C`` ∈ {1, 3}.
        high_bit_depth: the file held more than 8 bits per sample (store it at 16). Only grey
            files can (Pillow decodes colour at 8 bits), so such pixels are grey, or grey repeated.
        conversions: the kinds of change made (keys of :data:`NOTES`, or a colour space's name).
    """

    pixels: np.ndarray
    high_bit_depth: bool
    conversions: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` as Pillow reports it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def tensor(self) -> Tensor:
        """``(C, H, W)`` float32 in ``[-1, 1]``."""
        return torch.from_numpy(self.pixels.transpose(2, 0, 1).copy()) * 2.0 - 1.0

    def notes(self) -> list[str]:
        """One phrase per conversion, e.g. ``"composited the transparent parts on black"``."""
        return [NOTES.get(kind, f"converted {kind} to RGB") for kind in self.conversions]


def open_image(source: bytes | Path, max_pixels: int | None = None) -> Image.Image:
    """A lazily opened Pillow image of a file's bytes or path (only the header is read).

    Raises:
        ImageError: empty, not an image, or (with ``max_pixels``) larger than that.
    """
    if (len(source) if isinstance(source, bytes) else source.stat().st_size) == 0:
        raise ImageError("empty", "the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except UnidentifiedImageError:
        raise ImageError("not an image", f"not a {FORMATS} image") from None
    except Image.DecompressionBombError as error:
        raise ImageError("too large", f"too large to read ({error})") from None
    except _DECODE_ERRORS as error:
        raise ImageError("corrupt or truncated", f"corrupt or truncated ({error})") from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError("too large", f"{width}×{height}, too large to read")
    return image


def _stored_layout(image: Image.Image) -> str:
    """The file's own sample layout (Pillow's raw mode, e.g. ``RGB;16B``) before decoding."""
    args = image.tile[0].args if image.tile else ""
    return args if isinstance(args, str) else str(args[0]) if args else ""


def has_colour(source: bytes | Path) -> bool:
    """Whether a file has colour channels, from its header; palette images count as colour.
    ``False`` for a file that cannot be opened (callers skip it when they decode it)."""
    try:
        with open_image(source) as image:
            return image.mode not in GREY_MODES and not _stored_layout(image).startswith("LA;")
    except (ImageError, OSError):
        return False


def convert_channels(image: DecodedImage, channels: int) -> DecodedImage:
    """``image`` with ``channels`` (1 or 3): grey repeated to RGB, RGB to its luma."""
    if image.channels == channels:
        return image
    if channels == 3:
        pixels, kind = np.repeat(image.pixels, 3, axis=2), "grey→RGB"
    else:
        pixels, kind = (image.pixels @ LUMA)[:, :, None], "colour→grey"
    return DecodedImage(pixels, image.high_bit_depth, (*image.conversions, kind))


def decode_image(
    data: bytes,
    channels: int | None = None,
    value_range: tuple[float, float] | None = None,
    max_pixels: int | None = None,
) -> DecodedImage:
    """Decode an image file's bytes with the rules of this module.

    Args:
        data: the whole file.
        channels: convert to 1 (grey) or 3 (RGB); ``None`` keeps the file's own (:func:`has_colour`).
        value_range: ``(lo, hi)`` in the file's units mapped to ``[0, 1]``; ``None``: the type's.
        max_pixels: refuse larger images before decoding them.

    Raises:
        ImageError: the file cannot be read or its values lie outside the type's range.
    """
    image = open_image(data, max_pixels)
    layout, conversions = _stored_layout(image), []
    try:
        image.load()
        if image.getexif().get(_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
            conversions.append("EXIF")
    except _DECODE_ERRORS as error:
        raise ImageError("corrupt or truncated", f"corrupt or truncated ({error})") from None
    if ";16" in layout and image.mode not in GREY_MODES:
        conversions.append("16-bit→8-bit")
        if layout.startswith("LA;"):  # Pillow widens 16-bit grey + alpha to RGBA
            image = image.convert("LA")
    if image.mode in ("P", "PA"):
        conversions.append("palette")
        alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in GREY_MODES + ("RGB", "RGBA"):
        conversions.append(image.mode)
        image = image.convert("RGB")
    array = np.asarray(image)
    array = array[:, :, None] if array.ndim == 2 else array
    if array.dtype.str[1:] not in _TYPE_RANGES:
        raise ImageError(
            "unsupported", f"its {image.mode} samples are not supported; save it as 8 or 16 bits"
        )
    lo, hi = value_range or _TYPE_RANGES[array.dtype.str[1:]]
    values = array.astype(np.float32)
    if image.mode in ("LA", "RGBA"):
        conversions.append("alpha")
        values = values[:, :, :-1] * (values[:, :, -1:] / 255.0)
    if not np.isfinite(values).all():
        raise ImageError("not finite", "it holds NaN or infinite values; replace them with numbers (e.g. 0) "
                         "and save it again")
    if value_range is None and (values.min() < lo or values.max() > hi):
        raise ImageError(
            "values out of range",
            f"its values span [{values.min():g}, {values.max():g}], beyond the [{lo:g}, {hi:g}] "
            "of its type; give its value window with --range MIN,MAX",
        )
    pixels = np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    decoded = DecodedImage(pixels, array.dtype != np.uint8, tuple(conversions))
    return decoded if channels is None else convert_channels(decoded, channels)


def center_crop_resize(image: DecodedImage, resolution: int) -> DecodedImage:
    """Crop the largest centred square, then resize it to ``resolution``² (Lanczos, in float32
    per channel so 16-bit data keeps its precision; the ringing is clipped to ``[0, 1]``)."""
    height, width, channels = image.pixels.shape
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    square = image.pixels[top : top + side, left : left + side]
    if side != resolution:
        square = np.stack(
            [
                np.asarray(
                    Image.fromarray(np.ascontiguousarray(square[:, :, c])).resize(
                        (resolution, resolution), Image.Resampling.LANCZOS
                    )
                )
                for c in range(channels)
            ],
            axis=2,
        ).clip(0.0, 1.0)
    return DecodedImage(square, image.high_bit_depth, image.conversions)


def fit_image(image: DecodedImage, channels: int, resolution: int) -> DecodedImage:
    """``image`` converted to ``channels`` and, when it is not ``resolution``² already,
    centre-cropped and resized to it (conversion ``"resized"``)."""
    image = convert_channels(image, channels)
    if image.size == (resolution, resolution):
        return image
    resized = center_crop_resize(image, resolution)
    return DecodedImage(resized.pixels, resized.high_bit_depth, (*image.conversions, "resized"))


def read_image(
    data: bytes,
    image_shape: tuple[int, int, int],
    value_range: tuple[float, float] | None = None,
    max_pixels: int | None = None,
) -> tuple[Tensor, list[str]]:
    """One image file as a model's input: the path ``restore --input``, ``evaluate --data`` and the
    web page's upload share with ``prepare-data`` (:func:`decode_image`, then :func:`fit_image`).

    Args:
        data: the whole file; image_shape: the model's ``(C, H, W)`` with ``H = W``.
        value_range, max_pixels: as for :func:`decode_image`.

    Returns:
        ``(C, H, W)`` float32 in [-1, 1] and one note per conversion made, e.g. ``"resized the
        30×32 image to 32×32 after cropping its centred square"``.

    Raises:
        ImageError: as :func:`decode_image`.
    """
    decoded = decode_image(data, value_range=value_range, max_pixels=max_pixels)
    image = fit_image(decoded, image_shape[0], image_shape[1])
    notes = [note for kind, note in zip(image.conversions, image.notes()) if kind != "resized"]
    if "resized" in image.conversions:
        (width, height), side = decoded.size, image_shape[1]
        crop = " after cropping its centred square" if width != height else ""
        notes.append(f"resized the {width}×{height} image to {side}×{side}{crop}")
    return image.tensor(), notes


def parse_value_range(text: str) -> tuple[float, float]:
    """``"MIN,MAX"`` (e.g. ``"-1000,3000"``) as a window ``(lo, hi)`` with ``lo < hi``."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--range must read MIN,MAX (e.g. 0,4095), got {text!r}.") from None
    if not lo < hi:
        raise ValueError(f"--range MIN,MAX needs MIN < MAX, got {text!r}.")
    return lo, hi
