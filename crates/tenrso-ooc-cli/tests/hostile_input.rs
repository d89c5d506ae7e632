//! Hostile input at the command line, the binary as a child process: for
//! each kind, a non-zero exit with a one-line `error:` naming the file or
//! argument at fault, never a panic or a signal, and every file in the
//! working directory byte-identical afterwards.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Run, arg, run};

/// Every file under `dir` (following no links) and its bytes; links as
/// their targets.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(path, target.as_os_str().as_bytes().to_vec());
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs `args` in `dir` and checks the refusal: exit `code`, one `error:`
/// line (usage errors: clap's message) containing `says`, no panic, and
/// nothing under `dir` changed.
fn refused<S: AsRef<OsStr>>(dir: &Path, args: &[S], code: i32, says: &str) -> Run {
    let before = snapshot(dir);
    let r = run(args);
    assert_eq!(r.code, Some(code), "{r:#?}");
    assert!(!r.stderr.contains("panicked"), "{r:#?}");
    assert!(r.stderr.starts_with("error: "), "{r:#?}");
    if code == 1 {
        assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
        // No control character (terminal escapes, NEL, CR) reaches the line.
        let line = r.stderr.strip_suffix('\n').unwrap_or(&r.stderr);
        assert!(!line.chars().any(char::is_control), "{r:#?}");
    }
    assert!(r.stderr.contains(says), "wanted `{says}`: {r:#?}");
    assert_eq!(snapshot(dir), before, "files changed: {r:#?}");
    r
}

/// A 64×64 f64 store `a.zarr` in 16×16 chunks and its export `a.npy`.
fn inputs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    run([
        "create", &a, "--shape", "64,64", "--chunks", "16,16", "--fill", "uniform", "-q",
    ])
    .success();
    run(["export", &a, &arg(dir.path(), "a.npy"), "-q"]).success();
    dir
}

/// Writes an array's `zarr.json` declaring `shape` in `chunks`, no chunks.
fn declared_store(dir: &Path, name: &str, shape: &[u64], chunks: &[u64], dtype: &str) -> String {
    let store = dir.join(name);
    std::fs::create_dir(&store).unwrap();
    let doc = serde_json::json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
    });
    std::fs::write(store.join("zarr.json"), doc.to_string()).unwrap();
    store.to_string_lossy().into_owned()
}

#[test]
fn deeply_nested_expressions_are_refused_not_a_stack_overflow() {
    let dir = inputs();
    let a = arg(dir.path(), "a.zarr");
    let out = arg(dir.path(), "m.zarr");
    for expr in [
        format!("{}x{}", "(".repeat(20_000), ")".repeat(20_000)),
        format!("{}x", "-".repeat(60_000)),
        format!("{}x{}", "sqrt(".repeat(5_000), ")".repeat(5_000)),
    ] {
        refused(
            dir.path(),
            &["map", "-o", &out, "--", &expr, &a],
            1,
            "nested more than 256 levels",
        );
    }
    let long = vec!["x"; 40_000].join("+");
    refused(dir.path(), &["map", &long, &a, "-o", &out], 1, "bytes long");
}

#[test]
fn decompositions_too_large_for_the_limit_are_refused_by_their_plan() {
    let dir = inputs();
    let a = arg(dir.path(), "a.zarr");
    let out = arg(dir.path(), "cp.d");
    for rank in ["100000000", "18446744073709551615"] {
        let started = Instant::now();
        let r = refused(
            dir.path(),
            &[
                "cp",
                &a,
                "--rank",
                rank,
                "-o",
                &out,
                "--memory-limit",
                "64MiB",
            ],
            1,
            "CP-ALS of rank",
        );
        assert!(r.stderr.contains("factors") && r.stderr.contains("memory limit 64.00 MiB"));
        assert!(
            r.stderr
                .contains("hint: raise --memory-limit or lower --rank"),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{r:?}");
        assert!(r.peak_rss < 64 << 20, "peak RSS {}", r.peak_rss);
        assert!(!Path::new(&out).exists(), "a refused run leaves no output");
    }
    // A core of 10¹² values on a declared (sparse) tensor.
    let big = declared_store(dir.path(), "big.zarr", &[10_000; 3], &[100; 3], "float32");
    let r = refused(
        dir.path(),
        &["tucker", &big, "--ranks", "10000,10000,10000", "-o", &out],
        1,
        "Tucker of ranks",
    );
    assert!(r.stderr.contains("core"), "{r:?}");
}

#[test]
fn huge_sparse_stores_cost_what_they_hold_and_unlistable_plans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 10¹¹ chunks declared, none written: a valid, sparse Zarr array.
    let huge = declared_store(
        dir.path(),
        "huge.zarr",
        &[1_000_000, 1_000_000],
        &[1, 10],
        "float32",
    );
    // Grid walks cost the chunks stored: none here.
    let started = Instant::now();
    let r = run(["reduce", "sum", &huge, "--memory-limit", "8MiB"]).success();
    assert_eq!(r.stdout.trim(), "0", "{r:?}");
    assert!(r.stderr.contains("100000000000 absent chunks"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{r:?}");
    assert!(r.peak_rss < 64 << 20, "peak RSS {}", r.peak_rss);
    let out = arg(dir.path(), "t.zarr");
    for args in [
        vec!["map", "x+1", &huge, "-o", &out],
        vec!["transpose", &huge, "--axes", "1,0", "-o", &out],
        vec!["reduce", "max", &huge, "--axes", "0", "-o", &out],
    ] {
        let _ = std::fs::remove_dir_all(&out);
        let mut args = args;
        args.extend(["--memory-limit", "64MiB", "-q"]);
        let started = Instant::now();
        let r = run(&args).success();
        assert!(started.elapsed() < Duration::from_secs(5), "{r:?}");
        assert!(r.peak_rss < 64 << 20, "peak RSS {}", r.peak_rss);
        let written = tenrso_ooc::store::ZarrArray::open(&out).unwrap();
        assert!(written.stored_chunks().unwrap().is_empty(), "{args:?}");
    }
    // A plan that must list its tasks (a rechunk whose chunks cross the
    // input's) is refused at once when the listing cannot fit.
    let started = Instant::now();
    let args = [
        "rechunk",
        &huge,
        "--chunks",
        "3,7",
        "-o",
        &arg(dir.path(), "r.zarr"),
        "--memory-limit",
        "8MiB",
    ];
    let r = refused(dir.path(), &args, 1, "tasks");
    assert!(
        r.stderr.contains("rechunk the input into larger chunks"),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "{r:?}");
    assert!(r.peak_rss < 64 << 20, "peak RSS {}", r.peak_rss);
}

#[test]
fn any_byte_in_an_argument_is_an_error_or_a_path_never_a_panic() {
    let dir = inputs();
    let a = arg(dir.path(), "a.zarr");
    let bad = OsStr::from_bytes(b"--bad\xff");
    let json: Vec<OsString> = ["reduce", "sum", &a, "--json"]
        .iter()
        .map(OsString::from)
        .chain([bad.to_os_string()])
        .collect();
    let r = refused(dir.path(), &json, 2, "unexpected argument");
    assert!(r.stdout.contains("\"error\""), "{r:?}");
    let subscripts: Vec<OsString> = vec![
        "einsum".into(),
        OsStr::from_bytes(b"ij\xff->ji").into(),
        a.clone().into(),
    ];
    refused(dir.path(), &subscripts, 2, "invalid UTF-8");
    // Non-UTF-8 paths work: a store and a report are written under them.
    let store = dir.path().join(OsStr::from_bytes(b"b\xff.zarr"));
    let report = dir.path().join(OsStr::from_bytes(b"r\xfe.json"));
    let r = run([
        OsStr::new("map"),
        OsStr::new("x*2"),
        OsStr::new(&a),
        OsStr::new("-o"),
        store.as_os_str(),
        OsStr::new("--report"),
        report.as_os_str(),
        OsStr::new("-q"),
    ])
    .success();
    assert!(!r.stderr.contains("panicked"));
    assert!(store.join("zarr.json").exists());
    // A spill directory (with a cap) under a non-UTF-8 name.
    let spill = dir.path().join(OsStr::from_bytes(b"spill\xfd"));
    std::fs::create_dir(&spill).unwrap();
    let mut spill_arg = spill.into_os_string();
    spill_arg.push(":1GiB");
    run([
        OsStr::new("rechunk"),
        OsStr::new(&a),
        OsStr::new("--chunks"),
        OsStr::new("5,7"),
        OsStr::new("-o"),
        dir.path().join("r.zarr").as_os_str(),
        OsStr::new("--spill-dir"),
        &spill_arg,
        OsStr::new("-q"),
    ])
    .success();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["ok"], true);
}

#[test]
fn a_report_that_cannot_be_written_fails_the_run_after_its_outputs() {
    let dir = inputs();
    let a = arg(dir.path(), "a.zarr");
    let out = arg(dir.path(), "m.zarr");
    for report in [dir.path().to_path_buf(), dir.path().join("missing/r.json")] {
        let _ = std::fs::remove_dir_all(&out);
        let r = run([
            "map",
            "x+1",
            &a,
            "-o",
            &out,
            "--report",
            report.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(
            r.stderr
                .starts_with("error: the run report was not written: "),
            "{r:?}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        // The output itself is complete.
        run(["verify", &out, "-q"]).success();
    }
}

#[test]
fn outputs_that_resolve_to_an_input_are_refused_before_work() {
    let dir = inputs();
    let d = dir.path();
    let (a, npy) = (arg(d, "a.zarr"), arg(d, "a.npy"));
    std::os::unix::fs::symlink(d.join("a.npy"), d.join("link.npy")).unwrap();
    std::os::unix::fs::symlink(d.join("a.zarr"), d.join("link.zarr")).unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    std::os::unix::fs::symlink(d.join("empty"), d.join("empty-link.zarr")).unwrap();
    let says = "inputs are never written";
    refused(d, &["export", &npy, &arg(d, "link.npy")], 1, says);
    refused(d, &["export", &a, &arg(d, "link.zarr")], 1, says);
    refused(d, &["export", &a, &arg(d, "a.zarr/c/0/x.npy")], 1, says);
    refused(d, &["export", &a, &arg(d, "sub/../a.zarr")], 1, says);
    refused(d, &["import", &npy, &arg(d, "link.npy")], 1, says);
    refused(
        d,
        &["map", "x+1", &a, "-o", &arg(d, "link.zarr"), "--resume"],
        1,
        says,
    );
    refused(
        d,
        &["einsum", "ij->ji", &npy, "-o", &arg(d, "link.npy")],
        1,
        says,
    );
    refused(
        d,
        &["reduce", "sum", &a, "-o", &arg(d, "./a.zarr")],
        1,
        says,
    );
    let inside = arg(d, "a.zarr/factors");
    refused(d, &["tucker", &a, "--ranks", "2,2", "-o", &inside], 1, says);
    refused(
        d,
        &["cp", &npy, "--rank", "2", "-o", &arg(d, "link.npy")],
        1,
        says,
    );
    let sneaky = arg(d, "link.zarr/../a.zarr");
    refused(
        d,
        &["transpose", &a, "--axes", "1,0", "-o", &sneaky],
        1,
        says,
    );
    // A new array is not created through a link standing in its place.
    refused(
        d,
        &["map", "x+1", &a, "-o", &arg(d, "empty-link.zarr")],
        1,
        "is a symbolic link",
    );
}

#[test]
fn formats_the_reference_readers_refuse_are_refused() {
    let dir = inputs();
    let d = dir.path();
    // zarr.json: crc32c before bytes (zarr-python: "must be ... ArrayBytesCodec").
    let bad = d.join("bad.zarr");
    std::fs::create_dir(&bad).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a.zarr/zarr.json")).unwrap()).unwrap();
    doc["codecs"].as_array_mut().unwrap().reverse();
    std::fs::write(bad.join("zarr.json"), doc.to_string()).unwrap();
    let bad = bad.to_string_lossy().into_owned();
    for command in ["info", "verify"] {
        let r = refused(d, &[command, &bad], 1, "codecs are out of order");
        assert!(r.stderr.contains("bad.zarr"), "{r:?}");
    }
    // .npy: NUL padding; a minor version other than 0.
    let npy = std::fs::read(d.join("a.npy")).unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let mut nul = npy.clone();
    for b in &mut nul[10..10 + header_len - 1] {
        if *b == b' ' {
            *b = 0;
        }
    }
    std::fs::write(d.join("nul.npy"), &nul).unwrap();
    let mut minor = npy.clone();
    minor[7] = 1;
    std::fs::write(d.join("minor.npy"), &minor).unwrap();
    refused(
        d,
        &["info", &arg(d, "nul.npy")],
        1,
        "nul.npy: the header has a NUL byte",
    );
    refused(d, &["info", &arg(d, "minor.npy")], 1, "format version 1.1");
    let out = arg(d, "x.zarr");
    refused(d, &["import", &arg(d, "nul.npy"), &out], 1, "NUL byte");
    // Control characters from the file (a Latin-1 NEL in a key) and its
    // name (a terminal escape) are shown escaped.
    let mut nel = npy.clone();
    let at = nel.windows(7).position(|w| w == b"fortran").unwrap();
    nel[at + 1] = 0x85;
    let evil = d.join("e\u{1b}[2Jvil.npy");
    std::fs::write(&evil, &nel).unwrap();
    let r = refused(d, &["info", evil.to_str().unwrap()], 1, "unexpected key");
    assert!(
        r.stderr.contains("\\u{1b}[2J") && r.stderr.contains("\\u{85}"),
        "{r:?}"
    );
    // Einsum subscripts by NumPy's rules.
    let cube = arg(d, "cube.zarr");
    run(["create", &cube, "--shape", "2,1,3", "--fill", "ones", "-q"]).success();
    let before = snapshot(d);
    let r = run(["einsum", "jii->", &cube]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("index `i` repeats in operand 0"), "{r:?}");
    assert_eq!(snapshot(d), before);
    refused(d, &["einsum", "...i->i", &cube, "-o", &out], 1, "add `...`");
    let a = arg(d, "a.npy");
    refused(
        d,
        &["einsum", "ij,\tjk->ik", &a, &a, "-o", &out],
        1,
        "whitespace",
    );
    refused(
        d,
        &["einsum", "ij,jk->ik\u{a0}", &a, &a, "-o", &out],
        1,
        "whitespace",
    );
}
