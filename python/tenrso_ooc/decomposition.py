"""CP (``parafac``) and Tucker decompositions of tensors larger than
memory, with TensorLy's signatures and results.

The tensor is streamed from disk under the memory limit (held in memory
across passes when it takes at most half of it). Results are TensorLy's
``CPTensor`` / ``TuckerTensor`` when TensorLy is installed, else tuples of
the same shape (``weights, factors`` / ``core, factors``), and match
TensorLy's iterates: same initialisation (``init="svd"``), same updates,
the same per-iteration errors to about 1e-12, and ``callback(model,
rec_error)`` called as TensorLy calls it (for ``parafac`` also once with
the starting model; returning ``True`` stops).

Where it differs from TensorLy: ``random_state`` seeds tenrso-ooc's own
generator, so ``init="random"`` starts elsewhere than TensorLy's; ``svd`` is
always the streamed truncated SVD; ``parafac``'s first callback (the
starting model's error) costs one pass over the tensor; ``tucker`` takes a
``callback`` too (TensorLy's has none); TensorLy's variants ``orthogonalise``,
``sparsity``, ``mask``, ``fixed_modes``, ``linesearch`` (``parafac``) and
``fixed_factors``, ``mask`` (``tucker``) are refused with
:class:`~tenrso_ooc.errors.InvalidArgumentError` unless left at their
defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _native
from ._array import Array, PathLike
from ._ops import Out, _deliver, _Operands
from ._progress import Progress, reporter
from ._session import Session, Size, resolve
from .errors import InvalidArgumentError



def _tensorly_classes() -> tuple[Any, Any]:
    """TensorLy's ``(CPTensor, TuckerTensor)``, or Nones where TensorLy is
    not installed; imported on first use (TensorLy brings SciPy, tens of
    MiB that ``import tenrso_ooc`` need not pay)."""
    try:
        from tensorly.cp_tensor import CPTensor  # type: ignore[import-untyped]
        from tensorly.tucker_tensor import TuckerTensor  # type: ignore[import-untyped]
    except ImportError:  # TensorLy is optional
        return None, None
    return CPTensor, TuckerTensor


class CPModel(NamedTuple):
    """A CP model where TensorLy is not installed: ``(weights, factors)``."""

    weights: np.ndarray[Any, Any]
    factors: list[np.ndarray[Any, Any]]


class TuckerModel(NamedTuple):
    """A Tucker model where TensorLy is not installed: ``(core, factors)``."""

    core: np.ndarray[Any, Any]
    factors: list[np.ndarray[Any, Any]]


IterationCallback = Callable[[Any, float], Any]
"""TensorLy's ``callback(model, rec_error)``: returning ``True`` stops."""


def _seed(random_state: Any) -> int:
    if random_state is None:
        return 0
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    raise InvalidArgumentError(
        f"random_state={random_state!r}: expected None, an int or a NumPy generator"
    )


def _factors(factors: Sequence[Any]) -> list[np.ndarray[Any, Any]]:
    return [np.ascontiguousarray(f, dtype=np.float64) for f in factors]


def _cp(weights: Any, factors: list[np.ndarray[Any, Any]]) -> Any:
    weights = np.asarray(weights, dtype=np.float64)
    cp_tensor, _ = _tensorly_classes()
    if cp_tensor is not None:
        return cp_tensor((weights, factors))
    return CPModel(weights, factors)


def _tucker_model(core: Any, factors: list[np.ndarray[Any, Any]]) -> Any:
    _, tucker_tensor = _tensorly_classes()
    if tucker_tensor is not None:
        return tucker_tensor((core, factors))
    return TuckerModel(core, factors)


def _native_callback(
    callback: IterationCallback | None,
    model: Callable[[Any, list[np.ndarray[Any, Any]]], Any],
    verbose: int,
) -> Callable[[Any, list[np.ndarray[Any, Any]], float, int], bool] | None:
    """The native layer's ``(first, factors, rec_error, iteration)`` hook:
    prints the iteration's error when ``verbose`` (as it ends, not after
    the run), and calls ``callback(model, rec_error)``, where only ``True``
    stops, as in TensorLy."""
    if callback is None and not verbose:
        return None

    def call(first: Any, factors: list[np.ndarray[Any, Any]], rec_error: float, iteration: int) -> bool:
        if verbose:
            what = "starting model" if iteration == 0 else f"iteration {iteration}"
            print(f"{what}: reconstruction error={rec_error:.10g}", flush=True)
        return callback is not None and callback(model(first, factors), rec_error) is True

    return call


def _refuse_variants(function: str, **given: Any) -> None:
    """TensorLy's variants of the algorithm that tenrso-ooc does not
    implement: refused by name unless left at their defaults (None, False,
    0 or empty), rather than silently ignored."""
    for name, value in given.items():
        if value is None or (isinstance(value, (bool, int, float, list, tuple)) and not value):
            continue
        raise InvalidArgumentError(
            f"{function}({name}={value!r}): tenrso-ooc does not implement {name}= "
            f"(TensorLy's in-memory {function} does); leave it at its default"
        )


def _check_svd(svd: str) -> None:
    if svd != "truncated_svd":
        raise InvalidArgumentError(f"svd='{svd}': tenrso-ooc computes the truncated SVD only")


def _finish(model: Any, run: dict[str, Any], return_errors: bool, verbose: int) -> Any:
    errors = [i["rec_error"] for i in run["iterations"]]
    if verbose:
        if run["converged"]:
            print(f"converged in {len(errors)} iterations")
    return (model, errors) if return_errors else model


def parafac(
    tensor: Array | PathLike | np.ndarray[Any, Any],
    rank: int,
    n_iter_max: int = 100,
    init: str | Any = "svd",
    svd: str = "truncated_svd",
    normalize_factors: bool = False,
    orthogonalise: bool | int = False,
    tol: float = 1e-8,
    random_state: Any = None,
    verbose: int = 0,
    return_errors: bool = False,
    sparsity: float | int | None = None,
    l2_reg: float = 0,
    mask: Any = None,
    cvg_criterion: str = "abs_rec_error",
    fixed_modes: Sequence[int] | None = None,
    svd_mask_repeats: int = 5,
    linesearch: bool = False,
    callback: IterationCallback | None = None,
    *,
    checkpoint: PathLike | None = None,
    resume: bool = False,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Any:
    """CP decomposition by alternating least squares, as TensorLy's
    ``tensorly.decomposition.parafac``.

    Args:
        tensor: a stored array, its path, or an in-memory array.
        rank: number of components.
        init: ``"svd"``, ``"random"``, or a CP model ``(weights, factors)``
            to start from.
        tol: stop when the reconstruction error changes by less than this
            (``cvg_criterion="abs_rec_error"``), or goes down by less
            (``"rec_error"``).
        return_errors: also return the error after each iteration.
        orthogonalise, sparsity, mask, fixed_modes, linesearch: TensorLy's
            in-memory variants, refused here unless left at their
            defaults (``svd_mask_repeats`` only matters with a mask).
        callback: ``callback(model, rec_error)``, TensorLy's: called with
            the starting model, then after each iteration; returning
            ``True`` stops the run with that iteration's model.
        checkpoint: write the model to this directory after every
            iteration; with ``resume=True`` continue from it (bitwise the
            same result as an uninterrupted run).

    >>> import numpy as np, tenrso_ooc as ts
    >>> from tenrso_ooc.decomposition import parafac
    >>> rng = np.random.default_rng(0)
    >>> a, b, c = rng.random((8, 2)), rng.random((9, 2)), rng.random((10, 2))
    >>> x = np.einsum("ir,jr,kr->ijk", a, b, c)
    >>> cp, errors = parafac(x, rank=2, n_iter_max=200, tol=0, return_errors=True)
    >>> errors[-1] < 1e-6
    True
    """
    _check_svd(svd)
    _refuse_variants(
        "parafac",
        orthogonalise=orthogonalise,
        sparsity=sparsity,
        mask=mask,
        fixed_modes=fixed_modes,
        linesearch=linesearch,
    )
    s = resolve(session, memory_limit)
    given_weights: list[float] | None = None
    given_factors: list[np.ndarray[Any, Any]] | None = None
    if isinstance(init, str):
        mode = init
    else:
        weights, factors = init
        mode, given_factors = "given", _factors(factors)
        given_weights = None if weights is None else [float(w) for w in np.ravel(weights)]
    with _Operands(s) as operands, reporter(progress) as bar:
        x = operands(tensor)
        weights, factors, run = _native.parafac(
            s._native,
            x._native,
            rank=rank,
            n_iter_max=n_iter_max,
            init=mode,
            init_weights=given_weights,
            init_factors=given_factors,
            tol=tol,
            cvg_criterion=cvg_criterion,
            seed=_seed(random_state),
            normalize_factors=normalize_factors,
            l2_reg=l2_reg,
            checkpoint=None if checkpoint is None else os.fspath(checkpoint),
            resume=resume,
            callback=_native_callback(callback, _cp, verbose),
            report_initial=callback is not None,
            progress_callback=bar,
        )
    return _finish(_cp(weights, factors), json.loads(run), return_errors, verbose)


def tucker(
    tensor: Array | PathLike | np.ndarray[Any, Any],
    rank: int | Sequence[int],
    fixed_factors: Sequence[int] | None = None,
    n_iter_max: int = 100,
    init: str | Any = "svd",
    return_errors: bool = False,
    svd: str = "truncated_svd",
    tol: float = 1e-4,
    random_state: Any = None,
    mask: Any = None,
    verbose: bool = False,
    *,
    callback: IterationCallback | None = None,
    checkpoint: PathLike | None = None,
    resume: bool = False,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Any:
    """Tucker decomposition by HOOI, as TensorLy's
    ``tensorly.decomposition.tucker``: ``rank`` is one rank per mode (an
    int for all), ``init`` ``"svd"``, ``"random"``, a model
    ``(core, factors)`` or the factors alone (HOOI computes the core in its
    first iteration); ``callback(model, rec_error)`` after each
    iteration (``True`` stops; keyword-only, TensorLy's ``tucker`` has
    none); ``fixed_factors`` and ``mask`` refused unless None; the other
    arguments as :func:`parafac`."""
    _check_svd(svd)
    _refuse_variants("tucker", fixed_factors=fixed_factors, mask=mask)
    s = resolve(session, memory_limit)
    given_core = None
    given_factors = None
    if isinstance(init, str):
        mode = init
    elif isinstance(init, tuple) or type(init).__name__ == "TuckerTensor":
        core, factors = init
        mode = "given"
        given_core = np.ascontiguousarray(core, dtype=np.float64)
        given_factors = _factors(factors)
    else:  # TensorLy's third form: the factors alone
        mode = "given"
        given_factors = _factors(init)
    with _Operands(s) as operands, reporter(progress) as bar:
        x = operands(tensor)
        ranks = [int(rank)] * x.ndim if isinstance(rank, (int, np.integer)) else list(rank)
        core, factors, run = _native.tucker(
            s._native,
            x._native,
            ranks=ranks,
            n_iter_max=n_iter_max,
            init=mode,
            init_core=given_core,
            init_factors=given_factors,
            tol=tol,
            seed=_seed(random_state),
            checkpoint=None if checkpoint is None else os.fspath(checkpoint),
            resume=resume,
            callback=_native_callback(callback, _tucker_model, int(verbose)),
            progress_callback=bar,
        )
    return _finish(_tucker_model(core, factors), json.loads(run), return_errors, int(verbose))


def reconstruct(
    model: Any,
    out: Out = None,
    *,
    chunks: Sequence[int] | None = None,
    dtype: Any = "float64",
    compression: str = "zstd",
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Any:
    """The full tensor of a CP model ``(weights, factors)`` or a Tucker
    model ``(core, factors)`` (TensorLy's or ours), written chunk by chunk:
    NumPy when it fits and ``out`` is None, else a store at ``out``."""
    first, factors = model
    factors = _factors(factors)
    first = np.asarray(first, dtype=np.float64)
    is_tucker = (
        first.ndim != 1
        or isinstance(model, TuckerModel)
        or type(model).__name__ == "TuckerTensor"
    )
    s = resolve(session, memory_limit)
    shape = [f.shape[0] for f in factors]
    itemsize = np.dtype(dtype).itemsize

    def compute(path: str) -> Any:
        with reporter(progress) as bar:
            return _native.reconstruct(
                s._native,
                None if is_tucker else [float(w) for w in np.ravel(first)],
                np.ascontiguousarray(first) if is_tucker else None,
                factors,
                path,
                None if chunks is None else [int(n) for n in chunks],
                np.dtype(dtype).name,
                compression,
                bar,
            )

    with _Operands(s) as operands:
        return _deliver(out, s, shape, itemsize, operands, compute, "reconstruct")


__all__ = ["CPModel", "TuckerModel", "parafac", "reconstruct", "tucker"]
