"""Files in and out of stores: ``.npy``, raw binary, Arrow IPC and Parquet
(``arrow.fixed_shape_tensor`` columns), streamed chunk by chunk under the
memory limit. Any of these files can also be read in place with
:func:`tenrso_ooc.open`; importing pays off when it is read many times."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _native
from ._array import Array, PathLike
from ._progress import Progress, reporter
from ._session import Session, Size, resolve


def import_file(
    src: PathLike,
    out: PathLike,
    *,
    chunks: Sequence[int] | None = None,
    compression: str = "zstd",
    shards: Sequence[int] | None = None,
    raw_shape: Sequence[int] | None = None,
    raw_dtype: Any = None,
    columns: Sequence[str] | None = None,
    resume: bool = False,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> Array:
    """Copies the file `src` into a new Zarr v3 store at `out`.

    `src` is a ``.npy`` file, an Arrow IPC file or stream, a Parquet file,
    or a raw little-endian file (then give ``raw_shape`` and
    ``raw_dtype``). ``columns`` picks and orders the tensor columns of a
    table; ``resume=True`` finishes an interrupted import.
    ``compression`` is ``none``, ``lz4``, ``zstd[:LEVEL]``, or ``auto`` /
    ``auto:size`` to measure the candidates on samples of the source and
    this disk's bandwidth and keep the fastest (or smallest), recorded in
    ``attrs["tenrso_codec_choice"]``.

    >>> import numpy as np, tenrso_ooc as ts, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "x.npy"), np.arange(12.0).reshape(3, 4))
    >>> x = ts.import_file(os.path.join(d, "x.npy"), os.path.join(d, "x.zarr"), chunks=(2, 2))
    >>> x.chunks, float(x.sum())
    ((2, 2), 66.0)
    """
    s = resolve(session, memory_limit)
    with reporter(progress) as callback:
        native = _native.import_file(
            s._native,
            os.fspath(src),
            os.fspath(out),
            None if chunks is None else [int(n) for n in chunks],
            compression,
            None if shards is None else [int(n) for n in shards],
            None if raw_shape is None else [int(n) for n in raw_shape],
            None if raw_dtype is None else np.dtype(raw_dtype).name,
            None if columns is None else list(columns),
            resume,
            callback,
        )
    return Array(native)


def export_file(
    x: Array | PathLike,
    out: PathLike,
    *,
    compression: str | None = None,
    row_group_rows: int | None = None,
    columns: Sequence[str] | None = None,
    session: Session | None = None,
    memory_limit: Size | None = None,
    progress: Progress = False,
) -> None:
    """Writes `x` to the file `out`, its format chosen by the extension:
    ``.npy``, ``.arrow``/``.arrows``/``.ipc``/``.feather`` (Arrow IPC),
    ``.parquet``, else raw little-endian bytes. For Arrow and Parquet, the
    first axis is the rows of one ``fixed_shape_tensor`` column; with
    ``columns`` a 2-d array is written as a table of numeric columns with
    these names instead. ``compression`` is the buffers' or pages' codec
    (default: none for IPC, read zero-copy; zstd for Parquet),
    ``row_group_rows`` the rows of each record batch or row group
    (default: sized from the memory limit)."""
    s = resolve(session, memory_limit)
    array = x if isinstance(x, Array) else Array(_native.Array.open(os.fspath(x), None))
    with reporter(progress) as callback:
        _native.export_file(
            s._native,
            array._native,
            os.fspath(out),
            compression,
            row_group_rows,
            None if columns is None else list(columns),
            callback,
        )
