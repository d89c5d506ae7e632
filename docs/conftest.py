"""Runs the examples of docs/python.md as doctests (`scripts/test` does),
each file in a fresh temporary directory, so that they can use relative
paths as a user's script would."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
