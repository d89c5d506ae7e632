//! The commands as a user runs them: outputs, exit codes, error lines.

mod common;

use common::{arg, identical, run};

#[test]
fn create_info_verify_round() {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    let created = run([
        "create", &a, "--shape", "100,60", "--chunks", "32,32", "--fill", "normal", "--seed", "7",
        "--codec", "zstd:3", "--json",
    ])
    .success();
    let c = created.json();
    assert_eq!(c["chunks_written"], 8);
    assert_eq!(c["fill"], "normal");

    let info = run(["info", &a, "--json"]).success().json();
    assert_eq!(info["shape"], serde_json::json!([100, 60]));
    assert_eq!(info["dtype"], "f64");
    assert_eq!(info["chunk_shape"], serde_json::json!([32, 32]));
    assert_eq!(info["chunks_total"], 8);
    assert_eq!(info["chunks_stored"], 8);
    assert_eq!(info["codecs"], "bytes → zstd:3 → crc32c");
    assert_eq!(info["has_checksum"], true);
    assert_eq!(info["bytes"], 100 * 60 * 8);
    assert!(info["bytes_on_disk"].as_u64().unwrap() > 0);
    assert!(info["compression_ratio"].as_f64().unwrap() > 0.5);
    assert_eq!(info["attributes"]["tenrso_generator"]["seed"], 7);

    let text = run(["info", &a]).success().stdout;
    assert!(text.contains("shape:       100x60 (f64"), "{text}");
    assert!(text.contains("stored:      8 / 8 chunks"), "{text}");

    let v = run(["verify", &a]).success();
    assert!(v.stdout.contains("all 8 stored chunks OK"), "{}", v.stdout);
}

#[test]
fn info_without_an_array_describes_the_machine_and_its_gemm() {
    let text = run(["info"]).success().stdout;
    assert!(
        text.contains("machine:") && text.contains("cores"),
        "{text}"
    );
    assert!(text.contains("GFLOP/s per thread"), "{text}");
    let machine = run(["info", "--json"]).success().json();
    let kernel = machine["gemm_kernel"].as_str().unwrap();
    // The default build multiplies with faer; `blas` builds with OpenBLAS
    // (or say why not).
    if cfg!(feature = "blas") {
        assert!(kernel.contains("OpenBLAS"), "{kernel}");
    } else {
        assert!(kernel.starts_with("faer"), "{kernel}");
    }
    // Chunks' checksums: folded where the CPU can, else the crc32c crate.
    let checksum = machine["checksum_kernel"].as_str().unwrap();
    assert!(text.contains(&format!("checksum:    {checksum}")), "{text}");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        checksum.contains("VPCLMULQDQ"),
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("vpclmulqdq"),
        "{checksum}"
    );
    // Large uncompressed chunks are read in place, unless turned off.
    assert_eq!(
        machine["chunk_map_min_bytes"].as_u64(),
        Some(tenrso_ooc::io::MAP_MIN_BYTES),
    );
    assert!(
        text.contains("reads:       uncompressed chunks of 4.00 MiB or more in place"),
        "{text}"
    );
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["info", "--json"])
        .env(tenrso_ooc::io::NO_CHUNK_MAPS_VAR, "1");
    let copied = common::run_command(cmd).success().json();
    assert!(copied["chunk_map_min_bytes"].is_null(), "{copied}");
    // Contractions write large result chunks around the page cache,
    // unless turned off.
    assert_eq!(
        machine["uncached_write_min_bytes"].as_u64(),
        Some(tenrso_ooc::store::UNCACHED_WRITE_MIN_BYTES as u64),
    );
    assert!(
        text.contains("writes:      contractions' result chunks of 4.00 MiB or more around"),
        "{text}"
    );
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["info", "--json"])
        .env(tenrso_ooc::store::NO_UNCACHED_WRITES_VAR, "1");
    let buffered = common::run_command(cmd).success().json();
    assert!(buffered["uncached_write_min_bytes"].is_null(), "{buffered}");
    // Any machine this runs on multiplies faster than 0.1 GFLOP/s.
    assert!(machine["gemm_gflops_per_thread"].as_f64().unwrap() > 0.1);
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert!(machine["memory_bytes"].as_u64().unwrap() > 1 << 20);
}

#[test]
fn verify_names_every_bad_chunk_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    run([
        "create", &a, "--shape", "64,64", "--chunks", "16,16", "--fill", "uniform", "-q",
    ])
    .success();
    for key in ["c/1/2", "c/3/0"] {
        let path = dir.path().join("a.zarr").join(key);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[17] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let v = run(["verify", &a]);
    assert_eq!(v.code, Some(1), "{v:?}");
    assert!(
        v.stdout
            .contains("bad chunk c/1/2 [1, 2]: checksum mismatch"),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("bad chunk c/3/0 [3, 0]"), "{}", v.stdout);
    assert!(
        v.stdout.contains("2 of 16 stored chunks are bad"),
        "{}",
        v.stdout
    );
    let j = run(["verify", &a, "--json"]);
    assert_eq!(j.code, Some(1));
    let j = j.json();
    assert_eq!(j["ok"], false);
    let keys: Vec<&str> = j["bad_chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["c/1/2", "c/3/0"]);
    // Reading the damaged chunk through export fails with a line naming it.
    let e = run(["export", &a, &arg(dir.path(), "out.npy")]);
    assert_eq!(e.code, Some(1));
    assert!(
        e.stderr.starts_with("error: array ")
            && e.stderr.contains("chunk [1, 2] (key `c/1/2`) is corrupt"),
        "{}",
        e.stderr
    );
    assert!(!dir.path().join("out.npy").exists());
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run(["info", &arg(dir.path(), "nope.zarr")]);
    assert_eq!(missing.code, Some(1));
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    assert!(
        missing.stderr.starts_with("error: ") && missing.stderr.contains("not a Zarr v3 array"),
        "{}",
        missing.stderr
    );

    let j = run(["info", &arg(dir.path(), "nope.zarr"), "--json"]);
    assert_eq!(j.code, Some(1));
    assert!(
        j.json()["error"]
            .as_str()
            .unwrap()
            .contains("not a Zarr v3 array")
    );

    let a = arg(dir.path(), "a.zarr");
    run(["create", &a, "--shape", "8", "--chunks", "4", "-q"]).success();
    let again = run(["create", &a, "--shape", "8", "--chunks", "4"]);
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    // Bad argument values are usage errors (exit 2) that say what is expected.
    let bad_codec = run([
        "create",
        &arg(dir.path(), "b"),
        "--shape",
        "8",
        "--codec",
        "zstd:99",
    ]);
    assert_eq!(bad_codec.code, Some(2));
    assert!(
        bad_codec.stderr.contains("expected 1 to 22"),
        "{}",
        bad_codec.stderr
    );
    let bad_shape = run(["create", &arg(dir.path(), "b"), "--shape", "8,x"]);
    assert_eq!(bad_shape.code, Some(2));
    let bad_size = run([
        "create",
        &arg(dir.path(), "b"),
        "--shape",
        "8",
        "--memory-limit",
        "lots",
    ]);
    assert_eq!(bad_size.code, Some(2));
    assert!(bad_size.stderr.contains("512MiB"), "{}", bad_size.stderr);
    let bad_chunks = run([
        "create",
        &arg(dir.path(), "b"),
        "--shape",
        "8,8",
        "--chunks",
        "4",
    ]);
    assert_eq!(bad_chunks.code, Some(1));
    assert!(
        bad_chunks.stderr.contains("chunk shape 4 has 1 axes"),
        "{}",
        bad_chunks.stderr
    );
    assert!(
        !dir.path().join("b").exists(),
        "a refused create writes nothing"
    );
}

#[test]
fn memory_limit_below_one_chunk_is_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    let r = run([
        "create",
        &a,
        "--shape",
        "4096,4096",
        "--chunks",
        "2048,2048",
        "--memory-limit",
        "16MiB",
    ]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("memory limit 16.00 MiB is too small") && r.stderr.contains("32.00 MiB"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("a.zarr").exists());
}

#[test]
fn import_export_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    run([
        "create", &a, "--shape", "50,40,3", "--chunks", "16,16,3", "--fill", "range", "--dtype",
        "f32", "-q",
    ])
    .success();
    let npy = arg(dir.path(), "a.npy");
    let e = run(["export", &a, &npy, "--json"]).success().json();
    assert_eq!(e["bytes"], 50 * 40 * 3 * 4);
    let b = arg(dir.path(), "b.zarr");
    let i = run([
        "import", &npy, &b, "--chunks", "7,7,3", "--codec", "lz4", "--shard", "14,14,3", "--json",
    ])
    .success()
    .json();
    assert_eq!(i["dtype"], "f32");
    assert_eq!(i["shape"], serde_json::json!([50, 40, 3]));
    let raw = arg(dir.path(), "b.raw");
    run(["export", &b, &raw, "-q"]).success();
    let c = arg(dir.path(), "c.zarr");
    let missing = run(["import", &raw, &c]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("give its --shape and --dtype"),
        "{}",
        missing.stderr
    );
    run([
        "import", &raw, &c, "--shape", "50,40,3", "--dtype", "f32", "-q",
    ])
    .success();
    // The round trip through three layouts is exact.
    let x = tenrso_ooc::store::ZarrArray::open(dir.path().join("a.zarr")).unwrap();
    let z = tenrso_ooc::store::ZarrArray::open(dir.path().join("c.zarr")).unwrap();
    assert!(identical(x, z));
}

#[test]
fn demo_stays_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let r = run([
        "demo",
        "--memory-limit",
        "32MiB",
        "--dir",
        &arg(dir.path(), "demo"),
        "--json",
    ])
    .success();
    let j = r.json();
    assert_eq!(j["round_trip_identical"], true);
    assert_eq!(j["bad_chunks"], 0);
    assert_eq!(j["within_memory_bound"], true);
    assert!(j["bytes"].as_u64().unwrap() >= 4 * (32 << 20));
    assert!(
        r.peak_rss <= (32 << 20) + (64 << 20),
        "peak RSS {} above limit + 64 MiB",
        r.peak_rss
    );
    let steps: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "generate",
            "verify",
            "export",
            "import",
            "compare",
            "reduce",
            "parquet",
            "transpose",
            "matmul",
            "cp",
            "tucker"
        ]
    );
    assert_eq!(j["matmul_trace_matches_norm"], true);
    assert_eq!(j["parquet_sum_matches"], true);
    assert!(j["tucker_fit"].as_f64().unwrap() > 0.98, "{j}");
    assert!(j["cp_fit"].as_f64().unwrap() > 0.9, "{j}");
}

/// Regression (review of #2): a generator model too large for the limit is
/// refused before anything is created.
#[test]
fn oversized_low_rank_model_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    let r = run([
        "create",
        &a,
        "--shape",
        "2,2",
        "--fill",
        "lowrank:8000",
        "--memory-limit",
        "64MiB",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("generator's model"), "{}", r.stderr);
    assert!(
        r.peak_rss < 64 << 20,
        "refusal allocated {} bytes",
        r.peak_rss
    );
    assert!(!dir.path().join("a.zarr").exists());
}

/// Regression (review of #2): usage errors under `--json` still print one
/// JSON object, and non-UTF-8 paths do not panic.
#[test]
fn json_usage_errors_and_odd_paths() {
    let r = run(["--json", "create", "x", "--shape", "abc"]);
    assert_eq!(r.code, Some(2));
    assert!(r.json()["error"].as_str().unwrap().contains("abc"), "{r:?}");
    let help = run(["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("Usage"));

    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    run([
        "create", &a, "--shape", "6", "--chunks", "3", "--fill", "range", "-q",
    ])
    .success();
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"odd\xff.npy"));
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["export", "--json"]).arg(&a).arg(&odd);
    let r = common::run_command(cmd).success();
    assert!(r.json()["dst"].as_str().unwrap().contains("odd"), "{r:?}");
}

/// Regression (review of #2): `import --resume` refuses a different source.
#[test]
fn import_resume_refuses_another_source() {
    let dir = tempfile::tempdir().unwrap();
    let a = arg(dir.path(), "a.zarr");
    run([
        "create", &a, "--shape", "40", "--chunks", "8", "--fill", "range", "-q",
    ])
    .success();
    let one = arg(dir.path(), "one.npy");
    run(["export", &a, &one, "-q"]).success();
    let b = arg(dir.path(), "b.zarr");
    run([
        "create", &b, "--shape", "40", "--chunks", "8", "--fill", "normal", "-q",
    ])
    .success();
    let two = arg(dir.path(), "two.npy");
    run(["export", &b, &two, "-q"]).success();
    let dst = arg(dir.path(), "dst.zarr");
    run(["import", &one, &dst, "--chunks", "8", "-q"]).success();
    let same = run(["import", &one, &dst, "--chunks", "8", "--resume", "--json"])
        .success()
        .json();
    assert_eq!(same["chunks_skipped"], 5);
    let other = run(["import", &two, &dst, "--chunks", "8", "--resume"]);
    assert_eq!(other.code, Some(1));
    assert!(
        other.stderr.contains("filled by another job"),
        "{}",
        other.stderr
    );
}

/// Relative paths work (the store resolves keys against a relative base).
#[test]
fn relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let in_dir = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(args).current_dir(dir.path());
        common::run_command(cmd)
    };
    in_dir(&[
        "create", "rel.zarr", "--shape", "10", "--chunks", "4", "--fill", "range", "-q",
    ])
    .success();
    in_dir(&["export", "rel.zarr", "rel.npy", "-q"]).success();
    in_dir(&["import", "rel.npy", "sub/dir/back.zarr", "-q"]).success();
    in_dir(&["verify", "sub/dir/back.zarr"]).success();
}
