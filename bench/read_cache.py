"""End-to-end time of slicing workloads read through `Array.cached()` with
each policy, with and without prediction, against reading the store
directly (issue 33). Medians of REPEAT (default 3), one run.

    .venv/bin/python bench/read_cache.py [WORKDIR]

The store: 8192x8192 float64 (512 MiB), 512x512 chunks (2 MiB), zstd:3 (so
every chunk read from the store costs its decode). The cache holds 64 MiB
(32 chunks). Workloads, each a loop of NumPy slicing with a little work on
every slice (its sum):
  slicing  - 32-row slabs top to bottom (the chunk row is reused 16 times);
  window   - a 1024-row window moving 256 rows at a time over 4096 columns;
  scan     - 512x512 tiles of the top-left 4096x4096, row by row, three passes
             (64 MiB of chunks: one more than the cache holds);
  tiles    - 1500 256x256 tiles, 70 % in a hot 3072x3072 corner.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import tenrso_ooc as ts

N, C = 8192, 512


def slicing() -> Iterator[tuple[slice, slice]]:
    for i in range(0, N, 32):
        yield slice(i, i + 32), slice(0, N)


def window() -> Iterator[tuple[slice, slice]]:
    for i in range(0, N - 1024 + 1, 256):
        yield slice(i, i + 1024), slice(0, 4096)


def scan() -> Iterator[tuple[slice, slice]]:
    for _ in range(3):
        for r in range(0, 4096, C):
            for c in range(0, 4096, C):
                yield slice(r, r + C), slice(c, c + C)


def tiles() -> Iterator[tuple[slice, slice]]:
    rng = np.random.default_rng(3)
    for _ in range(1500):
        limit = 3072 if rng.random() < 0.7 else N
        r, c = (int(v) for v in rng.integers(0, limit - 256, size=2))
        yield slice(r, r + 256), slice(c, c + 256)


WORKLOADS: dict[str, Callable[[], Iterator[tuple[slice, slice]]]] = {
    "slicing": slicing,
    "window": window,
    "scan": scan,
    "tiles": tiles,
}


def run(array: ts.Array, workload: Callable[[], Iterator[tuple[slice, slice]]]) -> float:
    start = time.perf_counter()
    for key in workload():
        float(array[key].sum())
    return time.perf_counter() - start


def main() -> None:
    repeat = int(os.environ.get("REPEAT", "3"))
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    path = work / "slices.zarr"
    if not path.exists():
        ts.create(path, (N, N), chunks=(C, C), fill="normal", seed=1, compression="zstd:3")
    x = ts.open(path)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    print(f"# slicing workloads through Array.cached('64MiB'): {os.cpu_count()} cores ({cpu}); "
          f"8192x8192 f64 zstd:3 in 512x512 chunks; seconds, medians of {repeat}")
    configs: list[tuple[str, Callable[[], ts.Array]]] = [("direct", lambda: x)]
    for policy in ("lru", "lfu", "arc", "learned"):
        for prefetch in (0, 2):
            configs.append(
                (f"{policy}{'+pred' if prefetch else ''}",
                 lambda p=policy, d=prefetch: x.cached("64MiB", policy=p, prefetch=d))
            )
    print(f"{'workload':<9}" + "".join(f"{name:>13}" for name, _ in configs))
    for name, workload in WORKLOADS.items():
        cells = []
        for _, make in configs:
            times, hit = [], None
            for _ in range(repeat):
                array = make()
                times.append(run(array, workload))
                stats = array.cache_stats()
                if stats:
                    hit = stats["hits"] / max(1, stats["hits"] + stats["misses"])
            t = statistics.median(times)
            cells.append(f"{t:7.2f}" + (f" ({hit:.2f})" if hit is not None else "       "))
        print(f"{name:<9}" + "".join(f"{c:>13}" for c in cells), flush=True)
    print("(hit ratio of chunk requests in parentheses)")


if __name__ == "__main__":
    main()
