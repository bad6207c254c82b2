"""SSIM against scikit-image (a hand-computed case when it is absent) and LPIPS's properties with
random weights (against the ``lpips`` package: ``tests/integrations/test_lpips_reference.py``)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from invfussion import metrics


def fixed_images(shape=(3, 3, 32, 24), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    smooth = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # structured, correlated with x
    return x, (0.7 * smooth + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(-1, 1)


@pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None,
    reason="scikit-image is not installed (pip install scikit-image): it is the SSIM reference",
)
def test_ssim_equals_scikit_image():
    from skimage.metrics import structural_similarity

    x, ref = fixed_images()
    ours = metrics.ssim(x, ref)
    assert ours.shape == (3,) and ours.dtype == torch.float64
    for b in range(3):
        expected = structural_similarity(
            ((x[b] + 1) / 2).numpy(), ((ref[b] + 1) / 2).numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0, channel_axis=0,
        )
        assert ours[b].item() == pytest.approx(expected, abs=1e-10)


def test_ssim_hand_computed_cases():
    """Identical images give 1; constant images a and b give the luminance term alone,
    (2ab + C1)/(a² + b² + C1) on [0, 1]; SSIM is symmetric and below 1 for different images."""
    x, ref = fixed_images((2, 1, 16, 16))
    torch.testing.assert_close(metrics.ssim(x, x), torch.ones(2, dtype=torch.float64))
    a, b = 0.2, 0.6  # on [0, 1]
    f64 = torch.float64
    flat = metrics.ssim(torch.full((1, 1, 12, 12), 2 * a - 1, dtype=f64), torch.full((1, 1, 12, 12), 2 * b - 1, dtype=f64))
    c1 = 0.01**2
    assert flat.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-12)
    torch.testing.assert_close(metrics.ssim(x, ref), metrics.ssim(ref, x))
    assert bool((metrics.ssim(x, ref) < 1).all())
    with pytest.raises(ValueError, match="at least 11×11 pixels"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("net, size", [("alex", 64), ("vgg", 32)])
def test_lpips_properties_with_random_weights(net, size):
    model = metrics.LPIPS(net, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, size, size, generator=g) * 2 - 1
    y = torch.rand(3, 3, size, size, generator=g) * 2 - 1
    d = model(x, y)
    assert d.shape == (3,) and bool((d > 0).all())
    torch.testing.assert_close(model(y, x), d)
    assert model(x, x).abs().max().item() < 1e-6
    assert model(x[:, :1], y[:, :1]).shape == (3,)  # grey images are repeated to three channels
    near = model(x, (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1))
    assert bool((near < d).all())  # a small perturbation is closer than an unrelated image


def test_lpips_files_round_trip_and_clear_errors(tmp_path):
    """The random model saved in the two file formats loads back to the same distances; missing or
    mismatched files give one line."""
    model = metrics.LPIPS("alex", generator=torch.Generator().manual_seed(0))
    backbone = {f"features.{i}.{p}": model.weights[f"features_{i}_{p}"].data for i in model.shapes for p in ("weight", "bias")}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision's extra keys are ignored
    heads = {f"lin{k}.model.1.weight": h.data for k, h in enumerate(model.heads)}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    loaded = metrics.LPIPS.from_files(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    x, y = torch.rand(2, 2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(loaded(x, y), model(x, y))
    with pytest.raises(ValueError, match="do not exist; give local files") as info:
        metrics.LPIPS.from_files(tmp_path / "none.pth", tmp_path / "alex.pth")
    assert "\n" not in str(info.value)
    vgg_heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(vgg_heads, tmp_path / "vgg.pth")
    with pytest.raises(ValueError, match="does not fit the vgg heads"):
        metrics.LPIPS.from_files(tmp_path / "alexnet.pth", tmp_path / "vgg.pth")
