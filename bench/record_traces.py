"""Records the region traces of five unplanned access patterns, read
through tenrso-ooc's cache from Python slicing, into
crates/tenrso-ooc/tests/data/traces/ (kept as test files).

    .venv/bin/python bench/record_traces.py [OUT_DIR]

Each workload slices a real 1024x1024 float64 store (128x128 chunks, 64
chunks in all) through ``Array.cached(...)`` with recording on; the trace
is what the cache saw. Seeds are fixed, so a rerun writes the same files.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import tenrso_ooc as ts

N, C = 1024, 128


def slicing_loop() -> Iterator[slice | tuple[slice, slice]]:
    """Rows 16 at a time, top to bottom, twice."""
    for _ in range(2):
        for i in range(0, N, 16):
            yield slice(i, i + 16)


def random_tiles() -> Iterator[tuple[slice, slice]]:
    """64x64 tiles: 70 % in a hot 384x384 corner, the rest anywhere."""
    rng = np.random.default_rng(1)
    for _ in range(1200):
        hot = rng.random() < 0.7
        limit = 384 if hot else N
        r, c = rng.integers(0, limit - 64, size=2)
        yield slice(int(r), int(r) + 64), slice(int(c), int(c) + 64)


def repeated_scan() -> Iterator[tuple[slice, slice]]:
    """The whole array chunk by chunk, four times over."""
    for _ in range(4):
        for r in range(0, N, C):
            for c in range(0, N, C):
                yield slice(r, r + C), slice(c, c + C)


def sliding_window() -> Iterator[slice]:
    """A 96-row window moving down 16 rows at a time, twice."""
    for _ in range(2):
        for i in range(0, N - 96 + 1, 16):
            yield slice(i, i + 96)


def phases_and_scans() -> Iterator[tuple[slice, slice]]:
    """Recency and frequency disagree: three phases, each rereading its own
    six hot chunks, interrupted every 12 reads by a scan of 8 chunks read
    once. Scans flush LRU; LFU holds on to an earlier phase's hot chunks."""
    rng = np.random.default_rng(2)
    chunks = [(r, c) for r in range(0, N, C) for c in range(0, N, C)]
    order = rng.permutation(len(chunks))
    cursor = 0
    for phase in range(3):
        hot = [chunks[i] for i in order[6 * phase : 6 * phase + 6]]
        cold = [chunks[i] for i in order[18:]]
        for step in range(240):
            if step % 12 == 11:
                for _ in range(8):
                    r, c = cold[cursor % len(cold)]
                    cursor += 1
                    yield slice(r, r + C), slice(c, c + C)
            r, c = hot[int(rng.integers(0, 6))]
            yield slice(r, r + C), slice(c, c + C)


WORKLOADS: dict[str, Callable[[], Iterator[object]]] = {
    "slicing_loop": slicing_loop,
    "random_tiles": random_tiles,
    "repeated_scan": repeated_scan,
    "sliding_window": sliding_window,
    "phases_and_scans": phases_and_scans,
}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("crates/tenrso-ooc/tests/data/traces")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        values = np.arange(N * N, dtype=np.float64).reshape(N, N)
        x = ts.from_numpy(Path(d) / "x.zarr", values, chunks=(C, C), compression="none")
        for name, workload in WORKLOADS.items():
            cached = x.cached("4MiB", policy="lru", prefetch=0)
            cached._native.cache_trace(True)
            for key in workload():
                cached[key]
            regions = cached._native.cache_trace(False)
            doc = (workload.__doc__ or "").split("\n")
            lines = [f"# {name}: " + " ".join(line.strip() for line in doc).strip()]
            lines.append("# recorded by bench/record_traces.py from Python slicing")
            lines.append(f"array {N},{N}")
            lines.append(f"chunks {C},{C}")
            for start, shape in regions:
                lines.append(",".join(map(str, start)) + " " + ",".join(map(str, shape)))
            (out / f"{name}.trace").write_text("\n".join(lines) + "\n")
            print(f"{name}: {len(regions)} reads")


if __name__ == "__main__":
    main()
