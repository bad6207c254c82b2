import pytest
import torch

from invfussion import data
from invfussion.data import load_mnist


def test_label_shape_and_zero_label_means_identity():
    images = load_mnist("test")[0][:6]
    out, labels = data.Augment(p=0.0, xflip=False)(images, seed=3)
    assert labels.shape == (6, data.Augment.label_dim) and torch.all(labels == 0)
    assert torch.equal(out, images)


def test_deterministic_per_example_whatever_the_batch():
    images = load_mnist("test")[0][:8]
    augment = data.Augment(p=0.8, xflip=True)
    out, labels = augment(images, seed=5, indices=range(100, 108))
    again, labels_again = augment(images, seed=5, indices=range(100, 108))
    assert torch.equal(out, again) and torch.equal(labels, labels_again)
    single, single_label = augment(images[3:4], seed=5, indices=[103])
    assert torch.allclose(single, out[3:4], atol=1e-6) and torch.equal(single_label, labels[3:4])
    other, _ = augment(images, seed=6, indices=range(100, 108))
    assert not torch.equal(other, out)


def test_flip_and_integer_translation_are_exact():
    images = torch.randn(64, 1, 16, 16)
    out, labels = data.Augment(p=0.0, xflip=True)(images, seed=0)
    flipped = labels[:, 0] == 1
    assert 0 < int(flipped.sum()) < 64
    assert torch.allclose(out[flipped], images[flipped].flip(-1), atol=1e-5)
    assert torch.allclose(out[~flipped], images[~flipped], atol=1e-5)


def test_translation_moves_pixels_by_the_label():
    augment = data.Augment(p=0.5)
    images = torch.randn(256, 1, 16, 16)
    out, labels = augment(images, seed=1)
    only_translation = (labels[:, 3:] == 0).all(1) & (labels[:, 1:3] != 0).any(1)
    assert only_translation.any()
    for b in torch.nonzero(only_translation).flatten().tolist():
        tx, ty = round(float(labels[b, 1]) * 16), round(float(labels[b, 2]) * 16)
        # Output pixel (r, c) shows input pixel (r - ty, c - tx); compare the interior.
        region = out[b, 0, max(ty, 0) : 16 + min(ty, 0), max(tx, 0) : 16 + min(tx, 0)]
        source = images[b, 0, max(-ty, 0) : 16 + min(-ty, 0), max(-tx, 0) : 16 + min(-tx, 0)]
        assert torch.allclose(region, source, atol=1e-5)


def test_probability_is_validated():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.Augment(p=1.5)
