"""Dask's `to_zarr` of `x*2+1` from a Zarr store to a new store (threaded
scheduler, 2 workers): the peer of `tenrso-ooc map` writing its result.

    python bench/dask_map_to_zarr.py IN.zarr OUT.zarr   (prints seconds)
"""

import sys
import time

import dask
import dask.array as da

dask.config.set(scheduler="threads", num_workers=2)
x = da.from_zarr(sys.argv[1])
t = time.perf_counter()
da.to_zarr(x * 2 + 1, sys.argv[2])
print(f"{time.perf_counter() - t:.3f}")
