"""The operations: create, einsum and friends, reductions, elementwise
maps, transposes, rechunks and checks, each out of core.

Results follow one rule: with ``out=PATH`` an array result is written to a
new store there and returned as an :class:`Array`; with ``out=None`` it
comes back as NumPy when it fits in the memory limit (else
:class:`~tenrso_ooc.errors.MemoryLimitError`, naming ``out=``); with
``out=`` a NumPy array it is copied into it. Scalar results are floats.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import operator
import os
import re
import shutil
import string
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _native
from ._array import Array, PathLike, _size
from ._progress import Progress, reporter
from ._session import Session, Size, resolve
from .errors import DTypeError, InvalidArgumentError, MemoryLimitError

Operand = Array | PathLike | np.ndarray[Any, Any]
"""An :class:`Array`, the path of a stored array, or an in-memory array
(written to a temporary store first)."""

Out = PathLike | np.ndarray[Any, Any] | None


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    """A temporary directory for operand copies and results on their way
    into NumPy, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="tenrso-ooc-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _float_dtype(values: np.ndarray[Any, Any]) -> np.dtype[Any]:
    if values.dtype in (np.float32, np.float64):
        kind: np.dtype[Any] = values.dtype
        return kind
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return np.dtype(np.float64)
    raise DTypeError(
        f"an in-memory operand of dtype {values.dtype}: tenrso-ooc computes in float32 or float64"
    )


def _opened(x: Any) -> Array | None:
    """`x` itself or opened from its path; None for an in-memory array."""
    if isinstance(x, Array):
        return x
    if _is_path(x):
        return Array(_native.Array.open(os.fspath(x), None))
    return None


def _stored(
    x: Any,
    scratch: Callable[[], str],
    session: Session,
    dtype: np.dtype[Any] | None = None,
    chunks: Sequence[int] | None = None,
) -> Array:
    """`x` as a stored array: itself, opened from a path, or an in-memory
    array copied into a temporary store (as `dtype` and `chunks` when
    given)."""
    opened = _opened(x)
    if opened is not None:
        return opened
    values = np.asarray(x)
    values = np.ascontiguousarray(values, dtype=dtype or _float_dtype(values))
    if values.ndim == 0:
        raise InvalidArgumentError("a 0-d operand: pass arrays with at least one axis")
    path = os.path.join(scratch(), f"operand-{id(values):x}.zarr")
    return from_numpy(path, values, chunks=chunks, compression="none", session=session)


class _Operands:
    """Operands made stored, their temporary copies removed on exit."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._stack = contextlib.ExitStack()
        self._dir: str | None = None

    def scratch(self) -> str:
        if self._dir is None:
            self._dir = self._stack.enter_context(_scratch())
        return self._dir

    def __call__(
        self, x: Any, dtype: np.dtype[Any] | None = None, chunks: Sequence[int] | None = None
    ) -> Array:
        return _stored(x, self.scratch, self._session, dtype, chunks)

    def __enter__(self) -> _Operands:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()


def _deliver(
    out: Out,
    session: Session,
    shape: Sequence[int] | None,
    itemsize: int,
    operands: _Operands,
    compute: Callable[[str], Any],
    what: str,
) -> Any:
    """Runs `compute(path)` and delivers its result as ``out=`` asks.

    `shape` is the array result's shape (None for a scalar result), checked
    against the memory limit before anything runs when it comes back to
    NumPy."""
    if out is not None and not isinstance(out, np.ndarray):
        return _wrap(compute(os.fspath(out)))
    _check_fits_numpy(shape, itemsize, session, what)
    result = _wrap(compute(os.path.join(operands.scratch(), "result.zarr")))
    if isinstance(result, Array):
        result = result.to_numpy(session=session)
    if isinstance(out, np.ndarray):
        out[...] = result
        return out
    return result


def _check_fits_numpy(
    shape: Sequence[int] | None, itemsize: int, session: Session, what: str
) -> None:
    """Refuses an array result of `shape` that would not fit in NumPy
    under the session's memory limit, before any work."""
    if shape is None:
        return
    nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize
    if nbytes > session.memory_limit:
        raise MemoryLimitError(
            f"the result of {what} holds {_size(nbytes)}, more than memory_limit= "
            f"({_size(session.memory_limit)}) allows in NumPy: give out='result.zarr' "
            "to write it to disk",
            limit=session.memory_limit,
            required=nbytes,
        )


def _wrap(value: Any) -> Any:
    return Array(value) if isinstance(value, _native.Array) else value


def create(
    path: PathLike,
    shape: Sequence[int],
    chunks: Sequence[int] | None = None,
    dtype: Any = "float64",
    *,
    fill: str = "zeros",
    seed: int = 0,
    compression: str = "zstd",
    shards: Sequence[int] | None = None,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Array:
    """Creates a Zarr v3 store at `path` (which must not exist).

    Args:
        shape: the extent of each axis.
        chunks: the chunk shape (default: about 8 MiB per chunk).
        dtype: ``float32`` or ``float64``.
        fill: ``zeros`` (written lazily), ``ones``, ``range``, ``uniform``,
            ``normal`` or ``lowrank:R[:NOISE]`` (a rank-R CP tensor plus
            relative noise), generated chunk by chunk under the limit.
        seed: the random generator's seed (same seed, same tensor).
        compression: ``none``, ``lz4``, ``zstd``, ``zstd:LEVEL``, or
            ``auto`` / ``auto:size``: each candidate measured on samples of
            the generated values and this disk's bandwidth, the fastest
            (or smallest) kept and the figures recorded in
            ``attrs["tenrso_codec_choice"]`` (not with ``fill="zeros"``,
            which writes nothing to measure).
        shards: the shard shape, in elements (a multiple of `chunks`).
    """
    s = resolve(session, memory_limit)
    kind = np.dtype(dtype)
    if kind not in (np.float32, np.float64):
        raise DTypeError(f"dtype={kind.name}: tenrso-ooc stores float32 or float64")
    with reporter(progress) as callback:
        native = _native.create(
            s._native,
            os.fspath(path),
            _extents(shape, "shape"),
            None if chunks is None else _extents(chunks, "chunks"),
            kind.name,
            compression,
            fill,
            seed,
            None if shards is None else _extents(shards, "shards"),
            callback,
        )
    return Array(native)


def from_numpy(
    path: PathLike,
    values: Any,
    *,
    chunks: Sequence[int] | None = None,
    compression: str = "zstd",
    session: Session | None = None,
    memory_limit: Size | None = None,
) -> Array:
    """Writes an in-memory array to a new store at `path`."""
    values = np.asarray(values)
    array = create(
        path,
        values.shape,
        chunks=chunks,
        dtype=_float_dtype(values),
        compression=compression,
        session=session,
        memory_limit=memory_limit,
    )
    array.write(..., values, session=session, memory_limit=memory_limit)
    return array


def _extents(values: Sequence[int], name: str) -> list[int]:
    """`values` as non-negative ints, else :class:`InvalidArgumentError`
    naming the argument."""
    try:
        extents = [operator.index(n) for n in values]
    except TypeError:
        raise InvalidArgumentError(f"{name}={values!r}: expected a sequence of ints") from None
    if any(n < 0 for n in extents):
        raise InvalidArgumentError(f"{name}={tuple(extents)}: extents cannot be negative")
    return extents


def _optimize(optimize: bool | str) -> str:
    if optimize is True:
        return "auto"
    if optimize is False:
        return "sequential"
    return optimize


def _einsum_operands(
    subscripts: str,
    operands: Sequence[Operand],
    out: Out,
    session: Session,
    stored: _Operands,
) -> tuple[list[Array], list[int], str | None]:
    """The stored operands, the result's shape, and where the engine
    writes an array result (``out=`` or a scratch store; None for a
    scalar); a NumPy result that cannot fit is refused here, before any
    operand is copied."""
    # In-memory operands compute in the dtype NumPy would promote to
    # (stored operands keep theirs); the engine chunks them to line up
    # with the stored operands that share their indices.
    opened = [_opened(x) for x in operands]
    dtypes: list[np.dtype[Any]] = []
    shapes: list[list[int]] = []
    for a, x in zip(opened, operands):
        if a is None:
            values = np.asarray(x)
            dtypes.append(_float_dtype(values))
            shapes.append(list(values.shape))
        else:
            dtypes.append(a.dtype)
            shapes.append(list(a.shape))
    common = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    known = [list(a.chunks) if a is not None else None for a in opened]
    shape, layout = _native.einsum_layout(
        session._native, subscripts, shapes, known, common.itemsize
    )
    arrays = [
        a if a is not None else stored(x, common, chunks)
        for a, x, chunks in zip(opened, operands, layout)
    ]
    target: str | None = None
    if shape:
        if out is not None and not isinstance(out, np.ndarray):
            target = os.fspath(out)
        else:
            what = f"einsum('{subscripts}')"
            _check_fits_numpy(shape, arrays[0].dtype.itemsize, session, what)
            target = os.path.join(stored.scratch(), "result.zarr")
    return arrays, shape, target


def einsum(
    subscripts: str,
    *operands: Operand,
    out: Out = None,
    optimize: bool | str = "auto",
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Any:
    """Evaluates an Einstein summation, as :func:`numpy.einsum` does,
    over operands of any size.

    Operands are :class:`Array`, paths of stored arrays, or in-memory
    arrays. ``optimize`` picks the contraction path: ``"auto"`` (default),
    ``"optimal"``, ``"greedy"``, ``"sequential"`` (or ``True``/``False``).
    The plan is checked against the memory limit before anything runs.

    >>> import numpy as np, tenrso_ooc as ts
    >>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
    >>> ts.einsum("ij,jk->ik", a, b)
    array([[ 3.,  3.],
           [12., 12.]])
    """
    s = resolve(session, memory_limit)
    with _Operands(s) as stored:
        arrays, shape, target = _einsum_operands(subscripts, operands, out, s, stored)
        natives = [a._native for a in arrays]
        itemsize = arrays[0].dtype.itemsize

        def compute(path: str) -> Any:
            with reporter(progress) as callback:
                return _native.einsum(
                    s._native, subscripts, natives, target, _optimize(optimize), callback
                )

        return _deliver(
            out, s, shape or None, itemsize, stored, compute, f"einsum('{subscripts}')"
        )


def einsum_path(
    subscripts: str,
    *operands: Operand,
    optimize: bool | str = "auto",
    session: Session | None = None,
    memory_limit: Size | None = None,
) -> tuple[list[Any], str]:
    """The contraction path an einsum would take, as
    :func:`numpy.einsum_path` gives it: ``(["einsum_path", (i, j), ...],
    text)``, the text the plan: each step's tiles, flops, bytes read,
    written and spilled, and the peak memory against the limit. Nothing
    is computed.

    >>> import numpy as np, tenrso_ooc as ts
    >>> a, b, c = np.ones((50, 40)), np.ones((40, 30)), np.ones((30, 2))
    >>> ts.einsum_path("ij,jk,kl->il", a, b, c)[0]
    ['einsum_path', (1, 2), (0, 1)]
    """
    s = resolve(session, memory_limit)
    with _Operands(s) as stored:
        arrays, _, target = _einsum_operands(subscripts, operands, None, s, stored)
        natives = [a._native for a in arrays]
        plan = json.loads(
            _native.einsum_path(s._native, subscripts, natives, _optimize(optimize), target)
        )
    live = list(range(len(operands)))
    path: list[Any] = ["einsum_path"]
    for number, step in enumerate(plan["steps"]):
        positions = tuple(sorted(live.index(k) for k in step["operands"]))
        path.append(positions)
        live = [k for k in live if k not in step["operands"]] + [len(operands) + number]
    return path, plan["text"]


def tensordot(
    a: Operand,
    b: Operand,
    axes: int | tuple[Sequence[int], Sequence[int]] = 2,
    **kw: Any,
) -> Any:
    """:func:`numpy.tensordot` as an einsum (same keywords as :func:`einsum`)."""
    ndim_a, ndim_b = _ndim(a), _ndim(b)
    if isinstance(axes, int):
        if not 0 <= axes <= builtins.min(ndim_a, ndim_b):
            raise InvalidArgumentError(
                f"tensordot axes={axes}: operands of {ndim_a} and {ndim_b} axes"
            )
        axes_a = list(range(ndim_a - axes, ndim_a))
        axes_b = list(range(axes))
    else:
        axes_a = [x % ndim_a if ndim_a else x for x in axes[0]]
        axes_b = [x % ndim_b if ndim_b else x for x in axes[1]]
    subscripts = _native.tensordot_subscripts(ndim_a, ndim_b, (axes_a, axes_b))
    return einsum(subscripts, a, b, **kw)


def matmul(a: Operand, b: Operand, **kw: Any) -> Any:
    """``a @ b`` as :func:`numpy.matmul` defines it (1-D operands promoted,
    leading axes as an equal batch shape), with :func:`einsum`'s keywords."""
    ndim_a, ndim_b = _ndim(a), _ndim(b)
    if ndim_a == 0 or ndim_b == 0:
        raise InvalidArgumentError("matmul: operands need at least one axis")
    batch = string.ascii_lowercase[: builtins.max(ndim_a, ndim_b) - 2]
    i, j, k = "xyz"
    sa = (batch[len(batch) - (ndim_a - 2) :] if ndim_a > 2 else "") + (i + j if ndim_a > 1 else j)
    sb = (batch[len(batch) - (ndim_b - 2) :] if ndim_b > 2 else "") + (j + k if ndim_b > 1 else j)
    result = batch + (i if ndim_a > 1 else "") + (k if ndim_b > 1 else "")
    return einsum(f"{sa},{sb}->{result}", a, b, **kw)


def _ndim(x: Any) -> int:
    if isinstance(x, Array):
        return x.ndim
    if _is_path(x):
        return len(_native.Array.open(os.fspath(x), None).shape)
    return int(np.ndim(x))


def _axes(axis: int | Sequence[int] | None, ndim: int) -> list[int] | None:
    if axis is None:
        return None
    axes = [axis] if isinstance(axis, int) else list(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise InvalidArgumentError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        normalized.append(a % ndim)
    if len(set(normalized)) != len(normalized):
        raise InvalidArgumentError(f"axis {axis}: an axis is repeated")
    return sorted(normalized)


def _reduce(
    op: str,
    x: Operand,
    axis: int | Sequence[int] | None,
    out: Out,
    keepdims: bool,
    session: Session | None,
    memory_limit: Size | None,
    progress: Progress,
) -> Any:
    s = resolve(session, memory_limit)
    with _Operands(s) as stored:
        array = stored(x)
        axes = _axes(axis, array.ndim)
        if axes is not None and len(axes) == array.ndim:
            axes = None
        shape = None if axes is None else [n for k, n in enumerate(array.shape) if k not in axes]
        if keepdims and out is not None and not isinstance(out, np.ndarray):
            raise InvalidArgumentError("keepdims=True applies to NumPy results, not to out=PATH")

        def compute(path: str) -> Any:
            with reporter(progress) as callback:
                return _native.reduce(
                    s._native, op, array._native, axes, None if axes is None else path, callback
                )

        result = _deliver(
            None if keepdims else out,
            s,
            shape,
            array.dtype.itemsize,
            stored,
            compute,
            f"{op}(axis={axis})",
        )
        if keepdims:
            kept = np.reshape(
                result, [1 if axes is None or k in axes else n for k, n in enumerate(array.shape)]
            )
            if isinstance(out, np.ndarray):
                out[...] = kept
                return out
            return kept
        return result


def _reduction(op: str, doc: str) -> Callable[..., Any]:
    def reduction(
        x: Operand,
        axis: int | Sequence[int] | None = None,
        *,
        out: Out = None,
        keepdims: bool = False,
        session: Session | None = None,
        memory_limit: Size | None = None,
        progress: Progress = False,
    ) -> Any:
        return _reduce(op, x, axis, out, keepdims, session, memory_limit, progress)

    reduction.__name__ = reduction.__qualname__ = op
    reduction.__doc__ = (
        f"{doc} of `x` over `axis` (all axes when None): a float, or an array "
        "as ``out=`` asks (see the module's rule); ``keepdims`` as in NumPy."
    )
    return reduction


sum = _reduction("sum", "The sum")  # noqa: A001
mean = _reduction("mean", "The mean")
min = _reduction("min", "The minimum")  # noqa: A001
max = _reduction("max", "The maximum")  # noqa: A001
norm = _reduction("norm", "The Euclidean (Frobenius) norm")


_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*")


def _named_operands(
    expr: str, x: Operand | None, y: Operand | None, named: dict[str, Operand]
) -> tuple[str, Operand, Operand | None]:
    """`expr` in the engine's ``x``/``y`` and the operands for them: `x`
    and `y` as given, or up to two ``name=operand`` keywords (each name
    in `expr` becomes ``x`` or ``y``, in the keywords' order)."""
    if not named:
        if x is None:
            raise InvalidArgumentError(f"map('{expr}'): give the operand x")
        return expr, x, y
    if x is not None or y is not None:
        raise InvalidArgumentError("map: give operands as x, y or by name, not both")
    if len(named) > 2:
        raise InvalidArgumentError(
            f"map: {len(named)} named operands ({', '.join(named)}); "
            "an expression takes one or two"
        )
    engine = dict(zip(named, ["x", "y"]))
    rewritten = _NAME.sub(lambda m: engine.get(m.group(0), m.group(0)), expr)
    operands = list(named.values())
    return rewritten, operands[0], operands[1] if len(operands) > 1 else None


def map(  # noqa: A001
    expr: str,
    x: Operand | None = None,
    y: Operand | None = None,
    *,
    out: Out = None,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
    **named: Operand,
) -> Any:
    """Evaluates the elementwise expression `expr` in ``x`` (and ``y``,
    of the same shape), e.g. ``"x * 2 + 1"``, ``"sqrt(x) - y"``,
    ``"max(x, 0)"``; or in one or two operands given by name.

    Expressions have ``+ - * /``, ``^`` or ``**``, parentheses, numbers,
    ``pi``, ``e``, the functions ``sqrt abs exp log log2 log10 sin cos tan
    tanh floor ceil`` and ``pow min max`` of two arguments (the CLI's
    ``map`` language); they compute in float64.

    >>> import numpy as np, tenrso_ooc as ts
    >>> ts.map("x * 2 + y", np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    array([12., 24.])
    >>> ts.map("temp - offset", temp=np.array([300.0, 310.0]), offset=np.full(2, 273.0))
    array([27., 37.])
    """
    expr, x, y = _named_operands(expr, x, y, named)
    s = resolve(session, memory_limit)
    with _Operands(s) as stored:
        xa = stored(x)
        ya = stored(y) if y is not None else None

        def compute(path: str) -> Any:
            with reporter(progress) as callback:
                return _native.map(
                    s._native, expr, xa._native, None if ya is None else ya._native, path, callback
                )

        return _deliver(out, s, xa.shape, xa.dtype.itemsize, stored, compute, f"map('{expr}')")


def transpose(
    x: Operand,
    axes: Sequence[int] | None = None,
    *,
    out: Out = None,
    chunks: Sequence[int] | None = None,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Any:
    """Permutes the axes of `x` (reversed when `axes` is None), as
    :func:`numpy.transpose` does; ``chunks`` is the result's chunk shape
    (default: the permuted chunks of `x`)."""
    s = resolve(session, memory_limit)
    with _Operands(s) as stored:
        array = stored(x)
        order = list(range(array.ndim))[::-1] if axes is None else [a % array.ndim for a in axes]
        shape = [array.shape[a] for a in order] if len(order) == array.ndim else None

        def compute(path: str) -> Any:
            with reporter(progress) as callback:
                return _native.transpose(
                    s._native,
                    array._native,
                    order,
                    path,
                    None if chunks is None else [int(n) for n in chunks],
                    callback,
                )

        return _deliver(
            out, s, shape or [], array.dtype.itemsize, stored, compute, f"transpose({order})"
        )


def rechunk(
    x: Operand,
    chunks: Sequence[int],
    out: PathLike,
    *,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Array:
    """Copies `x` into a new store at `out` with chunk shape `chunks`,
    under the memory limit however the chunk shapes cross."""
    s = resolve(session, memory_limit)
    with _Operands(s) as stored:
        array = stored(x)
        with reporter(progress) as callback:
            native = _native.rechunk(
                s._native, array._native, [int(n) for n in chunks], os.fspath(out), callback
            )
    return Array(native)


@dataclass(frozen=True)
class BadChunk:
    """A chunk that failed :func:`verify`."""

    chunk: list[int]
    key: str
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found."""

    ok: bool
    chunks_total: int
    chunks_stored: int
    bytes_checked: int
    has_checksum: bool
    bad_chunks: list[BadChunk]

    def __bool__(self) -> bool:
        return self.ok


def verify(
    x: Array | PathLike,
    *,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> VerifyReport:
    """Reads and checks every chunk of `x` (checksums and decoding); the
    report lists the bad ones. Truthy when every chunk is good."""
    s = resolve(session, memory_limit)
    array = x if isinstance(x, Array) else Array(_native.Array.open(os.fspath(x), None))
    with reporter(progress) as callback:
        report = json.loads(_native.verify(s._native, array._native, callback))
    bad = [BadChunk(**b) for b in report.pop("bad_chunks")]
    return VerifyReport(bad_chunks=bad, **report)
