"""pyarrow's side of bench/columnar_throughput.sh: read a fixed_shape_tensor
IPC or Parquet file into numpy (summing each batch, so every value is
touched), or write one from a memory-mapped .npy, slab by slab, then fsync
it (as tenrso-ooc's export does before renaming it into place).

    pyarrow_columnar.py read-ipc FILE          memory-mapped, batch by batch
    pyarrow_columnar.py read-parquet FILE      row group by row group
    pyarrow_columnar.py read-table FILE        pq.read_table (whole file in memory, threads)
    pyarrow_columnar.py write-ipc NPY OUT ROWS
    pyarrow_columnar.py write-parquet NPY OUT ROWS   (zstd level 1, like ours)
"""

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def values(column):
    """The tensor values of a fixed_shape_tensor chunk as a numpy array."""
    return column.storage.flatten().to_numpy()


def read_ipc(path):
    total = 0.0
    with pa.memory_map(path) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            total += values(reader.get_batch(i).column(0)).sum()
    return total


def read_parquet(path):
    total = 0.0
    f = pq.ParquetFile(path)
    for g in range(f.num_row_groups):
        for chunk in f.read_row_group(g).column(0).chunks:
            total += values(chunk).sum()
    return total


def read_table(path):
    table = pq.read_table(path)
    return sum(values(chunk).sum() for chunk in table.column(0).chunks)


def slabs(npy, rows):
    x = np.load(npy, mmap_mode="r")
    for start in range(0, x.shape[0], rows):
        yield pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(x[start:start + rows]))


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_ipc(npy, out, rows):
    batches = slabs(npy, int(rows))
    first = next(batches)
    schema = pa.schema([pa.field("tensor", first.type)])
    with pa.ipc.new_file(out, schema) as w:
        w.write_batch(pa.record_batch([first], schema=schema))
        for b in batches:
            w.write_batch(pa.record_batch([b], schema=schema))
    fsync(out)


def write_parquet(npy, out, rows):
    batches = slabs(npy, int(rows))
    first = next(batches)
    schema = pa.schema([pa.field("tensor", first.type)])
    with pq.ParquetWriter(out, schema, compression="zstd", compression_level=1,
                          use_dictionary=False) as w:
        w.write_table(pa.table([first], schema=schema))
        for b in batches:
            w.write_table(pa.table([b], schema=schema))
    fsync(out)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    result = {
        "read-ipc": read_ipc,
        "read-parquet": read_parquet,
        "read-table": read_table,
        "write-ipc": write_ipc,
        "write-parquet": write_parquet,
    }[command](*args)
    if result is not None:
        print(repr(float(result)))
