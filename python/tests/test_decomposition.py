"""CP and Tucker of stored tensors against TensorLy on the same tensor:
the same iterates from the same SVD initialisation, TensorLy's result
types, and reconstruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorly as tl
from tensorly.cp_tensor import CPTensor
from tensorly.decomposition import parafac as tl_parafac
from tensorly.decomposition import tucker as tl_tucker
from tensorly.tucker_tensor import TuckerTensor

import tenrso_ooc as ts


def test_parafac_matches_tensorly(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (20, 18, 16), chunks=(7, 6, 16), fill="lowrank:3:0.05", seed=5)
    dense = np.asarray(x)
    with ts.Session(memory_limit="2MiB"):
        model, errors = ts.parafac(x, 3, n_iter_max=8, tol=0, return_errors=True)
    reference, ref_errors = tl_parafac(
        tl.tensor(dense), 3, n_iter_max=8, tol=0, init="svd", return_errors=True
    )
    assert isinstance(model, CPTensor)
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        tl.cp_to_tensor(model), tl.cp_to_tensor(reference), rtol=1e-6, atol=1e-8
    )
    rebuilt = ts.reconstruct(model, out=tmp_path / "r.zarr")
    np.testing.assert_allclose(np.asarray(rebuilt), tl.cp_to_tensor(model), rtol=1e-10, atol=1e-12)


def test_tucker_matches_tensorly(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (16, 14, 12), chunks=(5, 14, 6), fill="lowrank:4:0.05", seed=6)
    dense = np.asarray(x)
    with ts.Session(memory_limit="2MiB"):
        model = ts.tucker(x, [4, 4, 3], n_iter_max=5, tol=0)
    reference = tl_tucker(tl.tensor(dense), [4, 4, 3], n_iter_max=5, tol=0, init="svd")
    assert isinstance(model, TuckerTensor)
    np.testing.assert_allclose(
        tl.tucker_to_tensor(model), tl.tucker_to_tensor(reference), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(ts.reconstruct(model), tl.tucker_to_tensor(model), atol=1e-12)


def test_callbacks_stop_and_raise(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (12, 10, 8), fill="lowrank:2:0.1", seed=7)
    seen: list[int] = []

    def stop_after_two(record: dict[str, object], rec_error: float) -> bool:
        seen.append(int(record["iteration"]))  # type: ignore[call-overload]
        return len(seen) == 2

    _, errors = ts.parafac(x, 2, n_iter_max=50, tol=0, callback=stop_after_two, return_errors=True)
    assert len(seen) == 2 and len(errors) == 2

    def fail(record: dict[str, object], rec_error: float) -> None:
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        ts.tucker(x, [2, 2, 2], n_iter_max=5, callback=fail)
