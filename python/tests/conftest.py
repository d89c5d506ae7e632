"""Shared fixtures of the Python package's tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import tenrso_ooc as ts


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261203)


@pytest.fixture
def small_session() -> ts.Session:
    """A session with a limit small enough that the tests' arrays
    (a few MiB) are tiled and streamed, not held whole."""
    return ts.Session(memory_limit="8MiB", threads=2)


def store(path: Path, values: np.ndarray, chunks: tuple[int, ...]) -> ts.Array:
    """`values` written to a new store with `chunks`."""
    return ts.from_numpy(path, values, chunks=chunks)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    os.environ.setdefault("TMPDIR", str(tmp_path))
    return tmp_path
