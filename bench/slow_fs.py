"""A slow disk for benchmarks: a FUSE file system passing every call
through to a backing directory, reads and writes together throttled to
a bandwidth, without the kernel's page cache (direct_io), so that a spill
tier on it is as slow as a real disk under memory pressure.

    python bench/slow_fs.py BACKING MOUNTPOINT MIB_PER_SECOND

Runs in the foreground until unmounted (`fusermount -u MOUNTPOINT`).
Needs fusepy (pip) and /dev/fuse.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time

from fuse import FUSE, FuseOSError, Operations  # type: ignore[import-untyped]


class Throttle:
    """One bandwidth shared by every read and write."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.lock = threading.Lock()
        self.free_at = time.monotonic()

    def take(self, n: int) -> None:
        with self.lock:
            start = max(self.free_at, time.monotonic())
            self.free_at = start + n / self.rate
            wait = self.free_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)


class SlowPassthrough(Operations):  # type: ignore[misc]
    def __init__(self, root: str, throttle: Throttle) -> None:
        self.root = root
        self.throttle = throttle

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        try:
            st = os.lstat(self._full(path))
        except OSError as e:
            raise FuseOSError(e.errno) from e
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", ".."] + os.listdir(self._full(path))

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._full(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._full(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._full(path))

    def unlink(self, path: str) -> None:
        os.unlink(self._full(path))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._full(old), self._full(new))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._full(path), mode)

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
        os.utime(self._full(path), times)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        with open(self._full(path), "r+b") as f:
            f.truncate(length)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._full(path), flags)

    def create(self, path: str, mode: int, fi: object = None) -> int:
        return os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        data = os.pread(fh, size, offset)
        self.throttle.take(len(data))
        return data

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self.throttle.take(len(data))
        return os.pwrite(fh, data, offset)

    def flush(self, path: str, fh: int) -> None:
        return None

    def fsync(self, path: str, datasync: bool, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)


if __name__ == "__main__":
    backing, mountpoint, mib = sys.argv[1], sys.argv[2], float(sys.argv[3])
    FUSE(
        SlowPassthrough(backing, Throttle(mib * 2**20)),
        mountpoint,
        foreground=True,
        nothreads=False,
        direct_io=True,
        allow_other=False,
        big_writes=True,
        max_read=1 << 20,
        max_write=1 << 20,
    )
