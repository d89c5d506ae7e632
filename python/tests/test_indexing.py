"""NumPy basic indexing on stored arrays, checked against NumPy on the
same values: random keys of every kind, reads and writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import store

import tenrso_ooc as ts


def random_key(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """A basic index: per axis an integer (maybe negative), a slice with
    any start/stop/step (maybe negative or out of range), with `...` and
    `None` sprinkled in."""
    key: list[Any] = []
    for n in shape:
        kind = rng.integers(4)
        if kind == 0:
            key.append(int(rng.integers(-n, n)))
        elif kind == 1:
            key.append(slice(None))
        else:
            start = int(rng.integers(-n - 2, n + 2)) if rng.random() < 0.8 else None
            stop = int(rng.integers(-n - 2, n + 2)) if rng.random() < 0.8 else None
            step = int(rng.choice([-3, -2, -1, 1, 2, 3, 5]))
            key.append(slice(start, stop, step))
    if rng.random() < 0.3:
        key.insert(int(rng.integers(len(key) + 1)), None)
    if rng.random() < 0.3:
        at = int(rng.integers(len(key)))
        key[at:] = [...]
    return tuple(key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reads_match_numpy(tmp_path: Path, rng: np.random.Generator, dtype: Any) -> None:
    values = rng.standard_normal((7, 9, 5)).astype(dtype)
    array = store(tmp_path / "a.zarr", values, (3, 4, 2))
    for _ in range(300):
        key = random_key(rng, values.shape)
        expected = values[key]
        got = array[key]
        assert got.shape == expected.shape, key
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected, err_msg=str(key))


def test_simple_keys(tmp_path: Path) -> None:
    values = np.arange(60.0).reshape(3, 4, 5)
    array = store(tmp_path / "a.zarr", values, (2, 3, 2))
    for key in [0, -1, (1, 2), (1, 2, 3), ..., (..., 0), (None, 1), slice(None, None, -1), ()]:
        np.testing.assert_array_equal(array[key], values[key], err_msg=str(key))
    assert array[1, 2, 3].shape == ()
    np.testing.assert_array_equal(np.asarray(array), values)
    assert array[5:2].shape == (0, 4, 5)
    # Iteration walks the first axis, as NumPy's does.
    np.testing.assert_array_equal(np.stack(list(array)), values)


def test_only_touched_chunks_are_read(tmp_path: Path) -> None:
    """Every chunk but the ones a selection touches is damaged: the
    selection still reads, and touching a damaged one fails."""
    values = np.arange(64.0 * 64).reshape(64, 64)
    array = store(tmp_path / "a.zarr", values, (16, 16))
    keep = {"1/2", "1/3"}  # rows 16..31, columns 32..63
    for chunk in (tmp_path / "a.zarr" / "c").rglob("*"):
        key = chunk.relative_to(tmp_path / "a.zarr" / "c").as_posix()
        if chunk.is_file() and key not in keep:
            chunk.write_bytes(b"damaged")
    np.testing.assert_array_equal(array[20:30, 40:], values[20:30, 40:])
    np.testing.assert_array_equal(array[31:15:-3, 60:33:-7], values[31:15:-3, 60:33:-7])
    np.testing.assert_array_equal(array[17, 35::5], values[17, 35::5])
    with pytest.raises(ts.errors.CorruptChunkError):
        array[17, ::5]


def test_zero_dimensional_and_empty_arrays(tmp_path: Path) -> None:
    scalar = ts.create(tmp_path / "s.zarr", (), fill="ones")
    assert scalar.shape == () and scalar[()] == 1.0
    assert isinstance(scalar[...], np.ndarray) and scalar[...].shape == ()
    scalar[()] = 5.0
    assert np.asarray(scalar).shape == () and float(np.asarray(scalar)) == 5.0
    assert ts.sum(scalar) == 5.0
    empty = ts.from_numpy(tmp_path / "e.zarr", np.zeros((0, 3)))
    assert empty.shape == (0, 3) and empty[:].shape == (0, 3)
    assert ts.sum(empty) == 0.0
    values = np.arange(6.0).reshape(2, 3)
    array = store(tmp_path / "a.zarr", values, (1, 2))
    for key in [(1, 2, ...), (..., 1, 2), (1, ..., 2)]:
        got = array[key]
        assert type(got) is type(values[key]) and got.shape == values[key].shape, key


def test_writes_match_numpy(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((7, 9, 5))
    array = store(tmp_path / "a.zarr", values, (3, 4, 2))
    for _ in range(100):
        key = random_key(rng, values.shape)
        target_shape = values[key].shape
        update = rng.standard_normal(target_shape)
        values[key] = update
        array[key] = update
        np.testing.assert_array_equal(np.asarray(array), values, err_msg=str(key))
    # Broadcast scalars and rows, as NumPy does.
    values[1:5, 2] = 7.0
    array[1:5, 2] = 7.0
    values[:, :, 0] = np.arange(9.0)
    array[:, :, 0] = np.arange(9.0)
    np.testing.assert_array_equal(np.asarray(array), values)
    # Writes reach the disk: a fresh handle sees them.
    np.testing.assert_array_equal(np.asarray(ts.open(tmp_path / "a.zarr")), values)


def test_bad_keys_raise_index_error(tmp_path: Path) -> None:
    array = store(tmp_path / "a.zarr", np.zeros((3, 4)), (2, 2))
    for key in [(0, 0, 0), 3, (0, -5), (..., ...), [0, 1], np.array([True, False, True]), 1.5]:
        with pytest.raises(IndexError):
            array[key]
    with pytest.raises(IndexError):
        array[0, 4] = 1.0
    with pytest.raises(ValueError):
        array[0] = np.ones(3)


def test_properties(tmp_path: Path) -> None:
    array = ts.create(tmp_path / "a.zarr", (10, 6), chunks=(4, 3), dtype="float32")
    assert array.shape == (10, 6)
    assert array.chunks == (4, 3)
    assert array.dtype == np.float32
    assert array.ndim == 2 and array.size == 60 and len(array) == 10
    assert array.nbytes == 240
    assert array.nchunks == 6
    assert array.nchunks_initialized == 0
    array[0] = 1.0
    assert array.nchunks_initialized == 2
    assert array.path == tmp_path / "a.zarr"
    assert "Shape" in array.info and "(4, 3)" in array.info
    assert "shape=(10, 6)" in repr(array)
    assert "<table>" in array._repr_html_()


def test_attributes(tmp_path: Path) -> None:
    array = ts.create(tmp_path / "a.zarr", (4,))
    array.attrs["units"] = "kelvin"
    array.attrs["scale"] = {"a": [1, 2]}
    assert array.attrs["units"] == "kelvin" and len(array.attrs) == 2  # the same handle
    again = ts.open(tmp_path / "a.zarr")
    assert again.attrs["units"] == "kelvin"
    assert dict(again.attrs)["scale"] == {"a": [1, 2]}
    del again.attrs["units"]
    assert "units" not in ts.open(tmp_path / "a.zarr").attrs
    with pytest.raises(KeyError):
        del again.attrs["units"]
