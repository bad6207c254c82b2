"""Sampling from a trained denoiser: EDM posterior sampling, MMSE, NFE counting, and the exact
Gaussian reference denoiser used by the tests.

- :func:`posterior` / :func:`unconditional`: EDM Heun, Euler or DPM-Solver++(2M), churn, CFG.
- :func:`guided`: a denoiser with a class bound and classifier-free guidance applied, for any
  sampler (:func:`check_guidance` checks a requested class against the model).
- :func:`mmse`: one call at σ = 100 on pure noise; :func:`posterior_mean`: the mean of n samples.
- :func:`lmmse`, :class:`GaussianPrior`: the linear-MMSE floor under the training images' Gaussian.
- :class:`NFECounter`: counts denoiser calls.
- :func:`nppc`: mean, posterior principal components and their stds from one call.
- :func:`consistent_sample`: a zero-shot sampler's consistency step (DDNM, ΠGDM, DPS) driven by a
  conditional model with the operator bound, from noise or from the one-call MMSE.
- :class:`GaussianDenoiser`, :func:`gaussian_posterior`: analytic reference for a Gaussian prior.
- ``sampling.zeroshot``: zero-shot samplers for unconditional networks (imported on first use).
"""

import importlib

from . import consistency
from .consistency import consistent_sample
from .gaussian import GaussianDenoiser, dense_matrix, gaussian_posterior
from .guidance import Guided, check_guidance, guided
from .lmmse import GaussianPrior, lmmse
from .mmse import mmse
from .nfe import NFECounter
from .nppc import gram_schmidt, nppc
from .posterior_mean import posterior_mean
from .solvers import SOLVERS, karras_sigmas, posterior, unconditional

__all__ = [
    "SOLVERS",
    "GaussianDenoiser",
    "GaussianPrior",
    "Guided",
    "NFECounter",
    "check_guidance",
    "consistency",
    "consistent_sample",
    "dense_matrix",
    "gaussian_posterior",
    "gram_schmidt",
    "guided",
    "karras_sigmas",
    "lmmse",
    "mmse",
    "nppc",
    "posterior",
    "posterior_mean",
    "unconditional",
]


def __getattr__(name: str):
    if name == "zeroshot":  # imported on first use: most callers never need it
        return importlib.import_module(f"{__name__}.zeroshot")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
