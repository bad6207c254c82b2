"""Image grids: tiles in rows and columns, and labelled columns for restorations."""

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion.training.grid import LABEL_WIDTH, save_image_grid


def test_labels_are_written_above_their_own_columns(tmp_path):
    black = torch.full((2, 1, 32, 32), -1.0)
    path = save_image_grid([black, black, black], tmp_path / "g.png", labels=["reference", "", "mmse"])
    grid = np.asarray(Image.open(path))
    scale = LABEL_WIDTH // 32
    band = grid.shape[0] - (2 * 33 + 1) * scale
    assert band > 8 and grid.shape[1] == (3 * 33 + 1) * scale
    assert not grid[band:].any()  # the tiles, scaled up, stay black
    inked = [bool(grid[:band, (1 + k * 33) * scale : (33 + k * 33) * scale].any()) for k in range(3)]
    assert inked == [True, False, True]  # the empty label leaves its column's band blank
    with pytest.raises(ValueError, match="2 labels for 3 columns"):
        save_image_grid([black] * 3, tmp_path / "h.png", labels=["a", "b"])


def test_without_labels_the_grid_is_the_tiles_alone(tmp_path):
    path = save_image_grid([torch.zeros(2, 3, 8, 8)] * 2, tmp_path / "g.png")
    assert Image.open(path).size == (2 * 9 + 1, 2 * 9 + 1)
