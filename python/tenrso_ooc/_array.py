"""`Array`: a stored tensor (a Zarr v3 store, or a ``.npy``, Arrow IPC or
Parquet file) read and written through NumPy indexing."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _indexing, _native
from ._session import Session, Size, resolve
from .errors import MemoryLimitError

PathLike = str | os.PathLike[str]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Attributes(MutableMapping[str, Any]):
    """The user attributes of a store (``zarr.json``), JSON values.

    Each change rewrites the metadata atomically; the chunks are untouched.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.Array) -> None:
        self._native = native

    def _all(self) -> dict[str, Any]:
        return dict(json.loads(self._native.attributes_json()))

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._native.set_attribute_json(key, json.dumps(value))

    def __delitem__(self, key: str) -> None:
        if not self._native.remove_attribute(key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"Attributes({self._all()!r})"


class Array:
    """A tensor on disk, larger than memory if need be.

    Open one with :func:`tenrso_ooc.open` or make one with
    :func:`tenrso_ooc.create` / :func:`tenrso_ooc.from_numpy`. Indexing
    with integers, slices (any step), ``None`` and ``...`` reads just the
    chunks it touches into NumPy; assigning to an index writes them.
    ``np.asarray(a)`` reads the whole array when it fits in the memory
    limit and raises :class:`~tenrso_ooc.errors.MemoryLimitError`
    otherwise.

    >>> import numpy as np, tenrso_ooc as ts, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.zarr")
    >>> a = ts.create(path, (4, 6), chunks=(2, 3), fill="range")
    >>> a[1, ::2]
    array([ 6.,  8., 10.])
    >>> a[0] = -1
    >>> float(a.sum())  # 0 + 1 + ... + 23, less row 0 (15), plus 6 x -1
    255.0
    """

    __slots__ = ("_native", "__weakref__")

    def __init__(self, native: _native.Array) -> None:
        self._native = native

    @property
    def shape(self) -> tuple[int, ...]:
        """The extent of each axis."""
        return tuple(self._native.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The shape of one chunk (of one row slab for columnar files)."""
        return tuple(self._native.chunks)

    @property
    def dtype(self) -> np.dtype[Any]:
        """``float32`` or ``float64``."""
        return np.dtype(self._native.dtype)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self._native.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the elements, uncompressed."""
        return self._native.nbytes

    @property
    def nbytes_stored(self) -> int:
        """Bytes the array takes on disk."""
        return self._native.nbytes_stored()

    @property
    def nchunks(self) -> int:
        """Number of chunks in the grid."""
        return self._native.nchunks

    @property
    def nchunks_initialized(self) -> int:
        """Number of chunks written (the rest read as the fill value)."""
        return self._native.nchunks_initialized()

    @property
    def path(self) -> Path:
        """The store's directory or the file."""
        return Path(self._native.path)

    @property
    def attrs(self) -> Attributes:
        """User attributes (a mutable mapping of JSON values)."""
        return Attributes(self._native)

    @property
    def info(self) -> str:
        """Shape, chunks, dtype, codecs and sizes, as text."""
        return (
            f"Path        : {self.path}\n"
            f"Shape       : {self.shape}\n"
            f"Chunks      : {self.chunks} ({self.nchunks} chunks, "
            f"{self.nchunks_initialized} written)\n"
            f"Dtype       : {self.dtype}\n"
            f"Storage     : {self._native.describe()}\n"
            f"No. bytes   : {self.nbytes} ({_size(self.nbytes)})\n"
            f"Bytes stored: {self.nbytes_stored} ({_size(self.nbytes_stored)})\n"
        )

    def cached(
        self, capacity: Size = "256MiB", *, policy: str = "arc", prefetch: int = 2
    ) -> Array:
        """This array read through a cache of decoded chunks, for slicing
        loops that come back to the same chunks.

        Args:
            capacity: the most bytes of decoded chunks held (on top of the
                session's memory limit, which bounds each read).
            policy: which chunk to drop when full: ``arc`` (the Adaptive
                Replacement Cache: best over the recorded traces),
                ``learned`` (LRU and LFU weighed online by their mistakes:
                best where frequency matters, e.g. skewed random tiles),
                ``lru`` or ``lfu``.
            prefetch: regions to predict ahead (a constant step between
                reads, or what followed last time) and load in the
                background; 0 turns prediction off.

        The cached array is read-only; ``cache_stats()`` counts hits,
        misses, prefetches and correct predictions.

        >>> import numpy as np, tenrso_ooc as ts, tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> x = ts.from_numpy(os.path.join(d, "x.zarr"), np.arange(4096.0).reshape(64, 64), chunks=(16, 64))
        >>> c = x.cached("1MiB", prefetch=0)
        >>> total = sum(float(c[i:i + 4].sum()) for i in range(0, 64, 4))
        >>> total == float(np.arange(4096.0).sum()), c.cache_stats()["misses"]
        (True, 4)
        """
        return Array(self._native.cached(capacity, policy, prefetch))

    def cache_stats(self) -> dict[str, int] | None:
        """The counters of a cached array (``None`` for one without a cache)."""
        return self._native.cache_stats()

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def read(
        self,
        key: Any = ...,
        *,
        session: Session | None = None,
        memory_limit: Size | None = None,
    ) -> np.ndarray[Any, Any]:
        """``a[key]``, in a given session or under a given memory limit."""
        selection, finish = _indexing.normalize(key, self.shape)
        native = resolve(session, memory_limit)._native
        if any(count == 0 for _, _, count in selection):
            values = np.empty([c for _, _, c in selection], dtype=self.dtype)
        else:
            values = self._native.read(native, selection)
        result: np.ndarray[Any, Any] = values[finish]
        return result

    def write(
        self,
        key: Any,
        value: Any,
        *,
        session: Session | None = None,
        memory_limit: Size | None = None,
    ) -> None:
        """``a[key] = value``, in a given session or under a memory limit."""
        selection, finish = _indexing.normalize(key, self.shape)
        counts = [c for _, _, c in selection]
        if 0 in counts:
            return
        values = np.empty(counts, dtype=self.dtype)
        values[finish] = value
        self._native.write(resolve(session, memory_limit)._native, selection, values)

    def __getitem__(self, key: Any) -> np.ndarray[Any, Any]:
        return self.read(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.write(key, value)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        if copy is False:
            raise ValueError("a stored array cannot be viewed without a copy (copy=False)")
        values = self.to_numpy()
        return values if dtype is None else values.astype(dtype, copy=False)

    def to_numpy(
        self, *, session: Session | None = None, memory_limit: Size | None = None
    ) -> np.ndarray[Any, Any]:
        """The whole array in memory; :class:`MemoryLimitError` when it
        does not fit in the memory limit."""
        limit = resolve(session, memory_limit).memory_limit
        if self.nbytes > limit:
            raise MemoryLimitError(
                f"{self.path} holds {_size(self.nbytes)}, more than memory_limit= "
                f"({_size(limit)}): read a region (a[i:j]) or raise memory_limit=",
                limit=limit,
                required=self.nbytes,
            )
        return np.asarray(self.read(..., session=session, memory_limit=memory_limit))

    # Operations as methods; see the module functions for the arguments.
    def sum(self, axis: Any = None, **kw: Any) -> Any:
        """:func:`tenrso_ooc.sum` of this array."""
        from . import _ops

        return _ops.sum(self, axis, **kw)

    def mean(self, axis: Any = None, **kw: Any) -> Any:
        """:func:`tenrso_ooc.mean` of this array."""
        from . import _ops

        return _ops.mean(self, axis, **kw)

    def min(self, axis: Any = None, **kw: Any) -> Any:
        """:func:`tenrso_ooc.min` of this array."""
        from . import _ops

        return _ops.min(self, axis, **kw)

    def max(self, axis: Any = None, **kw: Any) -> Any:
        """:func:`tenrso_ooc.max` of this array."""
        from . import _ops

        return _ops.max(self, axis, **kw)

    def norm(self, axis: Any = None, **kw: Any) -> Any:
        """:func:`tenrso_ooc.norm` of this array."""
        from . import _ops

        return _ops.norm(self, axis, **kw)

    def transpose(self, *axes: Any, **kw: Any) -> Any:
        """:func:`tenrso_ooc.transpose` of this array."""
        from . import _ops

        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0]) if axes[0] is not None else ()
        return _ops.transpose(self, axes or None, **kw)

    def rechunk(self, chunks: Any, out: PathLike, **kw: Any) -> Array:
        """:func:`tenrso_ooc.rechunk` of this array."""
        from . import _ops

        return _ops.rechunk(self, chunks, out, **kw)

    def verify(self, **kw: Any) -> Any:
        """:func:`tenrso_ooc.verify` of this array."""
        from . import _ops

        return _ops.verify(self, **kw)

    def __matmul__(self, other: Any) -> Any:
        from . import _ops

        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        from . import _ops

        return _ops.matmul(other, self)

    def __repr__(self) -> str:
        return (
            f"<tenrso_ooc.Array {self.path} shape={self.shape} dtype={self.dtype} "
            f"chunks={self.chunks} {_size(self.nbytes)}>"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("Path", str(self.path)),
            ("Shape", str(self.shape)),
            ("Chunks", f"{self.chunks} ({self.nchunks} chunks)"),
            ("Dtype", str(self.dtype)),
            ("Storage", self._native.describe()),
            ("Size", _size(self.nbytes)),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>tenrso_ooc.Array</caption>{body}</table>"


def open(path: PathLike, *, columns: list[str] | None = None) -> Array:  # noqa: A001
    """Opens a Zarr v3 store, a ``.npy`` file, or an Arrow IPC / Parquet
    file (``columns=`` picks and orders the columns of a table)."""
    return Array(_native.Array.open(os.fspath(path), columns))
