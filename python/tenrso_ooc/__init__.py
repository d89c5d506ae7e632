"""tenrso-ooc: dense tensors larger than memory, on disk.

Einsum, reductions, elementwise maps, transposes, rechunks and CP/Tucker
decompositions of Zarr v3 stores (and ``.npy``, Arrow IPC, Parquet files)
under a memory limit that holds, with NumPy indexing for the parts you
want in memory.

>>> import tenrso_ooc as ts, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.zarr")
>>> with ts.Session(memory_limit="256MiB"):
...     x = ts.create(path, (1000, 1000), fill="ones")
...     float(ts.einsum("ij->", x))
1000000.0
"""

from . import decomposition, errors
from ._array import Array, Attributes, open
from ._native import __version__
from ._ops import (
    BadChunk,
    VerifyReport,
    create,
    einsum,
    einsum_path,
    from_numpy,
    map,
    matmul,
    max,
    mean,
    min,
    norm,
    rechunk,
    sum,
    tensordot,
    transpose,
    verify,
)
from ._session import Session, current_session
from ._transfer import export_file, import_file
from .decomposition import parafac, reconstruct, tucker

__all__ = [
    "Array",
    "Attributes",
    "BadChunk",
    "Session",
    "VerifyReport",
    "__version__",
    "create",
    "decomposition",
    "current_session",
    "einsum",
    "einsum_path",
    "errors",
    "export_file",
    "from_numpy",
    "import_file",
    "map",
    "matmul",
    "max",
    "mean",
    "min",
    "norm",
    "open",
    "parafac",
    "rechunk",
    "reconstruct",
    "sum",
    "tensordot",
    "transpose",
    "tucker",
    "verify",
]
