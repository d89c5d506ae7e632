"""pyarrow's side of the Arrow IPC / Parquet interop tests
(crates/tenrso-ooc-cli/tests/columnar.rs).

    columnar_interop.py write DIR   pyarrow writes tensors and tables in DIR,
                                    with the expected values as .npy; prints
                                    one JSON list of {file, expected, columns}
    columnar_interop.py check DIR   checks the files tenrso-ooc exported into
                                    DIR (listed in DIR/exports.json) with
                                    pyarrow; prints "ok"
    columnar_interop.py bad DIR     writes malformed files (ragged list,
                                    non-numeric column, extension shape that
                                    does not match the list size)
    columnar_interop.py sum FILE    the sum of a large IPC or Parquet tensor,
                                    batch by batch (numpy's reference)
"""

import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq


def tensor_table(x, name="t"):
    return pa.table({name: pa.FixedShapeTensorArray.from_numpy_ndarray(x)})


def permuted_tensor(storage_cells, shape, permutation, name="p"):
    """A fixed_shape_tensor column whose stored cells (C order of `shape`)
    are `storage_cells`, with `permutation`; the logical cells are, by the
    canonical extension's definition, the stored ones transposed by it."""
    n = storage_cells.shape[0]
    size = int(np.prod(shape))
    tensor_type = pa.fixed_shape_tensor(
        pa.from_numpy_dtype(storage_cells.dtype), shape, permutation=permutation
    )
    storage = pa.FixedSizeListArray.from_arrays(pa.array(storage_cells.reshape(-1)), size)
    column = pa.ExtensionArray.from_storage(tensor_type, storage)
    logical = storage_cells.reshape((n,) + tuple(shape)).transpose(
        [0] + [p + 1 for p in permutation]
    )
    return pa.table({name: column}), np.ascontiguousarray(logical)


def write_ipc(path, table, batch_rows, stream=False, compression=None):
    options = pa.ipc.IpcWriteOptions(compression=compression)
    opener = pa.ipc.new_stream if stream else pa.ipc.new_file
    with opener(path, table.schema, options=options) as writer:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)


def write(d):
    rng = np.random.default_rng(7)
    entries = []

    def expect(name, values, files, columns=None):
        np.save(os.path.join(d, name + ".expected.npy"), values)
        for f in files:
            entries.append({"file": f, "expected": name + ".expected.npy", "columns": columns})

    # f64 tensor of 3x4x5 cells in every container and compression.
    x = rng.standard_normal((257, 3, 4, 5))
    t = tensor_table(x)
    write_ipc(os.path.join(d, "x_file.arrow"), t, 50)
    write_ipc(os.path.join(d, "x_stream.arrows"), t, 64, stream=True)
    write_ipc(os.path.join(d, "x_lz4.ipc"), t, 100, compression="lz4")
    write_ipc(os.path.join(d, "x_zstd_stream.arrows"), t, 33, stream=True, compression="zstd")
    feather.write_feather(t, os.path.join(d, "x.feather"), chunksize=70)  # lz4 by default
    pq.write_table(t, os.path.join(d, "x_rg100.parquet"), row_group_size=100, compression="zstd")
    pq.write_table(t, os.path.join(d, "x_rg7.parquet"), row_group_size=7, compression="snappy")
    pq.write_table(t, os.path.join(d, "x_one.parquet"), compression="none")
    # Next to a dictionary-encoded label column (never read).
    labels = pa.array([f"c{i % 3}" for i in range(len(x))]).dictionary_encode()
    with_labels = pa.table({"label": labels, "t": pa.FixedShapeTensorArray.from_numpy_ndarray(x)})
    write_ipc(os.path.join(d, "x_labels.arrow"), with_labels, 64)
    write_ipc(os.path.join(d, "x_labels.arrows"), with_labels, 100, stream=True)
    expect("x", x, ["x_file.arrow", "x_stream.arrows", "x_lz4.ipc", "x_zstd_stream.arrows",
                    "x.feather", "x_rg100.parquet", "x_rg7.parquet", "x_one.parquet",
                    "x_labels.arrow", "x_labels.arrows"])

    # pyarrow's defaults: one row group (9.4 MiB, more than a chunk), 1 MiB
    # pages, a dictionary page, no offset index.
    big = rng.standard_normal((600, 64, 64)).astype(np.float32)
    pq.write_table(tensor_table(big), os.path.join(d, "big_default.parquet"))
    expect("big", big, ["big_default.parquet"])

    # f32 tensor with a transposing permutation of 2-d cells (stored 6x4,
    # logical 4x6); pyarrow's own reading agrees with the definition here.
    stored = rng.standard_normal((120, 6, 4)).astype(np.float32)
    p2, logical2 = permuted_tensor(stored, [6, 4], [1, 0])
    assert np.array_equal(p2.column(0).combine_chunks().to_numpy_ndarray(), logical2)
    pq.write_table(p2, os.path.join(d, "perm2.parquet"), row_group_size=33)
    write_ipc(os.path.join(d, "perm2.arrow"), p2, 40)
    expect("perm2", logical2, ["perm2.parquet", "perm2.arrow"])

    # 3-d cells permuted [2, 0, 1]: expected values from the definition.
    stored3 = rng.standard_normal((50, 3, 4, 5))
    p3, logical3 = permuted_tensor(stored3, [3, 4, 5], [2, 0, 1])
    write_ipc(os.path.join(d, "perm3.arrow"), p3, 16)
    pq.write_table(p3, os.path.join(d, "perm3.parquet"), row_group_size=20)
    expect("perm3", logical3, ["perm3.arrow", "perm3.parquet"])

    # A plain fixed-size list and an even variable-size list: rows x values.
    plain = rng.standard_normal((90, 12)).astype(np.float32)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(plain.reshape(-1)), 12)
    pq.write_table(pa.table({"v": flat}), os.path.join(d, "plain.parquet"), row_group_size=40)
    write_ipc(os.path.join(d, "plain.arrow"), pa.table({"v": flat}), 25)
    var = pa.array([row.tolist() for row in plain.astype(np.float64)], type=pa.list_(pa.float64()))
    pq.write_table(pa.table({"v": var}), os.path.join(d, "even_list.parquet"), row_group_size=30)
    expect("plain", plain, ["plain.parquet", "plain.arrow"])
    expect("even_list", plain.astype(np.float64), ["even_list.parquet"])

    # A feature table: numeric columns (one int) and a string column.
    n = 300
    a = rng.standard_normal(n)
    b = rng.integers(-1000, 1000, n).astype(np.int32)
    c = rng.standard_normal(n).astype(np.float32)
    table = pa.table({"a": a, "label": [f"r{i}" for i in range(n)], "b": b, "c": c})
    pq.write_table(table, os.path.join(d, "table.parquet"), row_group_size=64)
    write_ipc(os.path.join(d, "table.arrow"), table, 100)
    expect("table_abc", np.stack([a, b.astype(np.float64), c.astype(np.float64)], axis=1),
           ["table.parquet", "table.arrow"], columns="a,b,c")
    expect("table_c", c, ["table.parquet"], columns="c")
    only_floats = pa.table({"u": c, "w": c * 2})
    pq.write_table(only_floats, os.path.join(d, "floats.parquet"), row_group_size=50)
    expect("floats", np.stack([c, c * 2], axis=1), ["floats.parquet"])
    print(json.dumps(entries))


def check(d):
    with open(os.path.join(d, "exports.json")) as f:
        exports = json.load(f)
    for e in exports:
        path = os.path.join(d, e["file"])
        expected = np.load(os.path.join(d, e["expected"]))
        if path.endswith(".parquet"):
            pf = pq.ParquetFile(path)
            table = pf.read()
            if "row_groups" in e:
                assert pf.metadata.num_row_groups == e["row_groups"], (path, pf.metadata.num_row_groups)
            for g in range(pf.metadata.num_row_groups):
                for k in range(pf.metadata.num_columns):
                    column = pf.metadata.row_group(g).column(k)
                    assert column.is_stats_set, (path, g, k)
                    assert column.statistics.null_count == 0, (path, g, k)
                    if "compression" in e:
                        assert column.compression == e["compression"], (path, column.compression)
        elif path.endswith(".arrows"):
            table = pa.ipc.open_stream(path).read_all()
        else:
            reader = pa.ipc.open_file(path)
            if "batches" in e:
                assert reader.num_record_batches == e["batches"], (path, reader.num_record_batches)
            table = reader.read_all()
        if e.get("columns"):
            names = e["columns"].split(",")
            assert table.column_names == names, (path, table.column_names)
            values = np.stack([table[n].to_numpy() for n in names], axis=1)
            if expected.ndim == 1:
                values = values[:, 0]
        else:
            column = table.column(0).combine_chunks()
            assert isinstance(column.type, pa.FixedShapeTensorType), (path, column.type)
            assert list(column.type.shape) == list(expected.shape[1:]), (path, column.type.shape)
            assert column.type.value_type == pa.from_numpy_dtype(expected.dtype), (path, column.type)
            values = column.to_numpy_ndarray()
        assert values.dtype == expected.dtype, (path, values.dtype, expected.dtype)
        assert np.array_equal(values, expected), path
    print("ok")


def bad(d):
    ragged = pa.array([[1.0, 2.0], [3.0], [4.0, 5.0]], type=pa.list_(pa.float64()))
    pq.write_table(pa.table({"r": ragged}), os.path.join(d, "ragged.parquet"))
    pq.write_table(pa.table({"name": ["a", "b"], "city": ["x", "y"]}), os.path.join(d, "strings.parquet"))
    field = pa.field(
        "t",
        pa.list_(pa.float64(), 10),
        metadata={
            b"ARROW:extension:name": b"arrow.fixed_shape_tensor",
            b"ARROW:extension:metadata": b'{"shape": [3, 3]}',
        },
    )
    storage = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(40.0)), 10)
    table = pa.Table.from_arrays([storage], schema=pa.schema([field]))
    with pa.ipc.new_file(os.path.join(d, "badshape.arrow"), table.schema) as w:
        w.write_table(table)


def total(path):
    s = 0.0
    if path.endswith(".parquet"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            s += batch.column(0).storage.flatten().to_numpy().sum()
    else:
        with pa.memory_map(path) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                s += reader.get_batch(i).column(0).storage.flatten().to_numpy().sum()
    print(repr(float(s)))


if __name__ == "__main__":
    {"write": write, "check": check, "bad": bad, "sum": total}[sys.argv[1]](sys.argv[2])
