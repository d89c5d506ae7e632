//! Plans that scale with the data, not the grid: stores that declare 10⁸
//! chunks and more, a few written, reduce exactly under small limits (the
//! absent chunks are the fill value, never read), the plan of a 10¹²-chunk
//! store is explained at once, and a reduction's peak memory does not grow
//! with the number of chunks.

mod common;

use std::time::Instant;

use common::{arg, run};
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{Block, DType};

const MIB: u64 = 1 << 20;

/// A store of `grid` chunks of one row of 1024 f64 (shape `grid × 1024`
/// columns), fill value `fill`, with `rows` written at chunk coordinates
/// `chunks`; returns the written values.
fn sparse_store(
    path: &std::path::Path,
    grid: [u64; 2],
    fill: f64,
    chunks: &[[u64; 2]],
) -> Vec<Vec<f64>> {
    let spec = ArraySpec::new(vec![grid[0], grid[1] * 1024], vec![1, 1024], DType::F64)
        .with_fill_value(fill);
    let array = ZarrArray::create(path, &spec).unwrap();
    chunks
        .iter()
        .enumerate()
        .map(|(k, c)| {
            // Small integers: every sum below is exact in f64.
            let values: Vec<f64> = (0..1024)
                .map(|i| ((i * 7 + k * 3) % 11) as f64 - 4.0)
                .collect();
            array
                .write_chunk(c, &Block::from_vec(vec![1, 1024], values.clone()).unwrap())
                .unwrap();
            values
        })
        .collect()
}

/// `reduce OP` of the store under `limit`: its value, checked within the
/// limit + 64 MiB.
fn reduce_value(store: &str, op: &str, limit: &str, limit_bytes: u64) -> f64 {
    let started = Instant::now();
    let r = run(["reduce", op, store, "--memory-limit", limit, "--json"]).success();
    let json = r.json();
    eprintln!(
        "{op}: {:.2} s, peak {} MiB, {} absent chunks",
        started.elapsed().as_secs_f64(),
        r.peak_rss / MIB,
        json["plan"]["absent_chunks"]
    );
    assert!(
        r.peak_rss <= limit_bytes + 64 * MIB,
        "{op}: peak {} MiB",
        r.peak_rss / MIB
    );
    json["value"].as_f64().unwrap()
}

#[test]
fn a_hundred_million_chunks_four_stored_reduce_exactly_under_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.zarr");
    let grid = [10_000u64, 10_000];
    let stored_at = [[0, 0], [17, 4242], [9_999, 9_999], [5_000, 4242]];
    let stored = sparse_store(&x, grid, 0.5, &stored_at);
    let xs = arg(dir.path(), "x.zarr");
    let elements = (grid[0] * grid[1] * 1024) as f64;
    let absent = elements - 4.0 * 1024.0;
    let all: Vec<f64> = stored.iter().flatten().copied().collect();
    let sum: f64 = all.iter().sum::<f64>() + 0.5 * absent;
    let squares: f64 = all.iter().map(|v| v * v).sum::<f64>() + 0.25 * absent;
    let limit = 64 * MIB;
    assert_eq!(reduce_value(&xs, "sum", "64MiB", limit), sum);
    assert_eq!(reduce_value(&xs, "mean", "64MiB", limit), sum / elements);
    assert_eq!(reduce_value(&xs, "norm", "64MiB", limit), squares.sqrt());
    assert_eq!(reduce_value(&xs, "min", "64MiB", limit), -4.0);
    assert_eq!(reduce_value(&xs, "max", "64MiB", limit), 6.0);

    // Over axis 0 the output (10⁷ elements in 10⁴ chunks) streams out: only
    // the column chunks with data are written; the others are the
    // output's fill value, the sum of 10⁴ fills.
    let out = dir.path().join("cols.zarr");
    let started = Instant::now();
    let r = run([
        "reduce",
        "sum",
        &xs,
        "--axes",
        "0",
        "-o",
        out.to_str().unwrap(),
        "--memory-limit",
        "64MiB",
        "-q",
    ])
    .success();
    eprintln!(
        "sum over axis 0: {:.2} s, peak {} MiB",
        started.elapsed().as_secs_f64(),
        r.peak_rss / MIB
    );
    assert!(
        r.peak_rss <= limit + 64 * MIB,
        "peak {} MiB",
        r.peak_rss / MIB
    );
    let cols = ZarrArray::open(&out).unwrap();
    assert_eq!(
        cols.stored_chunks().unwrap(),
        vec![vec![0], vec![4242], vec![9_999]]
    );
    let column = |chunk: u64| {
        cols.read_chunk::<f64>(&[chunk])
            .unwrap()
            .as_slice()
            .to_vec()
    };
    let rest = 0.5 * (grid[0] - 1) as f64;
    let want: Vec<f64> = stored[0].iter().map(|v| v + rest).collect();
    assert_eq!(column(0), want);
    let want: Vec<f64> = stored[1]
        .iter()
        .zip(&stored[3])
        .map(|(a, b)| a + b + 0.5 * (grid[0] - 2) as f64)
        .collect();
    assert_eq!(column(4242), want);
    assert_eq!(column(1), vec![0.5 * grid[0] as f64; 1024]);

    // A map runs a task per stored chunk; the rest of its output is the
    // expression of the fill, its fill value. A transpose likewise.
    let mapped = dir.path().join("mapped.zarr");
    let r = run([
        "map",
        "x*2+1",
        &xs,
        "-o",
        mapped.to_str().unwrap(),
        "--memory-limit",
        "64MiB",
        "--json",
    ])
    .success();
    assert_eq!(r.json()["plan"]["tasks"], 4);
    assert!(
        r.peak_rss <= limit + 64 * MIB,
        "peak {} MiB",
        r.peak_rss / MIB
    );
    let mapped = ZarrArray::open(&mapped).unwrap();
    assert_eq!(mapped.stored_chunks().unwrap().len(), 4);
    let got = mapped.read_chunk::<f64>(&[17, 4242]).unwrap();
    let want: Vec<f64> = stored[1].iter().map(|v| v * 2.0 + 1.0).collect();
    assert_eq!(got.as_slice(), &want[..]);
    assert_eq!(
        mapped.read_chunk::<f64>(&[1, 1]).unwrap().as_slice(),
        &[2.0; 1024][..]
    );
    let transposed = dir.path().join("t.zarr");
    let r = run([
        "transpose",
        &xs,
        "--axes",
        "1,0",
        "-o",
        transposed.to_str().unwrap(),
        "--chunks",
        "1024,1",
        "--memory-limit",
        "64MiB",
        "--json",
    ])
    .success();
    assert_eq!(r.json()["plan"]["tasks"], 4);
    let transposed = ZarrArray::open(&transposed).unwrap();
    let got = transposed.read_chunk::<f64>(&[4242, 17]).unwrap();
    assert_eq!(got.as_slice(), stored[1].as_slice());
    assert_eq!(
        transposed.read_chunk::<f64>(&[0, 1]).unwrap().as_slice(),
        &[0.5; 1024][..]
    );
}

#[test]
fn a_million_absent_chunks_reduce_exactly_under_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.zarr");
    sparse_store(&x, [1_000, 1_000], -2.0, &[]);
    let xs = arg(dir.path(), "x.zarr");
    let elements = 1_000.0 * 1_000.0 * 1024.0;
    let limit = 16 * MIB;
    assert_eq!(reduce_value(&xs, "sum", "16MiB", limit), -2.0 * elements);
    assert_eq!(reduce_value(&xs, "mean", "16MiB", limit), -2.0);
    assert_eq!(
        reduce_value(&xs, "norm", "16MiB", limit),
        (4.0 * elements).sqrt()
    );
    assert_eq!(reduce_value(&xs, "min", "16MiB", limit), -2.0);
    assert_eq!(reduce_value(&xs, "max", "16MiB", limit), -2.0);
}

#[test]
fn a_trillion_chunk_store_is_explained_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.zarr");
    sparse_store(&x, [1_000_000, 1_000_000], 1.0, &[[3, 5]]);
    let xs = arg(dir.path(), "x.zarr");
    let started = Instant::now();
    let r = run([
        "reduce",
        "sum",
        &xs,
        "--explain",
        "--json",
        "--memory-limit",
        "16MiB",
    ])
    .success();
    let plan = r.json();
    eprintln!(
        "explain: {:.3} s, peak {} MiB",
        started.elapsed().as_secs_f64(),
        r.peak_rss / MIB
    );
    assert_eq!(plan["tasks"], 1);
    assert_eq!(plan["absent_chunks"], 1_000_000_000_000u64 - 1);
    assert_eq!(plan["bytes_read"], 8192);
    assert_eq!(plan["fits"], true);
    assert!(
        r.peak_rss <= 16 * MIB + 64 * MIB,
        "peak {} MiB",
        r.peak_rss / MIB
    );
    let out = arg(dir.path(), "m.zarr");
    let r = run([
        "map",
        "x+1",
        &xs,
        "-o",
        &out,
        "--explain",
        "--json",
        "--memory-limit",
        "16MiB",
    ])
    .success();
    assert_eq!(r.json()["tasks"], 1);
    assert_eq!(r.json()["bytes_written"], 8192);
}

/// Export of a sparse store: absent chunks are written as the fill value
/// (NumPy reads them so) without being read — bytes read count only the
/// stored chunks — and the report says how many there were.
#[test]
fn export_writes_absent_chunks_as_the_fill_unread() {
    let Some(py) = common::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    for fill in [0.5, 0.0] {
        let x = dir.path().join(format!("x{fill}.zarr"));
        let stored = sparse_store(&x, [20, 4], fill, &[[3, 1], [17, 0]]);
        let npy = dir.path().join(format!("x{fill}.npy"));
        let report = dir.path().join(format!("r{fill}.json"));
        let r = run([
            "export",
            x.to_str().unwrap(),
            npy.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--json",
        ])
        .success();
        assert_eq!(r.json()["chunks_absent"], 78);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["metrics"]["read_bytes_total"], 2 * 8192);
        // NumPy: the stored rows where they were written, the fill elsewhere.
        let script = "import sys, numpy as np\n\
            a = np.load(sys.argv[1])\n\
            f = float(sys.argv[2])\n\
            stored = np.zeros(a.shape, bool)\n\
            stored[3, 1024:2048] = True\n\
            stored[17, 0:1024] = True\n\
            assert a.shape == (20, 4096) and (a[~stored] == f).all()\n\
            print(repr(a[3, 1024:1030].tolist()), repr(a[17, :6].tolist()))";
        let fill_arg = std::path::PathBuf::from(fill.to_string());
        let out = common::python_script(&py, script, &[&npy, &fill_arg]);
        let want = format!("{:?} {:?}", &stored[0][..6], &stored[1][..6]);
        assert_eq!(out.trim(), want);
    }
}

/// A store of `rows` chunks of one row of 512 ones, in `dir`.
fn rows_of_ones(dir: &std::path::Path, rows: u64) -> String {
    let x = arg(dir, &format!("ones{rows}.zarr"));
    run([
        "create",
        &x,
        "--shape",
        &format!("{rows},512"),
        "--chunks",
        "1,512",
        "--fill",
        "ones",
        "-q",
    ])
    .success();
    x
}

#[test]
fn a_reduction_holds_the_same_memory_for_ten_and_a_hundred_thousand_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for rows in [10_000u64, 100_000] {
        let x = rows_of_ones(dir.path(), rows);
        let value = reduce_value(&x, "sum", "16MiB", 16 * MIB);
        assert_eq!(value, (rows * 512) as f64);
        let r = run(["reduce", "sum", &x, "--memory-limit", "16MiB", "--json"]).success();
        peaks.push(r.peak_rss);
        eprintln!("{rows} chunks: peak {} KiB", r.peak_rss >> 10);
    }
    // Flat: ten times the chunks, at most 2 MiB more (allocator noise).
    assert!(peaks[1] <= peaks[0] + 2 * MIB, "{peaks:?}");
    // A map likewise (fewer chunks: each output chunk is synced to disk).
    let mut peaks = Vec::new();
    for rows in [2_000u64, 20_000] {
        let x = rows_of_ones(dir.path(), rows);
        let out = arg(dir.path(), &format!("m{rows}.zarr"));
        let r = run([
            "map",
            "x*2",
            &x,
            "-o",
            &out,
            "--memory-limit",
            "16MiB",
            "--json",
        ])
        .success();
        peaks.push(r.peak_rss);
        eprintln!("map of {rows} chunks: peak {} KiB", r.peak_rss >> 10);
    }
    assert!(peaks[1] <= peaks[0] + 2 * MIB, "{peaks:?}");
}
