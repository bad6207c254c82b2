import pytest
import torch
from torch import nn

from invfussion.training.ema import EMA, ema_beta


def test_half_life_halves_the_old_weight():
    """Tracking a constant target for exactly one half-life leaves half of the initial gap."""
    net = nn.Linear(3, 2)
    ema = EMA(net, half_life_images=64, rampup_ratio=None)
    start = ema.net.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    for step in range(8):  # 8 steps × 8 images = 64 images = one half-life
        ema.update(net, batch_images=8, images_seen=8 * (step + 1))
    assert torch.allclose(ema.net.weight, start + 0.5, atol=1e-6)
    assert not ema.net.weight.requires_grad and not ema.net.training


def test_beta_formula_and_rampup():
    assert ema_beta(8, 1000, 64, None) == pytest.approx(0.5 ** (8 / 64))
    # early in training the half-life is capped at rampup_ratio × images seen
    assert ema_beta(8, 80, 1e6, 0.1) == pytest.approx(0.5 ** (8 / 8))
    assert ema_beta(8, 0, 1e6, 0.1) == 0.0  # first step copies the weights
    with pytest.raises(ValueError, match="half-life"):
        EMA(nn.Linear(1, 1), half_life_images=0)
