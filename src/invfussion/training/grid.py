"""A tiny image-grid writer for training previews and restorations (Pillow only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


LABEL_WIDTH = 96
"""Labelled grids scale their tiles up (nearest neighbour, an integer factor) to at least this many
pixels wide, so a label of about 15 characters fits above each column."""


def save_image_grid(columns: list[Tensor], path: str | Path, pad: int = 1, labels: list[str] | None = None) -> Path:
    """Write a PNG whose row ``b`` shows ``columns[0][b] | columns[1][b] | ...``.

    Args:
        columns: tensors ``(B, C, H, W)`` with values in [-1, 1] (clipped), ``C`` = 1 or 3,
            all of one shape.
        pad: pixels of black between tiles.
        labels: one name per column, written above it in Pillow's default font (the tiles are
            then scaled up to :data:`LABEL_WIDTH`; a name too long for its column is cut with "…").
    """
    if labels is not None and len(labels) != len(columns):
        raise ValueError(f"save_image_grid got {len(labels)} labels for {len(columns)} columns; pass one per column.")
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
    if labels is not None:
        image = _labelled(image, labels, width, pad)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _labelled(grid: Image.Image, labels: list[str], width: int, pad: int) -> Image.Image:
    """``grid`` (columns of tiles ``width`` wide, ``pad`` apart) scaled up to :data:`LABEL_WIDTH`
    per tile, under a band with each column's label centred over it."""
    scale = max(1, -(-LABEL_WIDTH // width))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(grid)
    band = int(draw.textbbox((0, 0), "Ag")[3]) + 6
    canvas = Image.new(grid.mode, (grid.width, grid.height + band), 0)
    canvas.paste(grid, (0, band))
    draw, column = ImageDraw.Draw(canvas), (width + pad) * scale
    white = 255 if canvas.mode == "L" else (255, 255, 255)
    for k, label in enumerate(labels):
        text = label
        while len(text) > 1 and draw.textlength(text, font=None) > column - 2 * pad * scale - 2:
            text = text[:-2] + "…"
        left = pad * scale + k * column + (width * scale - draw.textlength(text)) / 2
        draw.text((left, 3), text, fill=white)
    return canvas
