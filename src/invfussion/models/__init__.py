"""Denoiser networks: the HDiT backbone with InvFussion blocks, Palette and unconditional variants.

from invfussion import models
net = models.build("mnist32", "invfussion")
x0 = net(x_noisy, sigma, op, y)          # EDM-preconditioned denoiser
net = models.load("mnist32-invfussion")  # a shipped model, checkpoint file or run directory
"""

from .compile import compile_denoiser
from .load import initialize_from, load
from .precond import CONDITIONINGS, Denoiser
from .presets import PRESETS, ModelConfig, build

__all__ = [
    "CONDITIONINGS", "PRESETS", "Denoiser", "ModelConfig", "build", "compile_denoiser", "initialize_from", "load",
]
