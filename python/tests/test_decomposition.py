"""CP and Tucker of stored tensors against TensorLy on the same tensor:
the same iterates from the same SVD initialisation and from the same
given start (also normalised and regularised), TensorLy's result types and
callback, and reconstruction."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

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


def lowrank(tmp_path: Path) -> tuple[ts.Array, np.ndarray[Any, Any]]:
    """A noisy rank-3 tensor in uneven chunks, and its values."""
    x = ts.create(tmp_path / "x.zarr", (20, 18, 16), chunks=(7, 6, 16), fill="lowrank:3:0.05", seed=5)
    return x, np.asarray(x)


def cp_start(shape: tuple[int, ...], rank: int) -> CPTensor:
    rng = np.random.default_rng(11)
    return CPTensor((rng.random(rank) + 0.5, [rng.random((n, rank)) for n in shape]))


def copy_cp(model: CPTensor) -> CPTensor:
    """TensorLy updates the factor list it is given in place."""
    weights, factors = model
    return CPTensor((weights.copy(), [f.copy() for f in factors]))


@pytest.mark.parametrize(("normalize_factors", "l2_reg"), [(False, 0.0), (True, 0.0), (False, 0.5), (True, 0.5)])
@pytest.mark.filterwarnings("ignore:It is not recommended to initialize")
def test_parafac_errors_equal_tensorlys_from_the_same_start(
    tmp_path: Path, normalize_factors: bool, l2_reg: float
) -> None:
    x, dense = lowrank(tmp_path)
    start = cp_start(dense.shape, 4)
    options: dict[str, Any] = dict(
        n_iter_max=10, tol=0, normalize_factors=normalize_factors, l2_reg=l2_reg, return_errors=True
    )
    with ts.Session(memory_limit="2MiB"):
        model, errors = ts.parafac(x, 4, init=copy_cp(start), **options)
    reference, ref_errors = tl_parafac(tl.tensor(dense), 4, init=copy_cp(start), **options)
    assert len(errors) == len(ref_errors) == 10
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-8, atol=0)
    assert isinstance(model, CPTensor)
    np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-6)
    np.testing.assert_allclose(tl.cp_to_tensor(model), tl.cp_to_tensor(reference), rtol=1e-8, atol=1e-10)


def test_tucker_errors_equal_tensorlys_from_the_same_start(tmp_path: Path) -> None:
    x, dense = lowrank(tmp_path)
    rng = np.random.default_rng(12)
    ranks = (4, 4, 3)
    factors = [np.linalg.qr(rng.standard_normal((n, r)))[0] for n, r in zip(dense.shape, ranks)]
    core = rng.standard_normal(ranks)

    def start() -> TuckerTensor:
        return TuckerTensor((core.copy(), [f.copy() for f in factors]))

    with ts.Session(memory_limit="2MiB"):
        model, errors = ts.tucker(x, list(ranks), n_iter_max=10, tol=0, init=start(), return_errors=True)
    reference, ref_errors = tl_tucker(
        tl.tensor(dense), list(ranks), n_iter_max=10, tol=0, init=start(), return_errors=True
    )
    assert len(errors) == len(ref_errors) == 10
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-8, atol=0)
    assert isinstance(model, TuckerTensor)
    np.testing.assert_allclose(
        tl.tucker_to_tensor(model), tl.tucker_to_tensor(reference), rtol=1e-8, atol=1e-10
    )

    # TensorLy's third form of init: the factors alone, the core implied.
    model, errors = ts.tucker(x, list(ranks), n_iter_max=3, tol=0, init=[f.copy() for f in factors], return_errors=True)
    reference, ref_errors = tl_tucker(
        tl.tensor(dense), list(ranks), n_iter_max=3, tol=0, init=[f.copy() for f in factors], return_errors=True
    )
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-8, atol=0)
    np.testing.assert_allclose(model.core, reference.core, rtol=1e-8, atol=1e-10)


def test_callback_is_tensorlys(tmp_path: Path) -> None:
    """Called with the starting model and after every iteration, with
    TensorLy's model type and error; only ``True`` stops."""
    x, dense = lowrank(tmp_path)
    start = cp_start(dense.shape, 3)

    def recorder(calls: list[tuple[Any, float]], stop_at: int, stop_value: object) -> Any:
        def callback(model: Any, rec_error: float) -> object:
            calls.append((copy_cp(model), rec_error))  # TensorLy's changes later
            return stop_value if len(calls) == stop_at else None

        return callback

    ours: list[tuple[Any, float]] = []
    theirs: list[tuple[Any, float]] = []
    _, errors = ts.parafac(
        x, 3, init=copy_cp(start), n_iter_max=6, tol=0, return_errors=True, callback=recorder(ours, 4, True)
    )
    _, ref_errors = tl_parafac(
        tl.tensor(dense), 3, init=copy_cp(start), n_iter_max=6, tol=0, return_errors=True,
        callback=recorder(theirs, 4, True),
    )
    assert len(ours) == len(theirs) == 4, "the start, then three iterations"
    assert len(errors) == len(ref_errors) == 3
    np.testing.assert_allclose([e for _, e in ours], [e for _, e in theirs], rtol=1e-8)
    for (model, _), (reference, _) in zip(ours, theirs):
        assert isinstance(model, CPTensor)
        np.testing.assert_allclose(tl.cp_to_tensor(model), tl.cp_to_tensor(reference), rtol=1e-8, atol=1e-10)

    truthy: list[tuple[Any, float]] = []
    ts.parafac(x, 3, n_iter_max=3, tol=0, callback=recorder(truthy, 2, 1))
    assert len(truthy) == 4, "only True stops, as in TensorLy"

    seen: list[Any] = []
    _, errors = ts.tucker(
        x, [2, 2, 2], n_iter_max=50, tol=0, return_errors=True,
        callback=lambda model, e: seen.append(model) or len(seen) == 2,
    )
    assert len(seen) == 2 and len(errors) == 2
    assert all(isinstance(m, TuckerTensor) for m in seen)


def test_verbose_prints_each_iteration_as_it_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, _ = lowrank(tmp_path)
    ts.parafac(x, 3, n_iter_max=3, tol=0, verbose=1, callback=lambda m, e: print("callback"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("starting model: reconstruction error=") and lines[1] == "callback"
    assert lines[2].startswith("iteration 1: reconstruction error=") and lines[3] == "callback"
    assert len(lines) == 8
    ts.tucker(x, [2, 2, 2], n_iter_max=2, tol=0, verbose=True)
    assert capsys.readouterr().out.splitlines()[1].startswith("iteration 2: reconstruction error=")


@pytest.mark.parametrize(("ours", "theirs"), [(ts.parafac, tl_parafac), (ts.tucker, tl_tucker)])
def test_signatures_are_tensorlys(ours: Any, theirs: Any) -> None:
    """TensorLy's parameters in TensorLy's order with TensorLy's defaults,
    so positional calls mean the same; ours only add keyword-only ones."""
    mine = list(inspect.signature(ours).parameters.values())
    reference = list(inspect.signature(theirs).parameters.values())
    positional = [p for p in mine if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in positional] == [(p.name, p.default) for p in reference]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in mine[len(positional) :])


@pytest.mark.parametrize(
    ("function", "argument"),
    [
        ("parafac", {"linesearch": True}),
        ("parafac", {"orthogonalise": 2}),
        ("parafac", {"sparsity": 0.1}),
        ("parafac", {"fixed_modes": [0]}),
        ("parafac", {"mask": np.ones((20, 18, 16))}),
        ("tucker", {"fixed_factors": [1]}),
        ("tucker", {"mask": np.ones((20, 18, 16))}),
    ],
)
def test_tensorlys_variants_are_refused_by_name(tmp_path: Path, function: str, argument: dict[str, Any]) -> None:
    x, _ = lowrank(tmp_path)
    (name,) = argument
    with pytest.raises(ts.errors.InvalidArgumentError, match=f"does not implement {name}="):
        getattr(ts, function)(x, 3, n_iter_max=2, **argument)
    # Their defaults are accepted.
    defaults = {"linesearch": False, "orthogonalise": 0, "sparsity": None, "fixed_modes": [], "mask": None, "fixed_factors": None}
    getattr(ts, function)(x, 3, n_iter_max=1, **{name: defaults[name]})


def test_convergence_criteria_stop_where_tensorlys_do(tmp_path: Path) -> None:
    """With l2_reg large enough that the error goes up: "rec_error" stops
    at the first increase, "abs_rec_error" once it settles, both on
    TensorLy's iteration with TensorLy's errors."""
    x, dense = lowrank(tmp_path)
    start = cp_start(dense.shape, 3)
    stopped = {}
    for cvg_criterion in ["abs_rec_error", "rec_error"]:
        options: dict[str, Any] = dict(
            n_iter_max=60, tol=1e-4, l2_reg=50.0, return_errors=True, cvg_criterion=cvg_criterion
        )
        _, errors = ts.parafac(x, 3, init=copy_cp(start), **options)
        _, ref_errors = tl_parafac(tl.tensor(dense), 3, init=copy_cp(start), **options)
        assert len(errors) == len(ref_errors) < 60, cvg_criterion
        np.testing.assert_allclose(errors, ref_errors, rtol=1e-8)
        stopped[cvg_criterion] = len(errors)
    assert stopped["rec_error"] < stopped["abs_rec_error"], stopped
    with pytest.raises(ts.errors.InvalidArgumentError, match="cvg_criterion 'relative'"):
        ts.parafac(x, 3, cvg_criterion="relative")


def test_callback_exceptions_are_raised(tmp_path: Path) -> None:
    x = ts.create(tmp_path / "x.zarr", (12, 10, 8), fill="lowrank:2:0.1", seed=7)

    def fail(model: Any, rec_error: float) -> None:
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        ts.tucker(x, [2, 2, 2], n_iter_max=5, callback=fail)
    with pytest.raises(RuntimeError, match="from the callback"):
        ts.parafac(x, 2, n_iter_max=5, callback=fail)


def test_tuples_without_tensorly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TensorLy the models are plain tuples, which TensorLy (and
    ``reconstruct``) still take."""
    x, dense = lowrank(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorly.cp_tensor", None)
    monkeypatch.setitem(sys.modules, "tensorly.tucker_tensor", None)
    cp = ts.parafac(x, 3, n_iter_max=5)
    tk = ts.tucker(x, [3, 3, 3], n_iter_max=2)
    assert type(cp) is ts.decomposition.CPModel and type(tk) is ts.decomposition.TuckerModel
    monkeypatch.undo()
    np.testing.assert_allclose(tl.cp_to_tensor(cp), ts.reconstruct(cp), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tl.tucker_to_tensor(tk), ts.reconstruct(tk), rtol=1e-10, atol=1e-12)
