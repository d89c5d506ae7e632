"""Sessions: sizes as strings or ints, the default session and its
environment variable, nested ``with`` blocks, per-call limits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import tenrso_ooc as ts


def test_sizes_and_settings() -> None:
    assert ts.Session(memory_limit="4GiB").memory_limit == 4 << 30
    assert ts.Session(memory_limit="512MB").memory_limit == 512 * 10**6
    assert ts.Session(memory_limit=123456789).memory_limit == 123456789
    session = ts.Session(memory_limit="64MiB", threads=1)
    assert session.threads == 1
    assert "64.00 MiB" in repr(session) and "1 thread" in repr(session)
    assert session.with_memory_limit("1GiB").memory_limit == 1 << 30
    assert session.memory_limit == 64 << 20


def test_with_blocks_nest_and_stay_in_their_thread() -> None:
    outer, inner = ts.Session(memory_limit="64MiB"), ts.Session(memory_limit="32MiB")
    default = ts.current_session()
    seen: list[ts.Session] = []
    with outer:
        assert ts.current_session() is outer
        with inner:
            assert ts.current_session() is inner
            worker = threading.Thread(target=lambda: seen.append(ts.current_session()))
            worker.start()
            worker.join()
        assert ts.current_session() is outer
    assert ts.current_session() is default
    assert seen == [default]


def test_per_call_limit_overrides_the_session(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (512, 512), chunks=(256, 256), fill="ones")
    with ts.Session(memory_limit="64MiB"):
        with pytest.raises(ts.errors.MemoryLimitError) as caught:
            ts.sum(x, memory_limit="64KiB")
        assert caught.value.limit == 64 << 10
        assert ts.sum(x) == 512 * 512


def test_default_session_reads_the_environment() -> None:
    code = "import tenrso_ooc as ts; print(ts.current_session().memory_limit)"
    env = dict(os.environ, TENRSO_OOC_MEMORY_LIMIT="96MiB")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(96 << 20), out.stderr


def test_durability_and_readers_keep_the_bits(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (512, 256), chunks=(32, 256), fill="normal")
    want = np.sqrt(np.abs(np.asarray(x))) * np.asarray(x)
    outs = []
    for durability, readers in (("chunk", 1), ("batch", 4), ("none", 2)):
        session = ts.Session(memory_limit="4MiB", durability=durability, readers=readers)
        out = tmp_path / f"m-{durability}.zarr"
        ts.map("sqrt(abs(x))*x", x, out=out, session=session)
        outs.append(np.asarray(ts.open(out)))
        assert ts.verify(out)
    for got in outs:
        np.testing.assert_array_equal(got, outs[0])
    np.testing.assert_allclose(outs[0], want, rtol=1e-15)
    with pytest.raises(ValueError, match="expected chunk, batch or none"):
        ts.Session(durability="sometimes")
