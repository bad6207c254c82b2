"""The web page's upload follows the shared image rules (bit depth, modes, formats), with notes."""

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion.serve.inputs import decode_upload


def upload(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_16_bit_upload_keeps_its_precision():
    ramp = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64
    x, notes = decode_upload(upload(Image.fromarray(ramp)), (1, 32, 32), invert=True)
    assert notes == ["inverted the image."]
    assert torch.allclose((1 - x[0, 0].double()) / 2, torch.from_numpy(ramp / 65535), atol=1e-7)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "WEBP"])
def test_transparent_colour_upload_is_composited_on_black(fmt):
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    image.putpixel((0, 0), (255, 255, 255, 0))
    if fmt == "BMP":  # BMP holds no alpha: a palette image instead
        image = image.convert("RGB").quantize(4)
    x, notes = decode_upload(upload(image, fmt), (3, 32, 32))
    expected = [1.0, -1.0, -1.0]
    assert torch.allclose(x[0, :, 5, 5], torch.tensor(expected), atol=1e-6)
    assert ("palette" if fmt == "BMP" else "transparent") in " ".join(notes)
    if fmt != "BMP":
        assert torch.equal(x[0, :, 0, 0], torch.full((3,), -1.0))


def test_float_uploads_out_of_range_or_nan_are_told_what_is_wrong_and_where_to_go():
    with pytest.raises(ValueError, match=r"span \[2, 2\].*`invfussion restore --input FILE --range MIN,MAX") as error:
        decode_upload(upload(Image.fromarray(np.full((32, 32), 2.0, dtype=np.float32)), "TIFF"), (1, 32, 32))
    assert "prepare-data" not in str(error.value)
    with pytest.raises(ValueError, match="holds NaN or infinite values; replace them") as error:
        decode_upload(upload(Image.fromarray(np.full((32, 32), np.nan, dtype=np.float32)), "TIFF"), (1, 32, 32))
    assert "choose a" not in str(error.value)
