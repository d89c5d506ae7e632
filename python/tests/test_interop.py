"""Stores go both ways between tenrso-ooc and zarr-python and Dask."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import zarr

import tenrso_ooc as ts


def test_zarr_python_reads_ours(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((30, 20))
    ours = ts.from_numpy(tmp_path / "a.zarr", values, chunks=(8, 8))
    ours.attrs["units"] = "m"
    theirs = zarr.open_array(tmp_path / "a.zarr", mode="r")
    assert theirs.shape == (30, 20) and theirs.chunks == (8, 8)
    np.testing.assert_array_equal(theirs[:], values)
    assert theirs.attrs["units"] == "m"
    product = ts.einsum("ij,kj->ik", ours, ours, out=tmp_path / "g.zarr")
    np.testing.assert_allclose(zarr.open_array(product.path, mode="r")[:], values @ values.T)


def test_we_read_and_write_zarr_python_stores(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((40, 24)).astype(np.float32)
    theirs = zarr.create_array(
        tmp_path / "z.zarr", shape=values.shape, chunks=(16, 8), dtype="float32"
    )
    theirs[:] = values
    ours = ts.open(tmp_path / "z.zarr")
    assert ours.dtype == np.float32 and ours.chunks == (16, 8)
    np.testing.assert_array_equal(ours[5:30:3, ::-2], values[5:30:3, ::-2])
    np.testing.assert_allclose(ts.sum(ours), values.astype(np.float64).sum(), rtol=1e-5)
    ours[0, :] = 1.5
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "z.zarr", mode="r")[0], 1.5)


def test_dask_both_ways(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((64, 48))
    ts.from_numpy(tmp_path / "ours.zarr", values, chunks=(16, 16))
    lazy = da.from_zarr(str(tmp_path / "ours.zarr"))
    np.testing.assert_allclose(lazy.sum().compute(), values.sum())
    np.testing.assert_array_equal(lazy[3:9, ::5].compute(), values[3:9, ::5])

    # Dask wraps an Array directly: slicing is all it needs.
    wrapped = da.from_array(ts.open(tmp_path / "ours.zarr"), chunks=(16, 16))
    np.testing.assert_allclose((wrapped @ wrapped.T).compute(), values @ values.T, rtol=1e-12)

    da.from_array(values, chunks=(32, 24)).to_zarr(str(tmp_path / "dask.zarr"))
    theirs = ts.open(tmp_path / "dask.zarr")
    assert theirs.chunks == (32, 24)
    np.testing.assert_array_equal(np.asarray(theirs), values)
    np.testing.assert_allclose(ts.matmul(theirs, values.T), values @ values.T, rtol=1e-12)
