//! Arrow IPC and Parquet against pyarrow, as child processes: files pyarrow
//! writes are imported and read in place with the same values; files we
//! export are read by pyarrow as `arrow.fixed_shape_tensor` (or tables)
//! with the same values; damaged and unsuitable files give one-line errors;
//! 2 GiB files are reduced in place under a 128 MiB limit.
//!
//! Needs `TENRSO_OOC_PYTHON` with pyarrow (set by `scripts/test`).

mod common;

use std::path::Path;

use common::{arg, python, run};
use tenrso_ooc::io::DenseFile;
use tenrso_ooc::{DType, Region};

const MIB: u64 = 1 << 20;

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python/columnar_interop.py")
        .to_string_lossy()
        .into_owned()
}

fn pyarrow(py: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(py)
        .arg(script())
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "columnar_interop.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Shape, element type and values (as f64, exact) of a `.npy` file.
fn npy(path: &Path) -> (Vec<u64>, DType, Vec<f64>) {
    let file = DenseFile::open_npy(path).unwrap();
    let shape = file.shape().to_vec();
    let dtype = file.layout().dtype;
    let full = Region::full(&shape);
    let values = match dtype {
        DType::F64 => file.read_region::<f64>(&full).unwrap().into_vec(),
        DType::F32 => file
            .read_region::<f32>(&full)
            .unwrap()
            .as_slice()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
    };
    (shape, dtype, values)
}

fn assert_same_npy(ours: &Path, expected: &Path, what: &str) {
    let (s1, t1, v1) = npy(ours);
    let (s2, t2, v2) = npy(expected);
    assert_eq!(s1, s2, "{what}: shape");
    assert_eq!(t1, t2, "{what}: dtype");
    assert!(v1 == v2, "{what}: values differ");
}

#[test]
fn files_written_by_pyarrow_are_imported_and_read_in_place() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listed: serde_json::Value =
        serde_json::from_str(&pyarrow(&py, &["write", d.to_str().unwrap()])).unwrap();
    let entries = listed.as_array().unwrap();
    assert_eq!(entries.len(), 22);
    for (k, e) in entries.iter().enumerate() {
        let file = arg(d, e["file"].as_str().unwrap());
        let expected = d.join(e["expected"].as_str().unwrap());
        let columns = e["columns"].as_str();
        // Imported into a store (in two chunkings), then exported to .npy.
        for (chunks, tag) in [(None, "auto"), (Some("5,2"), "small")] {
            let store = arg(d, &format!("import{k}-{tag}.zarr"));
            let mut args = vec!["import", &file, &store, "-q"];
            if let Some(c) = columns {
                args.extend(["--columns", c]);
            }
            let shape = npy(&expected).0;
            let small = chunks.map(|c: &str| {
                let mut dims: Vec<String> = c.split(',').map(String::from).collect();
                dims.resize(shape.len(), "3".into());
                dims.truncate(shape.len());
                dims.join(",")
            });
            if let Some(s) = &small {
                args.extend(["--chunks", s]);
            }
            run(&args).success();
            let out = d.join(format!("import{k}-{tag}.npy"));
            run(["export", &store, out.to_str().unwrap(), "-q"]).success();
            assert_same_npy(&out, &expected, &format!("import {file} ({tag} chunks)"));
        }
        // Read in place by an operation (export reads its input as any array).
        if columns.is_none() {
            let out = d.join(format!("direct{k}.npy"));
            run(["export", &file, out.to_str().unwrap(), "-q"]).success();
            assert_same_npy(&out, &expected, &format!("read in place {file}"));
            let info = run(["info", &file, "--json"]).success().json();
            assert_eq!(
                info["shape"].as_array().unwrap().len(),
                npy(&expected).0.len(),
                "{file}"
            );
        }
    }
    // pyarrow's default Parquet has no offset index: one is built from the
    // page headers, so chunks inside its one row group skip pages unread.
    let info = run(["info", &arg(d, "big_default.parquet"), "--json"])
        .success()
        .json();
    let codecs = info["codecs"].as_str().unwrap();
    assert!(codecs.contains("built from page headers"), "{codecs}");
    assert!(info["chunks_total"].as_u64().unwrap() > 1, "{info}");
    // Reduced in place: the sum equals the one of the values pyarrow wrote.
    let sum = run(["reduce", "sum", &arg(d, "x_rg7.parquet"), "--json"])
        .success()
        .json()["value"]
        .as_f64()
        .unwrap();
    let expected: f64 = npy(&d.join("x.expected.npy")).2.iter().sum();
    assert!((sum - expected).abs() <= 1e-9 * expected.abs().max(1.0));
}

#[test]
fn exports_are_read_by_pyarrow_as_fixed_shape_tensors_and_tables() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f64_store = arg(d, "x64.zarr");
    run([
        "create", &f64_store, "--shape", "101,3,5", "--chunks", "10,3,2", "--fill", "normal", "-q",
    ])
    .success();
    let f32_store = arg(d, "x32.zarr");
    run([
        "create", &f32_store, "--shape", "64,4,2,3", "--chunks", "64,4,2,3", "--dtype", "f32",
        "--fill", "normal", "--codec", "zstd:3", "-q",
    ])
    .success();
    let matrix = arg(d, "m.zarr");
    run([
        "create", &matrix, "--shape", "77,3", "--chunks", "20,2", "--fill", "uniform", "-q",
    ])
    .success();
    let vector = arg(d, "v.zarr");
    run([
        "create", &vector, "--shape", "50", "--dtype", "f32", "--fill", "range", "-q",
    ])
    .success();
    for (store, name) in [
        (&f64_store, "x64"),
        (&f32_store, "x32"),
        (&matrix, "m"),
        (&vector, "v"),
    ] {
        run(["export", store, &arg(d, &format!("{name}.npy")), "-q"]).success();
    }
    let cases: Vec<(&str, &String, Vec<&str>, serde_json::Value)> = vec![
        (
            "x64.arrow",
            &f64_store,
            vec!["--row-group-rows", "30"],
            serde_json::json!({"batches": 4}),
        ),
        (
            "x64_zstd.arrows",
            &f64_store,
            vec!["--compression", "zstd"],
            serde_json::json!({}),
        ),
        (
            "x64.feather",
            &f64_store,
            vec!["--compression", "lz4", "--row-group-rows", "101"],
            serde_json::json!({"batches": 1}),
        ),
        (
            "x64_rg7.parquet",
            &f64_store,
            vec!["--row-group-rows", "7"],
            serde_json::json!({"row_groups": 15, "compression": "ZSTD"}),
        ),
        (
            "x32_snappy.parquet",
            &f32_store,
            vec!["--compression", "snappy", "--row-group-rows", "16"],
            serde_json::json!({"row_groups": 4, "compression": "SNAPPY"}),
        ),
        (
            "x32_none.parquet",
            &f32_store,
            vec!["--compression", "none"],
            serde_json::json!({"compression": "UNCOMPRESSED"}),
        ),
        (
            "x32.ipc",
            &f32_store,
            vec!["--row-group-rows", "5"],
            serde_json::json!({"batches": 13}),
        ),
        (
            "m_table.parquet",
            &matrix,
            vec!["--columns", "p,q,r", "--row-group-rows", "25"],
            serde_json::json!({"columns": "p,q,r", "row_groups": 4}),
        ),
        (
            "m_table.arrow",
            &matrix,
            vec!["--columns", "p,q,r"],
            serde_json::json!({"columns": "p,q,r"}),
        ),
        ("m_tensor.parquet", &matrix, vec![], serde_json::json!({})),
        (
            "v.parquet",
            &vector,
            vec![],
            serde_json::json!({"columns": "values"}),
        ),
    ];
    let mut listed = Vec::new();
    for (file, store, options, mut expect) in cases {
        let out = arg(d, file);
        let mut args = vec!["export", store.as_str(), &out, "-q"];
        args.extend(options);
        run(&args).success();
        let name = Path::new(store).file_stem().unwrap().to_str().unwrap();
        expect["file"] = file.into();
        expect["expected"] = format!("{name}.npy").into();
        listed.push(expect);
        // And read back in place by us.
        let back = d.join(format!("{file}.back.npy"));
        run(["export", &out, back.to_str().unwrap(), "-q"]).success();
        assert_same_npy(&back, &d.join(format!("{name}.npy")), file);
    }
    std::fs::write(
        d.join("exports.json"),
        serde_json::to_string(&listed).unwrap(),
    )
    .unwrap();
    assert_eq!(pyarrow(&py, &["check", d.to_str().unwrap()]).trim(), "ok");
}

/// One line on stderr naming the file, a non-zero exit, no panic, and the
/// destination left alone.
fn assert_clean_failure(args: &[&str], file: &str, needle: &str) {
    let r = run(args);
    assert_ne!(r.code, Some(0), "{args:?} should fail: {r:#?}");
    assert!(r.code.is_some(), "{args:?} died of a signal: {r:#?}");
    let err = r.stderr.trim();
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: one line expected:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(file),
        "{args:?}: error does not name {file}: {err}"
    );
    assert!(
        err.to_lowercase().contains(needle),
        "{args:?}: error lacks `{needle}`: {err}"
    );
}

#[test]
fn damaged_and_unsuitable_files_give_one_line_errors() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pyarrow(&py, &["bad", d.to_str().unwrap()]);
    let store = arg(d, "x.zarr");
    run([
        "create", &store, "--shape", "400,8,8", "--chunks", "50,8,8", "--fill", "normal", "-q",
    ])
    .success();
    let ipc = arg(d, "x.arrow");
    let stream = arg(d, "x.arrows");
    let parquet = arg(d, "x.parquet");
    run(["export", &store, &ipc, "--row-group-rows", "100", "-q"]).success();
    run(["export", &store, &stream, "--row-group-rows", "100", "-q"]).success();
    run(["export", &store, &parquet, "--row-group-rows", "100", "-q"]).success();
    // Truncated IPC file and stream: cut in the middle of the data.
    for (path, name) in [(&ipc, "cut.arrow"), (&stream, "cut.arrows")] {
        let bytes = std::fs::read(path).unwrap();
        let cut = arg(d, name);
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert_clean_failure(&["reduce", "sum", &cut], name, "truncated");
    }
    // A Parquet file whose first page header is overwritten.
    let mut bytes = std::fs::read(&parquet).unwrap();
    bytes[4..36].fill(0xA7);
    let corrupt = arg(d, "corrupt.parquet");
    std::fs::write(&corrupt, &bytes).unwrap();
    assert_clean_failure(
        &["reduce", "sum", &corrupt],
        "corrupt.parquet",
        "row group 0",
    );
    // ... and one whose footer is damaged.
    let mut bytes = std::fs::read(&parquet).unwrap();
    let n = bytes.len();
    bytes[n - 40..n - 8].fill(0xA7);
    let footer = arg(d, "footer.parquet");
    std::fs::write(&footer, &bytes).unwrap();
    assert_clean_failure(&["info", &footer], "footer.parquet", "parquet");
    // Unsuitable contents.
    assert_clean_failure(
        &["reduce", "sum", &arg(d, "ragged.parquet")],
        "ragged.parquet",
        "ragged",
    );
    assert_clean_failure(
        &["reduce", "sum", &arg(d, "strings.parquet")],
        "strings.parquet",
        "not numeric",
    );
    assert_clean_failure(
        &["info", &arg(d, "badshape.arrow")],
        "badshape.arrow",
        "list size is 10",
    );
    assert_clean_failure(
        &["reduce", "sum", &arg(d, "strings.parquet"), "--json"],
        "strings.parquet",
        "utf8",
    );
    // A missing column, and a failed import leaves no store behind.
    let dst = arg(d, "never.zarr");
    assert_clean_failure(
        &["import", &parquet, &dst, "--columns", "nope"],
        "x.parquet",
        "no column `nope`",
    );
    assert!(!Path::new(&dst).join("zarr.json").exists());
    // Sources are read-only.
    let r = run(["map", "x*2", &parquet, "-o", &parquet]);
    assert_ne!(r.code, Some(0));
    // A failed export leaves an existing destination untouched.
    let keep = d.join("keep.parquet");
    std::fs::copy(&parquet, &keep).unwrap();
    let before = std::fs::read(&keep).unwrap();
    assert_clean_failure(
        &["export", &corrupt, keep.to_str().unwrap()],
        "corrupt.parquet",
        "row group 0",
    );
    assert_eq!(std::fs::read(&keep).unwrap(), before);
}

/// The memory bound: 2 GiB files reduced in place under `--memory-limit
/// 128MiB` stay within limit + 64 MiB of peak RSS, with numpy's sum.
#[test]
fn two_gib_parquet_and_ipc_reduce_in_place_under_the_limit() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = arg(d, "x.zarr");
    // 65536 rows of 64x64 f64 cells: 2 GiB.
    run([
        "create",
        &store,
        "--shape",
        "65536,64,64",
        "--chunks",
        "512,64,64",
        "--fill",
        "normal",
        "--codec",
        "none",
        "-q",
    ])
    .success();
    let ipc = arg(d, "x.arrow");
    let parquet = arg(d, "x.parquet");
    run(["export", &store, &ipc, "-q"]).success();
    run(["export", &store, &parquet, "-q"]).success();
    std::fs::remove_dir_all(&store).unwrap();
    let limit = 128 * MIB;
    for file in [&parquet, &ipc] {
        assert!(std::fs::metadata(file).unwrap().len() >= 1900 * MIB);
        let r = run(["reduce", "sum", file, "--memory-limit", "128MiB", "--json"]).success();
        let ours = r.json()["value"].as_f64().unwrap();
        let numpy: f64 = pyarrow(&py, &["sum", file]).trim().parse().unwrap();
        assert!(
            (ours - numpy).abs() <= 1e-9 * numpy.abs().max(1e3),
            "{file}: ours {ours} vs numpy {numpy}"
        );
        assert!(
            r.peak_rss <= limit + 64 * MIB,
            "{file}: peak RSS {} MiB over the bound {} MiB",
            r.peak_rss / MIB,
            (limit + 64 * MIB) / MIB
        );
        eprintln!("{file}: peak RSS {} MiB", r.peak_rss / MIB);
    }
}

/// Damaged bytes anywhere (mostly in the metadata at both ends) give either
/// a result or a one-line error: never a panic, a crash or a hang.
#[test]
fn mutated_files_never_crash_or_hang() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = arg(d, "x.zarr");
    run([
        "create", &store, "--shape", "300,4,5", "--chunks", "50,4,5", "--fill", "normal", "-q",
    ])
    .success();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        // xorshift64*: deterministic, good enough to pick bytes.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    };
    for (name, extra) in [
        ("x.arrow", vec![]),
        ("x.arrows", vec!["--compression", "lz4"]),
        ("x.parquet", vec![]),
    ] {
        let good = arg(d, name);
        let mut args = vec!["export", &store, &good, "--row-group-rows", "100", "-q"];
        args.extend(extra);
        run(&args).success();
        let bytes = std::fs::read(&good).unwrap();
        let n = bytes.len();
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..50 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + next(4) {
                let i = match next(5) {
                    0 | 1 => next(600.min(n)),
                    2 | 3 => n - 1 - next(600.min(n)),
                    _ => next(n),
                };
                damaged[i] = next(256) as u8;
            }
            let path = d.join(format!("damaged-{name}"));
            std::fs::write(&path, &damaged).unwrap();
            let mut cmd = std::process::Command::new("timeout");
            cmd.args(["60"])
                .arg(common::bin())
                .args(["reduce", "sum"])
                .arg(&path);
            let r = common::run_command(cmd);
            let err = r.stderr.trim();
            match r.code {
                Some(0) => ok += 1,
                Some(1) => {
                    assert_eq!(err.lines().count(), 1, "{name}: {err}");
                    assert!(
                        err.starts_with("error: ") && !err.contains("panicked"),
                        "{err}"
                    );
                    failed += 1;
                }
                other => panic!("{name}: exit {other:?} (124: hung): {err}"),
            }
        }
        assert!(
            failed > 0 && ok + failed == 50,
            "{name}: {ok} ok, {failed} failed"
        );
    }
}
