"""Shared fixture of the zero-shot tests: a smooth Gaussian prior on 8×8 images."""

from __future__ import annotations

import pytest
import torch

from invfussion.sampling import GaussianDenoiser


@pytest.fixture(scope="module")
def smooth_prior() -> GaussianDenoiser:
    """Zero-mean prior, squared-exponential pixel covariance (length 1.5 px, variance 0.25)."""
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    grid = torch.stack([rows.flatten(), cols.flatten()], 1).double()
    cov = 0.25 * torch.exp(-torch.cdist(grid, grid).square() / (2 * 1.5**2)) + 1e-3 * torch.eye(64)
    return GaussianDenoiser(torch.zeros(64), cov, (1, 8, 8))
