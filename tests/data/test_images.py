"""The shared decoding rules: every mode, bit depth and format converted as documented."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from invfussion.data.images import ImageError, decode_image, parse_value_range


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb16_png(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one): ``pixels`` (H, W, 3) uint16."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def one_pixel(mode: str, value, **info) -> bytes:
    image = Image.new(mode, (1, 1), value)
    image.info.update(info)
    return encode(image, "TIFF" if mode in ("CMYK", "F", "I") else "PNG")


def palette_image(transparent: bool) -> bytes:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    return encode(image, transparency=1) if transparent else encode(image)


@pytest.mark.parametrize(
    ("data", "expected", "conversions"),
    [
        (one_pixel("L", 51), [0.2], ()),
        (one_pixel("1", 1), [1.0], ()),
        (one_pixel("LA", (200, 51)), [200 / 255 * 0.2], ("alpha",)),
        (one_pixel("RGB", (255, 51, 0)), [1.0, 0.2, 0.0], ()),
        (one_pixel("RGBA", (255, 102, 0, 51)), [0.2, 0.08, 0.0], ("alpha",)),
        (one_pixel("CMYK", (0, 255, 255, 0)), [1.0, 0.0, 0.0], ("CMYK",)),
        (one_pixel("I;16", 32768), [32768 / 65535], ()),
        (one_pixel("I", 1000), [1000 / 65535], ()),
        (one_pixel("F", 0.25), [0.25], ()),
        (rgb16_png(np.array([[[65535, 256, 0]]])), [1.0, 1 / 255, 0.0], ("16-bit→8-bit",)),
    ],
    ids=["L", "1", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "RGB;16"],
)
def test_each_mode_gives_the_documented_values(data, expected, conversions):
    image = decode_image(data)
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (1, 1, len(expected))
    np.testing.assert_allclose(image.pixels[0, 0], expected, atol=1e-6)
    assert image.conversions == conversions
    assert image.high_bit_depth == (Image.open(io.BytesIO(data)).mode in ("I;16", "I", "F"))


def test_palette_is_expanded_and_its_transparency_composited_on_black():
    opaque, transparent = decode_image(palette_image(False)), decode_image(palette_image(True))
    np.testing.assert_allclose(opaque.pixels[0], [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(transparent.pixels[0], [[1, 0, 0], [0, 0, 0]])
    assert opaque.conversions == ("palette",) and transparent.conversions == ("palette", "alpha")


def test_channel_conversions_repeat_grey_and_take_the_luma_of_colour():
    grey = decode_image(one_pixel("L", 51), channels=3)
    np.testing.assert_allclose(grey.pixels[0, 0], [0.2, 0.2, 0.2], atol=1e-7)
    assert grey.conversions == ("grey→RGB",)
    luma = decode_image(one_pixel("RGB", (255, 0, 255)), channels=1)
    np.testing.assert_allclose(luma.pixels[0, 0], [0.299 + 0.114], atol=1e-6)
    assert luma.conversions == ("colour→grey",) and "grayscale" in luma.notes()[0]
    cmyk = decode_image(one_pixel("CMYK", (0, 255, 255, 0)), channels=1)
    assert cmyk.conversions == ("CMYK", "colour→grey") and cmyk.notes()[0] == "converted CMYK to RGB"


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))  # top left, stored
    exif = image.getexif()
    exif[0x0112] = 6  # the camera was turned: show rotated 90° clockwise
    decoded = decode_image(encode(image, exif=exif))
    assert decoded.size == (2, 4) and decoded.conversions == ("EXIF",)
    assert decoded.pixels[0, 1, 0] == 1.0 and decoded.pixels.sum() == 3.0  # now top right


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "WEBP", "JPEG"])
def test_every_listed_format_decodes(fmt):
    pixels = np.full((8, 8, 3), (200, 100, 50), dtype=np.uint8)
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 100} if fmt == "JPEG" else {}
    decoded = decode_image(encode(Image.fromarray(pixels), fmt, **options))
    np.testing.assert_allclose(decoded.pixels, pixels / 255, atol=2 / 255 if fmt == "JPEG" else 1e-6)


def test_values_beyond_the_type_need_a_window():
    outside = one_pixel("F", 2.0)
    with pytest.raises(ImageError, match=r"span \[2, 2\].*--range") as error:
        decode_image(outside)
    assert error.value.reason == "values out of range"
    np.testing.assert_allclose(decode_image(outside, value_range=(0.0, 4.0)).pixels, [[[0.5]]])
    np.testing.assert_allclose(decode_image(one_pixel("I;16", 5000), value_range=(0, 4095)).pixels, [[[1.0]]])
    assert parse_value_range("-1000,3000") == (-1000.0, 3000.0)
    for bad in ("3000", "1,a", "5,5"):
        with pytest.raises(ValueError, match="--range"):
            parse_value_range(bad)


def test_unusable_files_raise_with_a_reason():
    png = one_pixel("RGB", (1, 2, 3))
    big = encode(Image.new("RGB", (64, 64)))
    cases = {b"": "empty", b"plain text": "not an image", big[: len(big) // 2]: "corrupt or truncated"}
    for data, reason in cases.items():
        with pytest.raises(ImageError) as error:
            decode_image(data)
        assert error.value.reason == reason
    with pytest.raises(ImageError, match="1×1, too large") as error:
        decode_image(png, max_pixels=0)
    assert error.value.reason == "too large"
