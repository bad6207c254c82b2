"""Shared fixtures for the sampling tests (helpers live in gaussian_problems.py)."""

from __future__ import annotations

import pytest
from gaussian_problems import DenseOperator, gaussian_problem


@pytest.fixture
def dense_operator():
    return DenseOperator


@pytest.fixture
def problem():
    return gaussian_problem()
