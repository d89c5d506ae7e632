"""`parafac` rank 16 on a 400^3 f64 tensor (512 MB): tenrso-ooc against
TensorLy's `tensorly.decomposition.parafac` on the same NumPy data, in one
run on this machine.

Each configuration runs in its own process (peak RSS is the child's
VmHWM), `init="svd"`, `tol=0`, ITERS iterations (default 5); seconds per
iteration are the median of the gaps between the TensorLy-style
callbacks (every call after an iteration), so the SVD start is timed
apart:
  - TensorLy, NumPy backend, the tensor in memory;
  - tenrso-ooc from the store, 4 GiB limit (the tensor held in memory);
  - tenrso-ooc from the store, 128 MiB limit (the tensor 4x the limit,
    streamed from the store every pass), against reading the store once
    (a streamed sum, page cache warm).

    .venv/bin/python bench/python_parafac.py [WORKDIR]   (default bench/out)
"""

from __future__ import annotations

from typing import Any

import json
import os
import platform
import subprocess
import sys

ITERS = int(os.environ.get("ITERS", "5"))
RANK = 16
SHAPE = (400, 400, 400)

CHILD = r"""
import json, sys, time
import numpy as np
import tenrso_ooc as ts
kind, path, limit, iters, rank = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def vmhwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

stamps = []
def callback(model, rec_error):
    stamps.append((time.perf_counter(), float(rec_error)))

result = {}
if kind == "tensorly":
    import tensorly as tl
    from tensorly.decomposition import parafac
    with ts.Session(memory_limit="4GiB"):
        dense = np.asarray(ts.open(path))
    t0 = time.perf_counter()
    parafac(tl.tensor(dense), rank, n_iter_max=iters, init="svd", tol=0, return_errors=True, callback=callback)
elif kind == "read":
    with ts.Session(memory_limit=limit, threads=2):
        ts.sum(path)  # warm the page cache
        t0 = time.perf_counter()
        ts.sum(path)
        stamps = [(t0, 0.0), (time.perf_counter(), 0.0)]
else:
    with ts.Session(memory_limit=limit, threads=2):
        t0 = time.perf_counter()
        ts.parafac(path, rank, n_iter_max=iters, init="svd", tol=0, return_errors=True, callback=callback)
gaps = sorted(b[0] - a[0] for a, b in zip(stamps, stamps[1:]))
result["start_seconds"] = stamps[0][0] - t0
result["seconds_per_iteration"] = gaps[len(gaps) // 2]
result["errors"] = [e for _, e in stamps]
result["vmhwm_mib"] = vmhwm()
print(json.dumps(result))
"""


def child(kind: str, path: str, limit: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, path, limit, str(ITERS), str(RANK)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"{kind} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    flags = open("/proc/cpuinfo").read()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return f"{model}, {isa}, {os.cpu_count()} cores"


def main() -> None:
    import tenrso_ooc as ts

    work = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "bench/out")
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "parafac400.zarr")
    if not os.path.exists(path):
        with ts.Session(memory_limit="1GiB"):
            ts.create(path, SHAPE, fill="lowrank:16:0.1", seed=1)
    runs = {
        "TensorLy (NumPy, in memory)": child("tensorly", path, ""),
        "tenrso-ooc, 4 GiB limit (held in memory)": child("ours", path, "4GiB"),
        "tenrso-ooc, 128 MiB limit (4x: streamed)": child("ours", path, "128MiB"),
    }
    read = child("read", path, "128MiB")["seconds_per_iteration"]
    reference = runs["TensorLy (NumPy, in memory)"]
    print(f"parafac rank {RANK} on {SHAPE[0]}^3 f64, init svd, {ITERS} iterations; {cpu()}")
    print()
    print("| run | start (s) | s / iteration | vs TensorLy | peak RSS (MiB) | last error |")
    print("|---|---|---|---|---|---|")
    for name, r in runs.items():
        ratio = float(reference["seconds_per_iteration"]) / float(r["seconds_per_iteration"])
        errors = r["errors"]
        print(
            f"| {name} | {float(r['start_seconds']):.2f} | {float(r['seconds_per_iteration']):.2f} "
            f"| {ratio:.2f}x | {float(r['vmhwm_mib']):.0f} | {errors[-1]:.6f} |"
        )
    print()
    print(f"Reading the store once (streamed sum, warm): {float(read):.2f} s")
    print(json.dumps({"runs": runs, "read_once_seconds": read}))


if __name__ == "__main__":
    main()
