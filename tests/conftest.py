"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest

from dcl_search.datasets import DatasetSplits, load_dataset


@pytest.fixture(scope="session")
def digits() -> DatasetSplits:
    """The embedded 8x8 digits (no download), loaded once per test session."""
    return load_dataset("digits")
