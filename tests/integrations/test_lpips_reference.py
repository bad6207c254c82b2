"""Our LPIPS against the ``lpips`` package (the reference implementation), offline.

``lpips.LPIPS(pnet_rand=True)`` builds its backbone with torchvision's random initialisation (no
download) and loads its own linear heads from the files it ships; the backbone is written out in
torchvision's layout (``features.<index>.weight``) and both files go through
``metrics.LPIPS.from_files``, the path a user takes with the real ImageNet backbones. CI runs this
in the deepinv environment, which has torchvision (``.ci/run``); the core never imports it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

lpips = pytest.importorskip("lpips")

from invfussion import metrics  # noqa: E402


def _backbone_file(reference, path: Path) -> Path:
    """``reference.net``'s slices (``slice<k>.<index>.<weight|bias>``) as a torchvision state dict."""
    state = {f"features.{key.split('.', 1)[1]}": value for key, value in reference.net.state_dict().items()}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("net, size", [("alex", 64), ("alex", 100), ("vgg", 64)])
def test_lpips_equals_the_lpips_package(tmp_path, net, size):
    torch.manual_seed(0)
    reference = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False).eval()
    heads = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    ours = metrics.LPIPS.from_files(_backbone_file(reference, tmp_path / "backbone.pth"), heads)
    assert ours.net == net
    x, y = torch.rand(2, 3, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected = reference(x, y).flatten()
    assert bool((expected > 0).all())
    torch.testing.assert_close(ours(x, y), expected, rtol=1e-4, atol=1e-6)
    grey = x[:, :1]  # ours repeats a grey channel three times; so must a caller of the package
    torch.testing.assert_close(ours(grey, y[:, :1]), reference(grey.expand(-1, 3, -1, -1), y[:, :1].expand(-1, 3, -1, -1)).flatten(),
                               rtol=1e-4, atol=1e-6)
