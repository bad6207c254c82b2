"""Shared fixtures for the training tests (helpers live in tiny_runs.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise comparisons across processes need one reduction order
    yield
    torch.set_num_threads(previous)
