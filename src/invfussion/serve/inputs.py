"""What the web page sends, turned into library inputs: an image tensor and an operator batch.

Every function raises ``ValueError`` with one sentence naming the problem and the fix; the
server shows that sentence on the page (HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import torch
from torch import Tensor

from .. import degradations as deg
from ..data.images import FORMATS, ImageError, read_image
from ..degradations.spec import NOISE

MAX_UPLOAD_PIXELS = 4096 * 4096
MASK = "mask"
"""The degradation name of a mask painted on the page (anything else is a spec string)."""


def decode_upload(
    data: Any, image_shape: tuple[int, int, int], invert: bool = False
) -> tuple[Tensor, list[str]]:
    """An uploaded image file as the model's input, and a note for each conversion made.

    Args:
        data: the file's bytes in base64, optionally as a ``data:`` URL.
        image_shape: the model's ``(C, H, W)`` with ``H = W``; other sizes are centre-cropped to a
            square and resized, colour is converted to the model's channel count.
        invert: negate the image (dark ink on light paper → the MNIST models' light on dark).

    Returns:
        ``(1, C, H, W)`` float32 in [-1, 1] and the notes (empty if the file was used as is).
    """
    if not isinstance(data, str) or not data:
        raise ValueError(f"the upload is empty; choose a {FORMATS} file.")
    try:
        raw = base64.b64decode(data.rpartition(",")[2], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"the upload is not base64-encoded file data; choose a {FORMATS} file."
        ) from None
    try:
        x, notes = read_image(raw, image_shape, max_pixels=MAX_UPLOAD_PIXELS)
    except ImageError as error:
        if error.reason == "too large":
            raise ValueError(f"the image is {error}; upload one under 4096×4096.") from None
        if error.reason == "values out of range":
            raise ValueError(
                f"the uploaded image cannot be used: {error} — this page has none, so run "
                "`invfussion restore --input FILE --range MIN,MAX --degradation SPEC --out DIR` instead."
            ) from None
        if error.reason in ("not finite", "unsupported"):
            raise ValueError(f"the uploaded image cannot be used: {error}.") from None
        raise ValueError(
            f"the uploaded file is not an image that can be read ({error.reason}); "
            f"choose a {FORMATS} file."
        ) from None
    notes = [f"{note} (the model's size)." if note.startswith("resized") else f"{note}." for note in notes]
    x = x[None]
    if invert:
        x = -x
        notes.append("inverted the image.")
    elif image_shape[0] == 1 and float(x.mean()) > 0:
        notes.append(
            "the image is mostly light, while the MNIST models expect a light digit on black; "
            "tick “invert” if the restorations look wrong."
        )
    return x, notes


def noise_level(value: Any) -> float:
    """σ_y from the page (a number ≥ 0)."""
    return float(NOISE.parse("σ_y", str(value)))


def spec_operator(
    spec: Any,
    image_shape: tuple[int, int, int],
    noise: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> deg.Operator:
    """A batch of one operator from a spec string, with ``noise`` (σ_y > 0) added to the spec."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            "no degradation given; pick one or write a spec like 'motion-blur:stride=2'."
        )
    spec = spec.strip()
    if noise > 0:
        spec = f"{spec}{',' if ':' in spec else ':'}noise={noise!r}"
    return deg.from_spec(spec, image_shape=image_shape, batch=1, seed=seed, device=device)


def mask_operator(
    hidden: Any, image_shape: tuple[int, int, int], noise: float, device: torch.device | str = "cpu"
) -> deg.MaskOperator:
    """The in-painting operator of a painted mask.

    Args:
        hidden: ``H·W`` characters ``0``/``1`` in row-major order, ``1`` where the user painted
            over a pixel (it is not observed).
        image_shape: ``(C, H, W)``; noise: σ_y.
    """
    _, height, width = image_shape
    if not isinstance(hidden, str) or len(hidden) != height * width or set(hidden) - {"0", "1"}:
        raise ValueError(
            f"the painted mask must be {height * width} characters 0/1 ({height}×{width}); "
            "reload the page and paint again."
        )
    visible = torch.tensor([c == "0" for c in hidden]).reshape(1, height, width)
    if not bool(visible.any()):
        raise ValueError("the painted mask hides every pixel; leave some pixels unpainted.")
    op = deg.MaskOperator(image_shape, visible)
    op.noise_std = torch.full((1,), noise)
    return op.to(device)


def flag(payload: dict, key: str) -> bool:
    """``payload[key]`` as a bool (``False`` when absent)."""
    value = payload.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key.replace('_', ' ')} must be true or false, got {value!r}.")
    return value


AUTO = "auto"


def sampler_choice(payload: dict) -> str:
    """``payload["sampler"]``: ``"auto"`` (the default: ``consistency.default_sampler``'s rule),
    ``"posterior"`` or one of ``consistency.METHODS`` (e.g. ``"mmse+dps"``)."""
    from ..sampling.consistency import METHODS

    value = payload.get("sampler", AUTO)
    allowed = (AUTO, "posterior", *METHODS)
    if value not in allowed:
        raise ValueError(f"sampler must be one of {', '.join(allowed)}, got {value!r}.")
    return value


def bounded_int(payload: dict, key: str, default: int, low: int, high: int) -> int:
    """``payload[key]`` (or ``default``) as an integer in ``[low, high]``."""
    value = payload.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != int(value)
        or not low <= value <= high
    ):
        raise ValueError(
            f"{key.replace('_', ' ')} must be an integer from {low} to {high}, got {value!r}."
        )
    return int(value)


def class_request(payload: dict, device: torch.device | str = "cpu") -> tuple[Tensor | None, float | None]:
    """``payload["class_label"]`` as ``(1,)`` labels and ``payload["cfg"]`` as a float; each
    ``None`` when absent or null (the model's range is checked by ``sampling.check_guidance``)."""
    label, cfg = payload.get("class_label"), payload.get("cfg")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise ValueError(f"class label must be an integer or null, got {label!r}.")
    if cfg is not None and (isinstance(cfg, bool) or not isinstance(cfg, int | float)):
        raise ValueError(f"cfg must be a number or null, got {cfg!r}.")
    labels = None if label is None else torch.tensor([label], dtype=torch.long, device=device)
    return labels, None if cfg is None else float(cfg)
