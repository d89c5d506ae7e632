"""NumPy basic indexing on stored arrays: integers, slices (any step),
``None`` and ``...``, turned into the per-axis ``(start, step, count)``
reads the engine does and the NumPy view that finishes the job
(dropping integer axes, adding new ones, reversing negative steps)."""

from __future__ import annotations

import operator
from typing import Any

from .errors import OutOfBoundsError

Selection = list[tuple[int, int, int]]
"""One ``(start, step, count)`` per stored axis, step > 0."""


def normalize(key: Any, shape: tuple[int, ...]) -> tuple[Selection, tuple[Any, ...]]:
    """The engine selection for `key` and the index that turns the array
    it reads into ``numpy_array[key]``."""
    key = key if isinstance(key, tuple) else (key,)
    ellipses = sum(1 for k in key if k is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    indexed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if indexed > len(shape):
        raise IndexError(
            f"too many indices for array: array is {len(shape)}-dimensional, "
            f"but {indexed} were indexed"
        )
    fill = [slice(None)] * (len(shape) - indexed)
    expanded: list[Any] = []
    for k in key:
        expanded.extend(fill if k is Ellipsis else [k])
    if not ellipses:
        expanded.extend(fill)

    selection: Selection = []
    finish: list[Any] = []
    axis = 0
    for k in expanded:
        if k is None:
            finish.append(None)
            continue
        n = shape[axis]
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            count = len(range(start, stop, step))
            if count == 0:
                selection.append((0, 1, 0))
                finish.append(slice(None))
            elif step > 0:
                selection.append((start, step, count))
                finish.append(slice(None))
            else:
                selection.append((start + (count - 1) * step, -step, count))
                finish.append(slice(None, None, -1))
        else:
            index = _integer(k, axis)
            if not -n <= index < n:
                raise OutOfBoundsError(f"index {index} is out of bounds for axis {axis} with size {n}")
            selection.append((index % n, 1, 1))
            finish.append(0)
        axis += 1
    if ellipses:
        # As NumPy: an index with `...` gives an array, even a 0-d one.
        finish.append(Ellipsis)
    return selection, tuple(finish)


def _integer(k: Any, axis: int) -> int:
    if isinstance(k, bool) or type(k).__name__ == "bool_":
        raise IndexError(
            f"axis {axis}: boolean indices are not supported on stored arrays; "
            "read the region into NumPy first (np.asarray(a[...])[mask])"
        )
    try:
        return operator.index(k)
    except TypeError:
        raise IndexError(
            f"axis {axis}: {type(k).__name__} index; stored arrays take integers, "
            "slices, None and ... (read the region into NumPy first for fancy indexing)"
        ) from None
