"""Sessions: the memory limit, spill directories and threads work runs under.

Every operation runs in a session. Without one it uses the *current*
session: the innermost ``with Session(...)`` block of this thread (or
asyncio task), else a default session made on first use. Any operation
also takes ``memory_limit=`` for one call.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Sequence
from typing import Any

from . import _native

Size = int | str
"""A size in bytes, or a string such as ``"4GiB"`` or ``"512MB"``."""

_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "tenrso_ooc_session", default=None
)
_default: Session | None = None
_default_lock = threading.Lock()


class Session:
    """A memory pool, spill area and worker threads shared by operations.

    Args:
        memory_limit: the most memory the engine may hold at once, in bytes
            or as ``"4GiB"``; default: the environment's
            ``TENRSO_OOC_MEMORY_LIMIT``, else a quarter of the machine's
            memory.
        threads: worker threads (default: the machine's cores).
        spill_dirs: the spill area's tiers, fastest first, each optionally
            ``"DIR:CAPACITY"``: spilled chunks and intermediate arrays go to
            the first with room (default: the system's temporary directory).
        spill_codec: ``"none"``, ``"lz4"`` or ``"zstd"`` for spilled bytes.
        spill_migration: ``"off"`` (default), ``"auto"`` (spilled chunks
            move between the first two tiers by the schedule while the
            first is measured faster) or ``"always"``.
        durability: how output chunks reach the disk: ``"batch"``
            (default: synced in batches by a background thread; a killed
            run leaves every chunk old or new), ``"chunk"`` (an fsync per
            chunk) or ``"none"`` (never synced, written in place: for
            scratch; a killed run can leave torn chunks that ``verify``
            names).
        readers: threads loading chunks ahead of the workers, in plan
            order (default 4); more than the cores pay on a cold disk.
            Full reductions and the passes of ``parafac``/``tucker``
            read in their workers instead.

    A session is a context manager: inside ``with`` it is the current
    session of operations that are given none.

    >>> import tenrso_ooc as ts
    >>> with ts.Session(memory_limit="256MiB", threads=1) as s:
    ...     s.memory_limit
    268435456
    """

    __slots__ = ("_native", "_tokens")

    def __init__(
        self,
        memory_limit: Size | None = None,
        threads: int | None = None,
        spill_dirs: Sequence[str | os.PathLike[str]] | None = None,
        spill_codec: str | None = None,
        spill_migration: str | None = None,
        durability: str | None = None,
        readers: int | None = None,
    ) -> None:
        if memory_limit is None:
            memory_limit = os.environ.get("TENRSO_OOC_MEMORY_LIMIT") or None
        dirs = [os.fspath(d) for d in spill_dirs] if spill_dirs is not None else None
        self._native = _native.Session(
            memory_limit=memory_limit,
            threads=threads,
            spill_dirs=dirs,
            spill_codec=spill_codec,
            spill_migration=spill_migration,
            durability=durability,
            readers=readers,
        )
        self._tokens: list[contextvars.Token[Session | None]] = []

    @classmethod
    def _wrap(cls, native: _native.Session) -> Session:
        session = cls.__new__(cls)
        session._native = native
        session._tokens = []
        return session

    @property
    def memory_limit(self) -> int:
        """The memory limit in bytes."""
        return self._native.memory_limit

    @property
    def threads(self) -> int:
        """Worker threads."""
        return self._native.threads

    @property
    def pool_peak(self) -> int:
        """The most bytes the session's pool has held at once."""
        return self._native.pool_peak

    def with_memory_limit(self, memory_limit: Size) -> Session:
        """A session with these settings but another memory limit."""
        return Session._wrap(self._native.with_memory_limit(memory_limit))

    def cancel(self) -> None:
        """Stops the runs in flight in this session, from any thread: they
        raise :class:`~tenrso_ooc.errors.CancelledError` within about one
        task, their spill files removed. Later runs proceed."""
        self._native.cancel()

    def __enter__(self) -> Session:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._tokens.pop())

    def __repr__(self) -> str:
        return repr(self._native)


def current_session() -> Session:
    """The session operations use when given none."""
    session = _current.get()
    if session is not None:
        return session
    global _default
    with _default_lock:
        if _default is None:
            _default = Session()
        return _default


def resolve(session: Session | None, memory_limit: Size | None) -> Session:
    """The session a call runs in: `session` (else the current one),
    with `memory_limit` when given."""
    base = session if session is not None else current_session()
    return base.with_memory_limit(memory_limit) if memory_limit is not None else base
