"""Fixtures shared across test folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dcl_search.datasets import DatasetSplits, load_dataset


@pytest.fixture(scope="session")
def digits() -> DatasetSplits:
    """The embedded 8x8 digits (no download), loaded once per test session."""
    return load_dataset("digits")


def _running_processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process, from Linux's /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):  # ended meanwhile
            continue
        found.append((int(entry.name), int(stat.rsplit(")", 1)[1].split()[1]), command))
    return found


@pytest.fixture
def running_processes() -> Callable[[], list[tuple[int, int, str]]]:
    """Lists the running processes anew on each call: (pid, parent pid, command line)."""
    if not Path("/proc").is_dir():
        pytest.skip("needs Linux's /proc")
    return _running_processes
