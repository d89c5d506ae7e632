"""Operations against NumPy on the same values, under a memory limit
small enough that they are tiled and streamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import store

import tenrso_ooc as ts
from tenrso_ooc.errors import MemoryLimitError

# (subscripts, operand shapes): contractions, outer products, traces,
# transposes, reductions, batched products, three-operand chains.
EINSUM_SPECS = [
    ("ij,jk->ik", [(300, 200), (200, 250)]),
    ("ij,jk", [(64, 48), (48, 32)]),
    ("ij,ij->", [(200, 300), (200, 300)]),
    ("ij,kj->ik", [(150, 90), (120, 90)]),
    ("ijk,jl->ilk", [(40, 30, 20), (30, 25)]),
    ("ijk,kj->i", [(30, 40, 50), (50, 40)]),
    ("bij,bjk->bik", [(6, 40, 30), (6, 30, 20)]),
    ("i,j->ij", [(300,), (200,)]),
    ("ii->i", [(120, 120)]),
    ("ii->", [(120, 120)]),
    ("ij->ji", [(130, 70)]),
    ("ijk->k", [(30, 40, 50)]),
    ("ij,jk,kl->il", [(60, 50), (50, 40), (40, 30)]),
    ("abc,cd,bd->a", [(20, 30, 40), (40, 25), (30, 25)]),
    ("abc,cd,db->a", [(20, 30, 40), (40, 25), (25, 30)]),
    ("ij,ij", [(70, 50), (70, 50)]),
    ("...i,...i->...", [(5, 6, 40), (5, 6, 40)]),
    ("...ij,...jk->...ik", [(3, 4, 20, 10), (3, 4, 10, 15)]),
]


@pytest.mark.parametrize(("subscripts", "shapes"), EINSUM_SPECS)
def test_einsum_matches_numpy(
    tmp_path: Path, rng: np.random.Generator, subscripts: str, shapes: list[tuple[int, ...]]
) -> None:
    values = [rng.standard_normal(s) for s in shapes]
    arrays = [
        store(tmp_path / f"op{k}.zarr", v, tuple(max(1, n // 3) for n in v.shape))
        for k, v in enumerate(values)
    ]
    expected = np.einsum(subscripts, *values)
    with ts.Session(memory_limit="4MiB", threads=2):
        got = ts.einsum(subscripts, *arrays)
        on_disk = (
            ts.einsum(subscripts, *arrays, out=tmp_path / "out.zarr") if np.ndim(expected) else None
        )
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    if on_disk is not None:
        assert isinstance(on_disk, ts.Array)
        np.testing.assert_allclose(np.asarray(on_disk), expected, rtol=1e-10, atol=1e-10)


def test_einsum_takes_numpy_and_paths(tmp_path: Path, rng: np.random.Generator) -> None:
    a = rng.standard_normal((50, 40))
    b = rng.standard_normal((40, 30))
    store(tmp_path / "a.zarr", a, (16, 16))
    # Sums in another order than NumPy's: bound the error by the size of
    # the terms, not of the (possibly cancelling) sum.
    terms = (np.abs(a) @ np.abs(b)).max()
    np.testing.assert_allclose(
        ts.einsum("ij,jk->ik", tmp_path / "a.zarr", b), a @ b, rtol=1e-12, atol=1e-13 * terms
    )
    np.testing.assert_allclose(ts.einsum("ij,jk->ik", str(tmp_path / "a.zarr"), b), a @ b)
    out = np.empty((50, 30))
    assert ts.einsum("ij,jk->ik", a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    # Mixed dtypes promote as NumPy does (float32 with float64 gives float64).
    mixed = ts.einsum("ij,jk->ik", a.astype(np.float32), b)
    assert mixed.dtype == np.float64
    np.testing.assert_allclose(mixed, a.astype(np.float32).astype(np.float64) @ b, rtol=1e-12)


def test_numpy_operands_line_up_with_stored_chunks(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A NumPy vector against a stored matrix 8x the limit: the vector is
    chunked like the matrix's columns, so tiles need not span the axis."""
    x = rng.standard_normal((256, 32768))
    stored = store(tmp_path / "x.zarr", x, (64, 2048))
    v = rng.standard_normal(32768)
    np.testing.assert_allclose(ts.einsum("ij,j->i", stored, v, memory_limit="8MiB"), x @ v)
    np.testing.assert_allclose(ts.matmul(stored, v, memory_limit="8MiB"), x @ v)


def test_einsum_bitwise_for_any_thread_count(tmp_path: Path, rng: np.random.Generator) -> None:
    a = store(tmp_path / "a.zarr", rng.standard_normal((200, 300)), (64, 64))
    b = store(tmp_path / "b.zarr", rng.standard_normal((300, 100)), (64, 64))
    results = []
    for threads in (1, 2):
        with ts.Session(memory_limit="2MiB", threads=threads):
            results.append(ts.einsum("ij,jk->ik", a, b))
            results.append(np.array([ts.sum(a), ts.norm(b)]))
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[1], results[3])


def test_einsum_path_like_numpy(tmp_path: Path, rng: np.random.Generator) -> None:
    shapes = [(60, 50), (50, 40), (40, 30)]
    values = [rng.standard_normal(s) for s in shapes]
    path, text = ts.einsum_path("ij,jk,kl->il", *values, optimize="optimal")
    assert path[0] == "einsum_path"
    assert len(path) == 3 and all(isinstance(step, tuple) for step in path[1:])
    # Feeding our path back into NumPy gives the same product.
    np.testing.assert_allclose(
        np.einsum("ij,jk,kl->il", *values, optimize=path), values[0] @ values[1] @ values[2]
    )
    assert "memory" in text


def test_einsum_result_too_large_for_numpy(tmp_path: Path) -> None:
    a = ts.create(tmp_path / "a.zarr", (1024, 64), chunks=(256, 64), fill="ones")
    b = ts.create(tmp_path / "b.zarr", (64, 1024), chunks=(64, 256), fill="ones")
    with pytest.raises(MemoryLimitError) as caught:
        ts.einsum("ij,jk->ik", a, b, memory_limit="4MiB")
    assert caught.value.required == 1024 * 1024 * 8
    assert caught.value.limit == 4 << 20
    assert "out=" in str(caught.value)
    result = ts.einsum("ij,jk->ik", a, b, out=tmp_path / "c.zarr", memory_limit="4MiB")
    assert float(ts.sum(result)) == 64.0 * 1024 * 1024


def test_tensordot_and_matmul(tmp_path: Path, rng: np.random.Generator) -> None:
    a = rng.standard_normal((12, 10, 8))
    b = rng.standard_normal((10, 8, 6))
    np.testing.assert_allclose(ts.tensordot(a, b), np.tensordot(a, b), rtol=1e-12)
    np.testing.assert_allclose(ts.tensordot(a, b, axes=0), np.tensordot(a, b, axes=0), rtol=1e-12)
    for bad in [3, ([0, 0], [1, 2]), ([1], [0, 1])]:
        with pytest.raises(ts.errors.InvalidArgumentError):
            ts.tensordot(a, b, axes=bad)
    np.testing.assert_allclose(
        ts.tensordot(a, b, axes=([1], [0])), np.tensordot(a, b, axes=([1], [0])), rtol=1e-12
    )
    m = store(tmp_path / "m.zarr", rng.standard_normal((30, 20)), (8, 8))
    n = rng.standard_normal((20, 10))
    v = rng.standard_normal(20)
    np.testing.assert_allclose(m @ n, np.asarray(m) @ n, rtol=1e-12)
    np.testing.assert_allclose(ts.matmul(m, v), np.asarray(m) @ v, rtol=1e-12)
    np.testing.assert_allclose(ts.matmul(v, n), v @ n, rtol=1e-12)
    batch_a, batch_b = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 4, 2))
    np.testing.assert_allclose(ts.matmul(batch_a, batch_b), batch_a @ batch_b, rtol=1e-12)


@pytest.mark.parametrize("op", ["sum", "mean", "min", "max", "norm"])
def test_reductions_match_numpy(tmp_path: Path, rng: np.random.Generator, op: str) -> None:
    values = rng.standard_normal((40, 30, 20))
    array = store(tmp_path / "a.zarr", values, (16, 8, 8))

    def numpy(axis: object = None, keepdims: bool = False) -> np.ndarray:
        if op == "norm":
            return np.sqrt(np.sum(values**2, axis=axis, keepdims=keepdims))  # type: ignore[arg-type]
        return getattr(np, op)(values, axis=axis, keepdims=keepdims)

    fn = getattr(ts, op)
    with ts.Session(memory_limit="2MiB"):
        assert isinstance(fn(array), float)
        np.testing.assert_allclose(fn(array), numpy(), rtol=1e-12)
        np.testing.assert_allclose(getattr(array, op)(), numpy(), rtol=1e-12)
        for axis in [0, 2, -1, (0, 1), (0, 2), (1, 2)]:
            np.testing.assert_allclose(fn(array, axis), numpy(axis), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            fn(array, 1, keepdims=True), numpy(1, keepdims=True), rtol=1e-12, atol=1e-12
        )
        stored = fn(array, axis=(0,), out=tmp_path / f"{op}.zarr")
        assert isinstance(stored, ts.Array)
        np.testing.assert_allclose(np.asarray(stored), numpy(0), rtol=1e-12, atol=1e-12)


def test_map_transpose_rechunk(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((50, 40, 6))
    y = rng.standard_normal((50, 40, 6))
    xa = store(tmp_path / "x.zarr", x, (16, 16, 3))
    ya = store(tmp_path / "y.zarr", y, (16, 16, 3))
    with ts.Session(memory_limit="2MiB"):
        np.testing.assert_allclose(ts.map("x * 2 + 1", xa), x * 2 + 1, rtol=1e-15)
        np.testing.assert_allclose(ts.map("max(x, y) - y", xa, ya), np.maximum(x, y) - y)
        np.testing.assert_allclose(ts.map("a ** 2 - b", a=xa, b=y), x**2 - y, rtol=1e-15)
        np.testing.assert_allclose(ts.map("y * 2 + x", y=xa, x=ya), x * 2 + y, rtol=1e-15)
        np.testing.assert_allclose(ts.map("exp(temp1e)", temp1e=xa), np.exp(x), rtol=1e-15)
        with pytest.raises(ts.errors.InvalidArgumentError):
            ts.map("a + b", xa, b=ya)
        mapped = ts.map("sqrt(abs(x))", xa, out=tmp_path / "m.zarr")
        np.testing.assert_allclose(np.asarray(mapped), np.sqrt(np.abs(x)), rtol=1e-15)

        np.testing.assert_array_equal(ts.transpose(xa), x.T)
        np.testing.assert_array_equal(xa.transpose(1, 0, 2), x.transpose(1, 0, 2))
        t = ts.transpose(xa, (2, 0, 1), out=tmp_path / "t.zarr")
        np.testing.assert_array_equal(np.asarray(t), x.transpose(2, 0, 1))

        r = ts.rechunk(xa, (7, 40, 1), tmp_path / "r.zarr")
        assert r.chunks == (7, 40, 1)
        np.testing.assert_array_equal(np.asarray(r), x)
        assert ts.verify(r).ok


def test_create_fills(tmp_path: Path) -> None:
    r = ts.create(tmp_path / "r.zarr", (6, 5), chunks=(4, 4), fill="range")
    np.testing.assert_array_equal(np.asarray(r), np.arange(30.0).reshape(6, 5))
    ones = ts.create(tmp_path / "o.zarr", (6, 5), dtype=np.float32, fill="ones")
    assert ones.dtype == np.float32 and float(ones.sum()) == 30.0
    a = ts.create(tmp_path / "a.zarr", (64, 64), fill="normal", seed=3)
    b = ts.create(tmp_path / "b.zarr", (64, 64), fill="normal", seed=3)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    low = ts.create(tmp_path / "l.zarr", (20, 20, 20), fill="lowrank:3")
    assert np.linalg.matrix_rank(np.asarray(low).reshape(20, 400)) == 3


def test_verify_reports_a_corrupt_chunk(tmp_path: Path) -> None:
    array = ts.create(tmp_path / "a.zarr", (8, 8), chunks=(4, 4), fill="normal")
    assert ts.verify(array) and ts.verify(tmp_path / "a.zarr").chunks_stored == 4
    chunk = next(p for p in (tmp_path / "a.zarr").rglob("*") if p.is_file() and p.name == "1")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    report = ts.verify(array)
    assert not report.ok and len(report.bad_chunks) == 1
    assert report.bad_chunks[0].key.endswith("1")
