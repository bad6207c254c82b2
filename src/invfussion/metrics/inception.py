"""Inception-v3 features for FID through an optional backend, from weights present locally.

The backend is ``torch-fidelity`` (``pip install torch-fidelity``; it needs no torchvision) with
its ``inception-v3-compat`` network — the TensorFlow FID Inception ported to PyTorch — loaded from
a weights file on disk: pass ``weights=PATH`` or set ``INVFUSSION_INCEPTION_WEIGHTS=PATH``
(torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``). Nothing is ever downloaded:
without the package or the file, construction raises an error that says what to install or
where to put the weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

WEIGHTS_ENV = "INVFUSSION_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


class InceptionFeatures:
    """2048-d Inception-v3 pool features (a :class:`~.frechet.FeatureExtractor`) for FID.

    ``extractor(images)``: ``(N, C, H, W)`` in ``[-1, 1]`` with ``C`` ∈ {1, 3} (grey images are
    repeated to RGB) → ``(N, 2048)``; images are quantised to 8 bits and resized to 299×299 by
    the backend, as in the reference FID.
    """

    name = "inception-v3"

    def __init__(
        self,
        weights: str | Path | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 64,
    ):
        path = weights if weights is not None else os.environ.get(WEIGHTS_ENV)
        if path is None or not Path(path).is_file():
            where = f"{path} does not exist" if path is not None else "no weights were given"
            raise FileNotFoundError(
                f"Inception FID needs its weights on disk and {where}; place torch-fidelity's "
                f"{WEIGHTS_FILE} locally and pass weights=PATH or set {WEIGHTS_ENV}=PATH "
                "(nothing is downloaded)."
            )
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise ImportError(
                "Inception FID uses the optional torch-fidelity backend; install it with "
                "`pip install torch-fidelity` (the offline MNIST FD needs nothing extra)."
            ) from err
        self.model = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        )
        self.model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                "Inception features need images (N, 1 or 3, H, W) in [-1, 1], got "
                f"{tuple(images.shape)}; "
                "convert the images to grey or RGB."
            )
        chunks = []
        for chunk in images.split(self.batch_size):
            rgb = chunk.expand(-1, 3, -1, -1) if chunk.shape[1] == 1 else chunk
            as_uint8 = ((rgb.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            (features,) = self.model(as_uint8.to(self.device))
            chunks.append(features.cpu())
        return torch.cat(chunks)
