"""Each error class, raised by a real cause, with the fields that name
what is at fault; bad input leaves existing data as it was."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tenrso_ooc as ts
from tenrso_ooc import errors


def corrupt_one_chunk(store: Path) -> Path:
    chunk = sorted(p for p in store.rglob("*") if p.is_file() and p.name != "zarr.json")[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    return chunk


def test_corrupt_chunk(tmp_path: Path) -> None:
    array = ts.create(tmp_path / "a.zarr", (8, 8), chunks=(4, 4), fill="normal")
    corrupt_one_chunk(tmp_path / "a.zarr")
    with pytest.raises(errors.CorruptChunkError) as caught:
        np.asarray(array)
    e = caught.value
    assert e.array == str(tmp_path / "a.zarr")
    assert e.chunk == [0, 0] and e.key.endswith("0/0")
    assert isinstance(e, errors.TenrsoError)
    with pytest.raises(errors.CorruptChunkError):
        ts.sum(array)


def test_memory_limit(tmp_path: Path) -> None:
    a = ts.create(tmp_path / "a.zarr", (512, 512), fill="ones")
    with pytest.raises(errors.MemoryLimitError) as caught:
        a.to_numpy(memory_limit="1MiB")
    assert caught.value.required == 512 * 512 * 8 and caught.value.limit == 1 << 20
    assert isinstance(caught.value, MemoryError)
    with ts.Session(memory_limit="1MiB"), pytest.raises(MemoryError):
        np.asarray(a)
    with pytest.raises(errors.MemoryLimitError) as caught:
        a.read(..., memory_limit="1MiB")
    assert "memory_limit=" in str(caught.value)
    # A plan that cannot fit at all is refused before it runs.
    with pytest.raises(errors.MemoryLimitError) as caught:
        ts.einsum("ij,jk->ik", a, a, out=tmp_path / "c.zarr", memory_limit="16KiB")
    assert caught.value.limit == 16 << 10 and caught.value.required > 16 << 10
    assert not (tmp_path / "c.zarr").exists()


def test_asarray_refuses_without_reading(tmp_path: Path) -> None:
    """128 MiB under a 16 MiB limit: refused with the numbers before a
    byte is read (every chunk is damaged, and the error is not about that)."""
    a = ts.create(tmp_path / "a.zarr", (4096, 4096), chunks=(1024, 1024), fill="ones")
    for chunk in (p for p in (tmp_path / "a.zarr").rglob("*") if p.name != "zarr.json"):
        if chunk.is_file():
            chunk.write_bytes(b"damaged")
    with ts.Session(memory_limit="16MiB"), pytest.raises(errors.MemoryLimitError) as caught:
        np.asarray(a)
    assert caught.value.required == 128 << 20 and caught.value.limit == 16 << 20
    assert "128.0 MiB" in str(caught.value) and "memory_limit=" in str(caught.value)
    with pytest.raises(errors.CorruptChunkError):
        a[0, 0]


def test_spill_full(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (1024, 1024), chunks=(16, 1024), fill="normal")
    spill = tmp_path / "spill"
    spill.mkdir()
    session = ts.Session(memory_limit="4MiB", spill_dirs=[f"{spill}:1MiB"])
    with pytest.raises(errors.SpillFullError) as caught:
        ts.transpose(x, out=tmp_path / "t.zarr", chunks=(16, 1024), session=session)
    assert caught.value.requested > 1 << 20
    assert isinstance(caught.value, OSError)
    assert not (tmp_path / "t.zarr").exists()
    assert list(spill.iterdir()) == []


def test_no_spill_tier_with_room(tmp_path: Path) -> None:
    shapes = {"a": (2048, 16), "b": (16, 2048), "c": (2048, 8)}
    a, b, c = (
        ts.create(tmp_path / f"{n}.zarr", s, chunks=(min(s[0], 512), min(s[1], 512)), fill="normal")
        for n, s in shapes.items()
    )
    fast, roomy = tmp_path / "fast", tmp_path / "roomy"
    fast.mkdir()
    roomy.mkdir()
    # The first step's 32 MiB result cannot go to an 8 MiB tier: refused
    # before anything runs.
    small = ts.Session(memory_limit="16MiB", spill_dirs=[f"{fast}:8MiB"])
    with pytest.raises(errors.SpillFullError) as caught:
        ts.einsum("ij,jk,kl->il", a, b, c, out=tmp_path / "abc.zarr", optimize="sequential", session=small)
    assert caught.value.requested >= 32 << 20
    assert "no spill tier can hold einsum step 0 result" in str(caught.value)
    assert "spill_dirs=" in str(caught.value)
    assert not (tmp_path / "abc.zarr").exists()
    assert list(fast.iterdir()) == []
    # A second tier takes it.
    tiers = ts.Session(memory_limit="16MiB", spill_dirs=[f"{fast}:8MiB", str(roomy)])
    abc = ts.einsum("ij,jk,kl->il", a, b, c, out=tmp_path / "abc.zarr", optimize="sequential", session=tiers)
    want = (np.asarray(a) @ np.asarray(b)) @ np.asarray(c)
    np.testing.assert_allclose(np.asarray(abc), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_spill_migration_between_tiers(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (1024, 1024), chunks=(16, 1024), fill="normal")
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir()
    slow.mkdir()
    for migration in ("always", "off", "auto"):
        out = tmp_path / f"t-{migration}.zarr"
        session = ts.Session(
            memory_limit="4MiB", spill_dirs=[f"{fast}:2MiB", slow], spill_migration=migration
        )
        ts.transpose(x, out=out, chunks=(16, 1024), session=session)
        np.testing.assert_array_equal(np.asarray(ts.open(out)), np.asarray(x).T)
    del session  # its spill area goes with it
    assert list(fast.iterdir()) == [] and list(slow.iterdir()) == []
    with pytest.raises(ValueError, match="expected auto, always or off"):
        ts.Session(spill_migration="sometimes")


def test_not_found_and_exists(tmp_path: Path) -> None:
    with pytest.raises(errors.ArrayNotFoundError) as caught:
        ts.open(tmp_path / "missing.zarr")
    assert caught.value.path == str(tmp_path / "missing.zarr")
    assert isinstance(caught.value, FileNotFoundError)
    a = ts.create(tmp_path / "a.zarr", (4,), fill="range")
    with pytest.raises(errors.ArrayExistsError) as exists:
        ts.create(tmp_path / "a.zarr", (8,), fill="ones")
    assert exists.value.path == str(tmp_path / "a.zarr")
    np.testing.assert_array_equal(np.asarray(a), np.arange(4.0))  # untouched


def test_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(errors.StorageError) as caught:
        ts.create(tmp_path / "file" / "a.zarr", (4,))
    assert "file" in caught.value.path
    assert isinstance(caught.value, OSError)


def test_invalid_arguments(tmp_path: Path) -> None:
    a = ts.create(tmp_path / "a.zarr", (4, 5), fill="ones")
    for call in [
        lambda: ts.einsum("ij,jk->iq", a, a),
        lambda: ts.einsum("ij,jk->ik", a, a),  # j is 5 in one operand and 4 in the other
        lambda: ts.map("x +* 2", a),
        lambda: ts.create(tmp_path / "b.zarr", (4,), fill="sparkly"),
        lambda: ts.create(tmp_path / "c.zarr", (4,), compression="snappy"),
        lambda: ts.create(tmp_path / "d.zarr", (-4,)),
        lambda: ts.create(tmp_path / "e.zarr", (4,), chunks=(0,)),
        lambda: ts.sum(a, axis=2),
        lambda: ts.Session(memory_limit="lots"),
        lambda: ts.einsum("ij->i", a, optimize="fastest"),
    ]:
        with pytest.raises(errors.InvalidArgumentError) as caught:
            call()
        assert isinstance(caught.value, ValueError)
        assert str(caught.value)


def test_dtype_and_bounds(tmp_path: Path) -> None:
    with pytest.raises(errors.DTypeError):
        ts.from_numpy(tmp_path / "z.zarr", np.ones(3, dtype=np.complex128))
    with pytest.raises(errors.DTypeError):
        ts.create(tmp_path / "i.zarr", (3,), dtype="int32")
    a = ts.create(tmp_path / "a.zarr", (4,))
    with pytest.raises(errors.OutOfBoundsError) as caught:
        a[4]
    assert isinstance(caught.value, IndexError)


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    session = ts.Session(memory_limit="32MiB", threads=1)
    x = ts.create(tmp_path / "x.zarr", (3072, 3072), fill="normal", session=session)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            ts.einsum("ij,kj->ik", x, x, out=tmp_path / "g.zarr", session=session)
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion
            outcome.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    session.cancel()
    worker.join(30)
    assert time.monotonic() - started < 5
    assert len(outcome) == 1 and isinstance(outcome[0], errors.CancelledError), outcome
    # The session works again afterwards.
    assert ts.sum(x, session=session) == pytest.approx(float(np.asarray(x).sum()))


def declared(path: Path, shape: list[int], chunks: list[int]) -> Path:
    """A valid, sparse float32 store: its zarr.json and no chunks."""
    path.mkdir()
    (path / "zarr.json").write_text(
        json.dumps(
            {
                "zarr_format": 3,
                "node_type": "array",
                "shape": shape,
                "data_type": "float32",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": 0.0,
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            }
        )
    )
    return path


def test_hostile_stores_are_refused_not_aborted(tmp_path: Path) -> None:
    # One chunk of 4 TB: reading one element of it would decode it all.
    big_chunk = ts.open(declared(tmp_path / "c.zarr", [10**6, 10**6], [10**6, 10**6]))
    with pytest.raises(errors.MemoryLimitError, match="decoding chunks of"):
        big_chunk[0, 0]
    with pytest.raises(errors.MemoryLimitError):
        big_chunk[0, 0] = 1.0
    # 10¹¹ chunks, none written: a reduction costs what the store holds.
    sparse = ts.open(declared(tmp_path / "s.zarr", [10**6, 10**6], [1, 10]))
    assert float(sparse[5, 10:20].sum()) == 0.0
    assert float(ts.sum(sparse, memory_limit="8MiB")) == 0.0
    with pytest.raises(errors.InvalidArgumentError, match="nested more than 256"):
        ts.map("(" * 1000 + "x" + ")" * 1000, sparse, out=tmp_path / "m.zarr")
    with pytest.raises(errors.MemoryLimitError, match="CP-ALS of rank"):
        ts.decomposition.parafac(sparse, rank=10**9)
    assert not (tmp_path / "m.zarr").exists()
