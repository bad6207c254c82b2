"""The shipped MNIST classifier: its recorded accuracy, its features, and FD on real digits."""

from __future__ import annotations

import pytest
import torch

from invfussion import metrics
from invfussion.data import load_mnist


@pytest.fixture(scope="module")
def extractor() -> metrics.MnistFeatures:
    return metrics.MnistFeatures()


@pytest.fixture(scope="module")
def test_digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist("test")


def test_recorded_accuracy_is_reproduced(extractor, test_digits):
    images, labels = test_digits
    logits = extractor.model(images)
    measured = float((logits.argmax(1) == labels).float().mean())
    assert extractor.test_accuracy is not None and extractor.test_accuracy >= 0.95
    assert measured == pytest.approx(extractor.test_accuracy, abs=2 / len(labels))


def test_features_are_per_image(extractor, test_digits):
    images = test_digits[0][:40]
    features = extractor(images)
    assert features.shape == (40, metrics.mnist_features.FEATURE_DIM) and bool(
        features.isfinite().all()
    )
    torch.testing.assert_close(extractor(images[7:9]), features[7:9], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="32×32"):
        extractor(images[:, :, :28, :28])


def test_fd_separates_real_digits_from_degraded_ones(extractor, test_digits):
    images = test_digits[0]
    train = load_mnist("train")[0][::8]  # 500 training digits, all classes
    g = torch.Generator().manual_seed(0)
    noisy = (images + 0.5 * torch.randn(images.shape, generator=g)).clamp(-1, 1)
    real_vs_real = metrics.image_frechet_distance(images, train, extractor)
    real_vs_noisy = metrics.image_frechet_distance(images, noisy, extractor)
    assert real_vs_noisy > 5 * real_vs_real


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_features_on_cuda_match_the_cpu(extractor, test_digits):
    images = test_digits[0][:64]
    on_cuda = metrics.MnistFeatures(device="cuda")(images.cuda())
    torch.testing.assert_close(on_cuda, extractor(images), atol=1e-4, rtol=1e-4)
