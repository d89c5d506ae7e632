""".npy, Arrow IPC and Parquet files: read in place by ``open``, imported
into stores and exported from them, checked with NumPy and pyarrow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import tenrso_ooc as ts


def tensor_table(values: np.ndarray) -> pa.Table:
    return pa.table({"t": pa.FixedShapeTensorArray.from_numpy_ndarray(values)})


def tensor_of(table: pa.Table) -> np.ndarray:
    return table.column(0).combine_chunks().to_numpy_ndarray()


def test_open_files_in_place(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((40, 6, 5))
    np.save(tmp_path / "x.npy", values)
    pq.write_table(tensor_table(values), tmp_path / "x.parquet", row_group_size=7)
    feather.write_feather(tensor_table(values), tmp_path / "x.arrow", chunksize=9)
    for name in ["x.npy", "x.parquet", "x.arrow"]:
        array = ts.open(tmp_path / name)
        assert array.shape == values.shape and array.dtype == np.float64, name
        np.testing.assert_array_equal(array[3:31:4, ::-1, 2], values[3:31:4, ::-1, 2])
        np.testing.assert_allclose(ts.sum(array, memory_limit="4MiB"), values.sum(), rtol=1e-12)
        np.testing.assert_allclose(
            ts.einsum("ijk,ijk->i", array, array), np.einsum("ijk,ijk->i", values, values)
        )
        with pytest.raises(ts.errors.InvalidArgumentError, match="read-only"):
            array[0] = 1.0


def test_import_and_export_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", values)
    stored = ts.import_file(tmp_path / "x.npy", tmp_path / "x.zarr", chunks=(16, 8))
    assert stored.chunks == (16, 8) and stored.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(stored), values)

    ts.export_file(stored, tmp_path / "y.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), values)
    ts.export_file(stored, tmp_path / "y.parquet", row_group_rows=16)
    file = pq.ParquetFile(tmp_path / "y.parquet")
    assert file.metadata.num_row_groups == 4
    np.testing.assert_array_equal(tensor_of(file.read()), values)
    ts.export_file(tmp_path / "x.zarr", tmp_path / "y.arrow")
    np.testing.assert_array_equal(tensor_of(feather.read_table(tmp_path / "y.arrow")), values)
    names = [f"c{k}" for k in range(8)]
    ts.export_file(stored, tmp_path / "cols.parquet", columns=names)
    table = pq.read_table(tmp_path / "cols.parquet")
    assert table.column_names == names
    np.testing.assert_array_equal(table.column("c3").to_numpy(), values[:, 3])

    raw = tmp_path / "x.raw"
    values.astype("<f4").tofile(raw)
    again = ts.import_file(raw, tmp_path / "raw.zarr", raw_shape=(50, 8), raw_dtype="float32")
    np.testing.assert_array_equal(np.asarray(again), values)
    with pytest.raises(ts.errors.ArrayExistsError):
        ts.import_file(tmp_path / "x.npy", tmp_path / "x.zarr")
