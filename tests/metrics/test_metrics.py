"""PSNR, Fréchet distance, consistency / C-FD and cost against analytic references."""

from __future__ import annotations

import math

import pytest
import torch

from invfussion import degradations as deg
from invfussion import metrics


class Flatten:
    """The identity feature extractor: pixels as features."""

    name = "pixels"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def random_images(n: int, seed: int, shape=(1, 8, 8)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g) * 2 - 1


# -- PSNR ----------------------------------------------------------------------------------------
def test_psnr_matches_the_8bit_formula_per_image():
    ref = torch.zeros(3, 1, 4, 4)
    x = ref.clone()
    x[0] += 0.1  # error 12.75 on [0, 255] at every pixel
    x[1, :, :2] += 0.2  # error 25.5 on half the pixels
    value = metrics.psnr(x, ref)
    assert value.shape == (3,)
    assert value[0].item() == pytest.approx(20 * math.log10(255 / 12.75))
    assert value[1].item() == pytest.approx(10 * math.log10(255**2 / (25.5**2 / 2)))
    assert value[2].item() == metrics.PSNR_MAX_DB  # identical images: capped, not inf


def test_psnr_clips_to_the_valid_range_and_rejects_mismatched_shapes():
    ref = -torch.ones(1, 1, 2, 2)
    assert metrics.psnr(ref - 5, ref).item() == metrics.PSNR_MAX_DB  # below -1 clips to black
    with pytest.raises(ValueError, match="same order"):
        metrics.psnr(ref, ref[:, :, :1])


# -- Fréchet distance ----------------------------------------------------------------------------
def test_fd_of_a_set_with_itself_is_zero_and_fd_is_symmetric():
    a, b = torch.randn(200, 6), 0.5 * torch.randn(300, 6) + 1.0
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert metrics.frechet_distance(a, b) == pytest.approx(
        metrics.frechet_distance(b, a), rel=1e-10
    )
    assert metrics.frechet_distance(a, b) > 1.0


def test_fd_matches_closed_forms():
    # commuting (diagonal) covariances: ‖Δμ‖² + Σ (√a_i − √b_i)²
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = 1 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2
    got = metrics.frechet_distance_from_statistics(mean_a, var_a.diag(), mean_b, var_b.diag())
    assert got == pytest.approx(expected, rel=1e-12)
    # non-commuting 2×2: tr √M = √(tr M + 2√det M) for M = Σ_a Σ_b with positive eigenvalues
    cov_a = torch.tensor([[2.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    cov_b = torch.tensor([[0.5, -0.3], [-0.3, 1.5]], dtype=torch.float64)
    product = cov_a @ cov_b
    trace_sqrt = math.sqrt(product.trace() + 2 * math.sqrt(torch.linalg.det(product)))
    expected = float(cov_a.trace() + cov_b.trace()) - 2 * trace_sqrt
    zeros = torch.zeros(2)
    assert metrics.frechet_distance_from_statistics(zeros, cov_a, zeros, cov_b) == pytest.approx(
        expected
    )


def test_fd_rejects_too_few_or_mismatched_features():
    with pytest.raises(ValueError, match="N ≥ 2"):
        metrics.frechet_distance(torch.randn(1, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="same feature extractor"):
        metrics.frechet_distance(torch.randn(5, 4), torch.randn(5, 3))


def test_image_fd_uses_the_extractor():
    a, b = random_images(50, 0), random_images(60, 1)
    extractor = Flatten()
    assert isinstance(extractor, metrics.FeatureExtractor)
    direct = metrics.frechet_distance(a.flatten(1), b.flatten(1))
    assert metrics.image_frechet_distance(a, b, extractor) == pytest.approx(direct)


# -- consistency, projection, C-FD --------------------------------------------------------------
@pytest.mark.parametrize(
    "spec", ["matrix:rows=16", "inpaint-patches:size=2,keep=0.3", "sr:factor=2"]
)
def test_projection_is_consistent_and_cfd_of_the_truth_is_zero(spec):
    op = deg.from_spec(spec, image_shape=(1, 8, 8), batch=6, seed=0)
    truth, guess = random_images(6, 2), random_images(6, 3)
    y = op.measure(truth)
    assert bool((metrics.consistency(op, truth, y) < 1e-8).all())
    assert bool((metrics.consistency(op, guess, y) > 1e-3).all())
    projected = metrics.projected(op, guess, y)
    assert bool(
        (metrics.consistency(op, projected, y) <= 1e-8 * metrics.consistency(op, guess, y)).all()
    )
    assert metrics.consistent_frechet_distance(op, truth, y, truth, Flatten()) == pytest.approx(
        0, abs=1e-6
    )


def test_consistency_is_the_squared_residual_norm():
    op = deg.from_spec("matrix:rows=10", image_shape=(1, 8, 8), batch=3, seed=1)
    x, y = random_images(3, 4), torch.randn(3, op.measurement_size) * op.measurement_mask()
    expected = (y.double() - op.A(x.double())).square().sum(1)
    torch.testing.assert_close(metrics.consistency(op, x, y), expected)


def test_projection_is_undefined_for_noisy_measurements():
    op = deg.from_spec("matrix:rows=16,noise=0.1", image_shape=(1, 8, 8), batch=2, seed=0)
    x = random_images(2, 0)
    with pytest.raises(ValueError, match="undefined for noisy"):
        metrics.projected(op, x, op.measure(x, seed=0))


# -- cost ----------------------------------------------------------------------------------------
def test_measure_cost_returns_the_result_and_per_image_time():
    result, cost = metrics.measure_cost(lambda: torch.ones(4), images=4, nfe=63)
    assert bool((result == 1).all())
    assert cost.nfe == 63 and cost.images == 4 and 0 <= cost.seconds_per_image < 1
    with pytest.raises(ValueError, match="images must be at least 1"):
        metrics.measure_cost(lambda: None, images=0, nfe=1)


# -- feature extractors --------------------------------------------------------------------------
def test_inception_without_local_weights_says_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.delenv(metrics.inception.WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="INVFUSSION_INCEPTION_WEIGHTS"):
        metrics.InceptionFeatures()
    monkeypatch.setenv(metrics.inception.WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        metrics.InceptionFeatures()


def test_mnist_features_missing_weights_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_classifier.py"):
        metrics.MnistFeatures(tmp_path / "nothing")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_on_cuda_match_the_cpu():
    op = deg.from_spec("motion-blur:stride=2", image_shape=(1, 8, 8), batch=4, seed=0)
    truth, guess = random_images(4, 0), random_images(4, 1)
    y = op.measure(truth)
    cuda_op = op.to("cuda")
    torch.testing.assert_close(
        metrics.psnr(guess.cuda(), truth.cuda()).cpu(), metrics.psnr(guess, truth)
    )
    torch.testing.assert_close(
        metrics.consistency(cuda_op, guess.cuda(), y.cuda()).cpu(),
        metrics.consistency(op, guess, y),
    )
    torch.testing.assert_close(
        metrics.projected(cuda_op, guess.cuda(), y.cuda()).cpu(),
        metrics.projected(op, guess, y),
        atol=1e-4,  # float32 FFTs differ by ~1e-7, amplified by the thresholded pseudo-inverse
        rtol=1e-4,
    )
