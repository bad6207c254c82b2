"""A tiny image-grid writer for training previews (Pillow only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def save_image_grid(columns: list[Tensor], path: str | Path, pad: int = 1) -> Path:
    """Write a PNG whose row ``b`` shows ``columns[0][b] | columns[1][b] | ...``.

    Args:
        columns: tensors ``(B, C, H, W)`` with values in [-1, 1] (clipped), ``C`` = 1 or 3,
            all of one shape.
        pad: pixels of black between tiles.
    """
    if not columns or any(c.shape != columns[0].shape or c.dim() != 4 for c in columns):
        raise ValueError("save_image_grid needs one or more (B, C, H, W) tensors of equal shape; stack them consistently.")
    batch, channels, height, width = columns[0].shape
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels to be saved, got {channels}; select channels first.")
    tiles = torch.stack([c.detach().float().cpu() for c in columns], dim=1)  # (B, K, C, H, W)
    tiles = ((tiles.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n_cols = len(columns)
    canvas = torch.zeros(channels, batch * (height + pad) + pad, n_cols * (width + pad) + pad, dtype=torch.uint8)
    for b in range(batch):
        for k in range(n_cols):
            top, left = pad + b * (height + pad), pad + k * (width + pad)
            canvas[:, top : top + height, left : left + width] = tiles[b, k]
    array = canvas.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if channels == 1 else np.ascontiguousarray(array), "L" if channels == 1 else "RGB")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
