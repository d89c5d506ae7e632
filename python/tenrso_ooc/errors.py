"""The exceptions tenrso-ooc raises.

Every engine error is a :class:`TenrsoError`; most are also the built-in
exception a Python user would catch for the same cause (``MemoryError``,
``FileNotFoundError``, ``ValueError``, ...).
"""

from __future__ import annotations

from typing import Any


class TenrsoError(Exception):
    """Base class of every tenrso-ooc error."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        for name, value in fields.items():
            setattr(self, name, value)


class CorruptChunkError(TenrsoError):
    """A stored chunk failed its checksum or did not decode.

    Attributes: ``array`` (the array's directory), ``chunk`` (its
    coordinates in the chunk grid), ``key`` (its store key).
    """

    array: str
    chunk: list[int]
    key: str


class MemoryLimitError(TenrsoError, MemoryError):
    """The work cannot run within ``memory_limit=``.

    Attributes: ``limit`` and ``required``, in bytes.
    """

    limit: int
    required: int


class SpillFullError(TenrsoError, OSError):
    """Every spill directory is full, or no spill tier can hold an
    intermediate array (``requested``: the bytes it needed)."""

    requested: int


class ArrayNotFoundError(TenrsoError, FileNotFoundError):
    """No array at ``path``."""

    path: str


class ArrayExistsError(TenrsoError, FileExistsError):
    """An array already exists at ``path``."""

    path: str


class StorageError(TenrsoError, OSError):
    """An operating-system error reading or writing ``path``."""

    path: str


class InvalidArgumentError(TenrsoError, ValueError):
    """An argument that cannot be used (bad subscripts, shapes, codecs, ...)."""


class DTypeError(TenrsoError, TypeError):
    """An array holds another element type than the one needed."""


class OutOfBoundsError(TenrsoError, IndexError):
    """An index or chunk outside the array."""


class CancelledError(TenrsoError):
    """The run was cancelled before it finished."""


__all__ = [
    "TenrsoError",
    "CorruptChunkError",
    "MemoryLimitError",
    "SpillFullError",
    "ArrayNotFoundError",
    "ArrayExistsError",
    "StorageError",
    "InvalidArgumentError",
    "DTypeError",
    "OutOfBoundsError",
    "CancelledError",
]
