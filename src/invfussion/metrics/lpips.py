"""LPIPS (Zhang et al. 2018) from weight files the user already has; nothing is downloaded.

``LPIPS.from_files(backbone, heads)`` reads two files with ``torch.load(weights_only=True)`` (tensors
only, no code runs):

- ``backbone``: a torchvision-format state dict of AlexNet (``alexnet-owt-7be5be79.pth``, LPIPS's
  default) or VGG-16 (``vgg16-397923af.pth``); only its ``features.*`` tensors are used;
- ``heads``: the ``lpips`` package's linear layers (``lpips/weights/v0.1/alex.pth`` or
  ``vgg.pth``: ``lin0.model.1.weight`` … ``lin4.model.1.weight``).

The distance (``lpips.LPIPS(net=..., version="0.1")`` with its defaults): the inputs in ``[-1, 1]``
are shifted and scaled per channel (``(x − shift)/scale``), five ReLU feature maps of the backbone
are normalised to unit length along channels (``f/(‖f‖ + 1e-10)``), their squared differences
weighted per channel by the non-negative heads (1×1 convolutions), averaged over space and summed
over the five layers. Grey images are repeated to three channels.

Dependencies. The reference implementation is the ``lpips`` package (it builds the backbones with
torchvision and, on first use, downloads torchvision's ImageNet weights); ``torchmetrics`` and
``piq`` wrap the same networks and also download. The core may not import torchvision, nor fetch
anything, so the two backbones are written here in plain torch (~40 lines) and read the same files:
the values agree with ``lpips.LPIPS`` to 1e-4 relative for both backbones, with the package's
own heads and a randomly initialised torchvision backbone written to a file
(``tests/integrations/test_lpips_reference.py``, run by CI beside the deepinv tests).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

# (features index, in, out, kernel, stride, padding) of every convolution; "P" a 3×2 max-pool
# (AlexNet) or 2×2 max-pool (VGG); taps: the features indices after whose ReLU LPIPS reads a map.
_ALEX = [(0, 3, 64, 11, 4, 2), "P", (3, 64, 192, 5, 1, 2), "P", (6, 192, 384, 3, 1, 1),
         (8, 384, 256, 3, 1, 1), (10, 256, 256, 3, 1, 1)]
_VGG = [(0, 3, 64), (2, 64, 64), "P", (5, 64, 128), (7, 128, 128), "P", (10, 128, 256),
        (12, 256, 256), (14, 256, 256), "P", (17, 256, 512), (19, 512, 512), (21, 512, 512), "P",
        (24, 512, 512), (26, 512, 512), (28, 512, 512)]
_LAYERS = {
    "alex": (_ALEX, {0, 3, 6, 8, 10}),
    "vgg": ([c if c == "P" else (*c, 3, 1, 1) for c in _VGG], {2, 7, 14, 21, 28}),
}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(torch.nn.Module):
    """The LPIPS distance with an AlexNet (``net="alex"``) or VGG-16 (``"vgg"``) backbone.

    Built with random weights (for tests); :meth:`from_files` loads the real ones. Call
    ``lpips(x, ref)`` with ``x, ref: (B, C, H, W)`` in ``[-1, 1]``, ``C ∈ {1, 3}`` → ``(B,)``
    float32 distances (0 for identical images, symmetric, non-negative).
    """

    def __init__(self, net: str = "alex", generator: torch.Generator | None = None):
        super().__init__()
        if net not in _LAYERS:
            raise ValueError(f"LPIPS net {net!r} is not known; use 'alex' or 'vgg'.")
        self.net = net
        layers, self.taps = _LAYERS[net]
        self.layers = [c if c == "P" else c[0] for c in layers]
        self.shapes = {c[0]: c[1:] for c in layers if c != "P"}
        self.weights = torch.nn.ParameterDict()
        widths = []
        for index, (c_in, c_out, k, _, _) in self.shapes.items():
            fan_in = c_in * k * k
            w = torch.randn(c_out, c_in, k, k, generator=generator) * (2 / fan_in) ** 0.5
            self.weights[f"features_{index}_weight"] = torch.nn.Parameter(w, requires_grad=False)
            self.weights[f"features_{index}_bias"] = torch.nn.Parameter(torch.zeros(c_out), requires_grad=False)
            if index in self.taps:
                widths.append(c_out)
        self.heads = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.rand(1, w, 1, 1, generator=generator) / w, requires_grad=False) for w in widths]
        )
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))

    @classmethod
    def from_files(cls, backbone: str | Path, heads: str | Path) -> LPIPS:
        """Load a torchvision AlexNet/VGG-16 state dict and the ``lpips`` linear heads (local files).

        The backbone kind is read from the heads (64 channels then 192: AlexNet; 64 then 64: VGG).
        Raises ``ValueError`` with one line when a file is missing or does not fit."""
        tensors = []
        for what, path in (("backbone", backbone), ("heads", heads)):
            if not Path(path).is_file():
                raise ValueError(
                    f"LPIPS {what} weights {path} do not exist; give local files (torchvision's "
                    "alexnet-owt-7be5be79.pth and lpips' weights/v0.1/alex.pth), nothing is downloaded."
                )
            try:
                tensors.append(torch.load(path, map_location="cpu", weights_only=True))
            except Exception as error:  # noqa: BLE001 - any unreadable file is one bad input
                raise ValueError(f"LPIPS {what} weights {path} cannot be read as a state dict ({error}).") from None
        state, head_state = tensors
        lins = [head_state.get(f"lin{k}.model.1.weight") for k in range(5)]
        if any(w is None for w in lins):
            raise ValueError(f"LPIPS heads {heads} lack lin0..lin4.model.1.weight; use lpips' weights/v0.1/<net>.pth.")
        net = "alex" if lins[1].shape[1] == 192 else "vgg"
        model = cls(net)
        try:
            for index in model.shapes:
                for part in ("weight", "bias"):
                    target = model.weights[f"features_{index}_{part}"]
                    source = state[f"features.{index}.{part}"]
                    if source.shape != target.shape:
                        raise KeyError(f"features.{index}.{part} has shape {tuple(source.shape)}")
                    target.data.copy_(source)
            for head, w in zip(model.heads, lins, strict=True):
                head.data.copy_(w)
        except KeyError as error:
            raise ValueError(
                f"LPIPS backbone {backbone} does not fit the {net} heads ({error}); give torchvision's {net} state dict."
            ) from None
        return model

    def features(self, x: Tensor) -> list[Tensor]:
        """The five normalised tapped maps of ``x: (B, 3, H, W)`` (already shifted and scaled)."""
        out = []
        for layer in self.layers:
            if layer == "P":
                x = F.max_pool2d(x, 3, 2) if self.net == "alex" else F.max_pool2d(x, 2, 2)
                continue
            _, _, _, stride, pad = self.shapes[layer]
            x = F.relu(F.conv2d(x, self.weights[f"features_{layer}_weight"], self.weights[f"features_{layer}_bias"], stride, pad))
            if layer in self.taps:
                out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.no_grad()
    def forward(self, x: Tensor, ref: Tensor) -> Tensor:
        if x.shape != ref.shape or x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"lpips needs two image batches of one shape (B, 1 or 3, H, W), got {tuple(x.shape)} and {tuple(ref.shape)}."
            )
        both = torch.cat([x, ref]).to(self.shift.dtype).expand(-1, 3, -1, -1)
        both = (both - self.shift) / self.scale
        total = torch.zeros(x.shape[0], dtype=both.dtype, device=both.device)
        for head, f in zip(self.heads, self.features(both), strict=True):
            a, b = f.chunk(2)
            total = total + F.conv2d((a - b).square(), head).mean((1, 2, 3))
        return total
