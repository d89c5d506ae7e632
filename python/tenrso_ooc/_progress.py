"""Progress for long runs: ``progress=True`` draws a tqdm bar (or prints
lines to stderr where tqdm is missing), a callable receives
``(label, done, total)`` as the run advances, in bytes of the data the
stage works through."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Union

ProgressCallback = Callable[[str, int, int], Any]
Progress = Union[bool, ProgressCallback, None]
"""``True`` for a bar, a callable ``(label, done, total)``, or off."""


class _Bar:
    """One bar per call: a new stage (label) resets it and takes its
    label, so a CP-ALS of 100 iterations draws one line, not 200."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._label: str | None = None
        self._last_line = -1
        try:
            import tqdm.auto  # type: ignore[import-untyped]

            self._tqdm: Any = tqdm.auto.tqdm
        except ImportError:
            self._tqdm = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if self._tqdm is None:
            self._print(label, done, total)
            return
        if self._bar is None:
            self._bar = self._tqdm(
                total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=True
            )
            self._label = label
        elif label != self._label:
            self._bar.reset(total=total)
            self._bar.set_description(label, refresh=False)
            self._label = label
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def _print(self, label: str, done: int, total: int) -> None:
        tenth = done * 10 // total if total else 10
        if label != self._label or tenth != self._last_line:
            self._label, self._last_line = label, tenth
            print(f"{label}: {done >> 20}/{total >> 20} MiB", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def reporter(progress: Progress) -> Iterator[ProgressCallback | None]:
    """The native progress callback for a ``progress=`` argument."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        bar = _Bar()
        try:
            yield bar
        finally:
            bar.close()
    elif callable(progress):
        yield progress
    else:
        raise TypeError(
            f"progress= takes True, False or a callable (label, done, total), not {progress!r}"
        )
