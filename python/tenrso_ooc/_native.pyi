# The native module built from crates/tenrso-ooc-py (checked against the
# built module by `python -m mypy.stubtest tenrso_ooc._native`).
from collections.abc import Callable, Sequence
from typing import Any, final

import numpy as np

__version__: str
__all__ = [
    "Session",
    "Array",
    "create",
    "reduce",
    "einsum",
    "einsum_path",
    "einsum_layout",
    "map",
    "transpose",
    "rechunk",
    "verify",
    "parafac",
    "tucker",
    "reconstruct",
    "tensordot_subscripts",
    "import_file",
    "export_file",
    "__version__",
]

_ProgressCallback = Callable[[str, int, int], Any]
# (weights or core, factors, rec_error, iteration) -> True to stop
_ModelCallback = Callable[[np.ndarray[Any, Any], list[np.ndarray[Any, Any]], float, int], Any]
_Selection = Sequence[tuple[int, int, int]]

@final
class Session:
    def __new__(
        cls,
        memory_limit: int | str | None = None,
        threads: int | None = None,
        spill_dirs: Sequence[str] | None = None,
        spill_codec: str | None = None,
        spill_migration: str | None = None,
        durability: str | None = None,
        readers: int | None = None,
    ) -> Session: ...
    def with_memory_limit(self, memory_limit: int | str) -> Session: ...
    @property
    def memory_limit(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def pool_peak(self) -> int: ...
    def cancel(self) -> None: ...

@final
class Array:
    @staticmethod
    def open(path: str, columns: Sequence[str] | None = None) -> Array: ...
    @property
    def path(self) -> str: ...
    @property
    def shape(self) -> list[int]: ...
    @property
    def chunks(self) -> list[int]: ...
    @property
    def dtype(self) -> str: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def nchunks(self) -> int: ...
    def nbytes_stored(self) -> int: ...
    def nchunks_initialized(self) -> int: ...
    def describe(self) -> str: ...
    def attributes_json(self) -> str: ...
    def set_attribute_json(self, key: str, value: str) -> None: ...
    def remove_attribute(self, key: str) -> bool: ...
    def cached(self, capacity: int | str, policy: str, prefetch: int) -> Array: ...
    def cache_stats(self) -> dict[str, int] | None: ...
    def cache_trace(self, record: bool) -> list[tuple[list[int], list[int]]]: ...
    def read(self, session: Session, selection: _Selection) -> np.ndarray[Any, Any]: ...
    def write(self, session: Session, selection: _Selection, values: np.ndarray[Any, Any]) -> None: ...

def create(
    session: Session,
    path: str,
    shape: Sequence[int],
    chunks: Sequence[int] | None,
    dtype: str,
    compression: str,
    fill: str,
    seed: int,
    shards: Sequence[int] | None,
    progress_callback: _ProgressCallback | None,
) -> Array: ...
def reduce(
    session: Session,
    op: str,
    x: Array,
    axes: Sequence[int] | None,
    out: str | None,
    progress_callback: _ProgressCallback | None,
) -> float | Array: ...
def einsum(
    session: Session,
    subscripts: str,
    operands: Sequence[Array],
    out: str | None,
    optimize: str,
    progress_callback: _ProgressCallback | None,
) -> float | Array: ...
def einsum_layout(
    session: Session,
    subscripts: str,
    shapes: Sequence[Sequence[int]],
    chunks: Sequence[Sequence[int] | None],
    itemsize: int,
) -> tuple[list[int], list[list[int]]]: ...
def einsum_path(
    session: Session,
    subscripts: str,
    operands: Sequence[Array],
    optimize: str,
    out: str | None,
) -> str: ...
def map(
    session: Session,
    expr: str,
    x: Array,
    y: Array | None,
    out: str,
    progress_callback: _ProgressCallback | None,
) -> Array: ...
def transpose(
    session: Session,
    x: Array,
    axes: Sequence[int],
    out: str,
    chunks: Sequence[int] | None,
    progress_callback: _ProgressCallback | None,
) -> Array: ...
def rechunk(
    session: Session,
    x: Array,
    chunks: Sequence[int],
    out: str,
    progress_callback: _ProgressCallback | None,
) -> Array: ...
def verify(session: Session, x: Array, progress_callback: _ProgressCallback | None) -> str: ...
def parafac(
    session: Session,
    x: Array,
    *,
    rank: int,
    n_iter_max: int,
    init: str,
    init_weights: Sequence[float] | None,
    init_factors: Sequence[np.ndarray[Any, Any]] | None,
    tol: float,
    cvg_criterion: str,
    seed: int,
    normalize_factors: bool,
    l2_reg: float,
    checkpoint: str | None,
    resume: bool,
    callback: _ModelCallback | None,
    report_initial: bool,
    progress_callback: _ProgressCallback | None,
) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]], str]: ...
def tucker(
    session: Session,
    x: Array,
    *,
    ranks: Sequence[int],
    n_iter_max: int,
    init: str,
    init_core: np.ndarray[Any, Any] | None,
    init_factors: Sequence[np.ndarray[Any, Any]] | None,
    tol: float,
    seed: int,
    checkpoint: str | None,
    resume: bool,
    callback: _ModelCallback | None,
    progress_callback: _ProgressCallback | None,
) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]], str]: ...
def reconstruct(
    session: Session,
    weights: Sequence[float] | None,
    core: np.ndarray[Any, Any] | None,
    factors: Sequence[np.ndarray[Any, Any]],
    out: str,
    chunks: Sequence[int] | None,
    dtype: str,
    compression: str,
    progress_callback: _ProgressCallback | None,
) -> Array: ...
def tensordot_subscripts(na: int, nb: int, axes: tuple[Sequence[int], Sequence[int]]) -> str: ...
def import_file(
    session: Session,
    src: str,
    dst: str,
    chunks: Sequence[int] | None,
    compression: str,
    shards: Sequence[int] | None,
    raw_shape: Sequence[int] | None,
    raw_dtype: str | None,
    columns: Sequence[str] | None,
    resume: bool,
    progress_callback: _ProgressCallback | None,
) -> Array: ...
def export_file(
    session: Session,
    x: Array,
    dst: str,
    compression: str | None,
    row_group_rows: int | None,
    columns: Sequence[str] | None,
    progress_callback: _ProgressCallback | None,
) -> None: ...
