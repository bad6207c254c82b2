import json
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion import data


def _write_png(path, size=8, mode="RGB", value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return np.array(Image.open(path))


def test_folder_values_labels_from_subfolders(tmp_path):
    a = _write_png(tmp_path / "cat" / "a.png", value=1)
    _write_png(tmp_path / "dog" / "b.png", value=2)
    dataset = data.open_dataset(tmp_path)
    assert len(dataset) == 2 and dataset.image_shape == (3, 8, 8) and dataset.num_classes == 2
    image, label = dataset[0]
    assert label == 0 and dataset[1][1] == 1
    assert torch.allclose(image, torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1)


def test_corrupt_image_is_skipped_and_counted(tmp_path):
    _write_png(tmp_path / "0.png", value=0)
    (tmp_path / "1.png").write_bytes(b"not a png at all")
    truncated = (tmp_path / "0.png").read_bytes()
    (tmp_path / "2.png").write_bytes(truncated[: len(truncated) // 2])
    _write_png(tmp_path / "3.png", value=3)
    dataset = data.open_dataset(tmp_path)
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        items = [dataset[i][0] for i in range(len(dataset))]
    assert dataset.skipped == 2
    assert torch.equal(items[1], items[3]) and torch.equal(items[2], items[3])  # next readable one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset[1]  # already known bad: no second warning, no recount
    assert dataset.skipped == 2


def test_wrong_resolution_is_a_clear_error(tmp_path):
    _write_png(tmp_path / "a.png", size=8)
    _write_png(tmp_path / "b.png", size=16)
    with pytest.raises(ValueError, match="prepare-data"):
        data.open_dataset(tmp_path)[1]
    with pytest.raises(ValueError, match="expected 16×16"):
        data.open_dataset(tmp_path, resolution=16)[0]


def test_one_colour_image_makes_the_dataset_rgb(tmp_path):
    grey = _write_png(tmp_path / "a.png", mode="L")
    _write_png(tmp_path / "b.png", mode="RGB")
    dataset = data.open_dataset(tmp_path)
    assert dataset.channels == 3 and dataset[1][0].shape == (3, 8, 8)
    assert torch.allclose(dataset[0][0], torch.from_numpy(grey).float().expand(3, 8, 8) / 127.5 - 1)
    assert data.open_dataset(tmp_path, channels=1)[1][0].shape == (1, 8, 8)


def test_zip_round_trip_with_labels(tmp_path):
    src = tmp_path / "src"
    originals = [
        _write_png(src / cls / f"{i}.png", size=12, value=i)
        for i, cls in enumerate(["a", "b", "a"])
    ]
    dest = tmp_path / "out" / "data.zip"
    assert data.prepare_data(src, dest, resolution=12, progress=False).written == 3
    with zipfile.ZipFile(dest) as archive:
        labels = json.loads(archive.read("dataset.json"))["labels"]
    assert labels == [
        ["00000000.png", 0],
        ["00000001.png", 0],
        ["00000002.png", 1],
    ]  # a/0, a/2, b/1
    dataset = data.open_dataset(dest)
    assert len(dataset) == 3 and dataset.image_shape == (3, 12, 12)
    image, label = dataset[2]
    assert label == 1
    expected = torch.from_numpy(originals[1]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(image, expected)  # same size: crop + resize is the identity


def test_prepare_data_crops_and_resizes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (30, 20), (255, 0, 0)).save(src / "wide.jpg")
    dest = tmp_path / "d.zip"
    data.prepare_data(src, dest, resolution=8, progress=False)
    dataset = data.open_dataset(dest)
    image, label = dataset[0]
    assert image.shape == (3, 8, 8) and label == -1
    assert torch.allclose(image[0], torch.ones(8, 8), atol=0.02)


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.open_dataset(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no PNG, JPEG, TIFF, BMP or WebP"):
        data.open_dataset(tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a valid zip"):
        data.open_dataset(tmp_path / "bad.zip")
    with pytest.raises(ValueError, match="only to mnist"):
        data.open_dataset(tmp_path, split="test")


def test_zip_dataset_survives_pickling(tmp_path):
    import pickle

    _write_png(tmp_path / "src" / "a.png")
    data.prepare_data(tmp_path / "src", tmp_path / "d.zip", resolution=8, progress=False)
    dataset = data.open_dataset(tmp_path / "d.zip")
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[0][0], dataset[0][0])
