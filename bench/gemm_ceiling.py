"""The ceiling of a tiled matrix product on this machine: how fast NumPy's
own OpenBLAS multiplies N x N (default 8192) in memory when the product is
cut the way an out-of-core plan must cut it, against one whole call, in
one run (issue 28). No I/O, no engine: only BLAS calls on blocks held in
memory, so a store-to-store product that runs its GEMMs in such blocks
can go no faster than its row here.

    python bench/gemm_ceiling.py      (needs numpy and threadpoolctl;
                                       bench/gemm.sh's venv has both;
                                       about 11 x N² x 8 bytes of memory:
                                       5.5 GiB at N = 8192)
    CEILING=1 bench/gemm.sh           (runs it last, with gemm.sh's N
                                       and REPEAT)

Cuts, C[I, J] = A[I, :] @ B[:, J] with the inner dimension whole, each
block's row panel of A and column panel of B contiguous (assembled before
the clock starts, as a plan holding whole panels would have them):
  whole            - one call, all cores (the target's reference);
  all cores 2048   - one call per 2048 x 2048 block of C, all cores
                     (panels 128 + 128 MiB);
  all cores 2048x1024 - one call per 2048 x 1024 block, all cores
                     (panels 128 + 64 MiB);
  all cores 2048, views - the first on views of A and B where they lie
                     (B's panel strided, as OpenBLAS takes it), nothing
                     assembled;
  workers 2048     - one single-threaded call per 2048 x 2048 block, as
                     many workers as cores;
  workers 1024     - the same with 1024 x 1024 blocks (panels 64 + 64 MiB).
Assembling the panels (copying them out of A and B, once per block) is
timed apart: a plan pays it on top unless it packs from its chunks. The
engine's own cut, one call per 1024 x 1024 x 1024 chunk triple per
worker, is `examples/gemm_tiles.rs` (bench/gemm.sh, step 1).
Medians of REPEAT (default 3); within a repetition the cuts run one after
the other, so that a shared machine's drift falls on every row alike.
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are left as NumPy finds them (the
caller unsets them, as bench/gemm.sh does for NumPy).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

N = int(os.environ.get("N", "8192"))
REPEAT = int(os.environ.get("REPEAT", "3"))
CORES = os.cpu_count() or 1
if N % 2048:
    raise SystemExit(f"gemm_ceiling.py: N = {N} must be a multiple of 2048 (the blocks)")

rng = np.random.default_rng(0)
A = rng.standard_normal((N, N))
B = rng.standard_normal((N, N))
C = np.empty((N, N))


def whole() -> None:
    np.matmul(A, B, out=C)


def panels(rows: int, cols: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A's row panels and B's column panels, contiguous."""
    a = [np.ascontiguousarray(A[i : i + rows]) for i in range(0, N, rows)]
    b = [np.ascontiguousarray(B[:, j : j + cols]) for j in range(0, N, cols)]
    return a, b


def all_cores(rows: int, cols: int) -> Callable[[], None]:
    """One all-core call per block of C."""
    a, b = panels(rows, cols)

    def run() -> None:
        for i, ai in enumerate(a):
            for j, bj in enumerate(b):
                np.matmul(ai, bj, out=C[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols])

    return run


def all_cores_views(rows: int, cols: int) -> Callable[[], None]:
    """One all-core call per block of C on views of A and B (B's strided)."""

    def run() -> None:
        for i in range(0, N, rows):
            for j in range(0, N, cols):
                np.matmul(A[i : i + rows], B[:, j : j + cols], out=C[i : i + rows, j : j + cols])

    return run


def workers(rows: int, cols: int) -> Callable[[], None]:
    """Blocks of C spread over CORES workers, one thread per call."""
    a, b = panels(rows, cols)
    local = threading.local()

    def task(ij: tuple[int, int]) -> None:
        i, j = ij
        # Each worker computes into a block of its own, then stores it.
        if not hasattr(local, "c"):
            local.c = np.empty((rows, cols))
        np.matmul(a[i], b[j], out=local.c)
        C[i * rows : (i + 1) * rows, j * cols : (j + 1) * cols] = local.c

    def run() -> None:
        blocks = [(i, j) for i in range(len(a)) for j in range(len(b))]
        with threadpool_limits(1), ThreadPoolExecutor(CORES) as pool:
            list(pool.map(task, blocks))

    return run


def assemble(rows: int, cols: int) -> Callable[[], None]:
    """Copying each block's panels out of A and B, as the cuts read them."""

    def run() -> None:
        for i in range(0, N, rows):
            for j in range(0, N, cols):
                np.ascontiguousarray(A[i : i + rows])
                np.ascontiguousarray(B[:, j : j + cols])

    return run


CUTS: list[tuple[str, Callable[[], None]]] = [
    ("whole", whole),
    ("all cores 2048 x 2048", all_cores(2048, 2048)),
    ("all cores 2048 x 1024", all_cores(2048, 1024)),
    ("all cores 2048 x 2048, views", all_cores_views(2048, 2048)),
    ("workers 2048 x 2048", workers(2048, 2048)),
    ("workers 1024 x 1024", workers(1024, 1024)),
    ("(assembling 2048 x 2048 panels)", assemble(2048, 2048)),
]


def cpu() -> str:
    with open("/proc/cpuinfo") as f:
        info = f.read()
    model = next(
        (l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")),
        "unknown CPU",
    )
    isa = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    return f"{CORES} cores {model}, {isa}"


def main() -> None:
    kernels = ", ".join(
        f"{d['internal_api']} {d.get('version')} {d.get('architecture')} x{d['num_threads']}"
        for d in threadpool_info()
    )
    whole()  # warm-up: OpenBLAS's threads started, C's pages mapped
    times: dict[str, list[float]] = {name: [] for name, _ in CUTS}
    for r in range(REPEAT):
        for name, cut in CUTS:
            t0 = time.perf_counter()
            cut()
            dt = time.perf_counter() - t0
            times[name].append(dt)
            print(f"# round {r + 1}: {name} {dt:.2f} s", flush=True)
    reference = statistics.median(times["whole"])
    print(f"\nNumPy {np.__version__} in memory, N = {N}, on {cpu()}; {kernels}; "
          f"medians of {REPEAT}\n")
    print("| cut | seconds | GFLOP/s | of the whole call |")
    print("|---|---|---|---|")
    for name, _ in CUTS:
        t = statistics.median(times[name])
        if name.startswith("("):
            print(f"| {name} | {t:.2f} | | |")
        else:
            print(f"| {name} | {t:.2f} | {2 * N**3 / t / 1e9:.1f} | {reference / t:.2f} |")


if __name__ == "__main__":
    main()
