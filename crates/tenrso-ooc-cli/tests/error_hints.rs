//! The CLI's whole stderr for errors a flag can fix: the library's message
//! (which names its settings) and, on the same line, a hint naming the flag.
//! Temporary directories are written `TMP`.

mod common;

use common::{arg, run};

/// The run's stderr with `dir` written `TMP`.
fn stderr(r: &common::Run, dir: &std::path::Path) -> String {
    r.stderr.replace(dir.to_str().unwrap(), "TMP")
}

#[test]
fn a_memory_limit_refusal_hints_at_the_limit_and_chunk_flags() {
    let dir = tempfile::tempdir().unwrap();
    let r = run([
        "create",
        &arg(dir.path(), "a.zarr"),
        "--shape",
        "4096,4096",
        "--chunks",
        "2048,2048",
        "--memory-limit",
        "16MiB",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        stderr(&r, dir.path()),
        "error: memory limit 16.00 MiB is too small: the generator's model and one chunk needs at least 32.00 MiB; raise the limit (ExecOptions::memory_limit) or use smaller chunks; hint: raise --memory-limit or use smaller --chunks\n"
    );
}

#[test]
fn a_spill_cap_too_small_for_the_plan_hints_at_spill_dir() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    run([
        "create",
        &x,
        "--shape",
        "1024,1024",
        "--chunks",
        "16,1024",
        "--fill",
        "uniform",
        "-q",
    ])
    .success();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let cap = format!("{}:1MiB", spill.display());
    let r = run([
        "transpose",
        &x,
        "--axes",
        "1,0",
        "--chunks",
        "16,1024",
        "-o",
        &arg(dir.path(), "t.zarr"),
        "--memory-limit",
        "4MiB",
        "--spill-dir",
        &cap,
        "-q",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        stderr(&r, dir.path()),
        "error: cannot spill 6.05 MiB: every spill directory is full (the plan spills about 6.05 MiB but the spill tiers have room for 1.00 MiB: TMP/spill holds 0 B of its 1.00 MiB cap, 1.00 MiB free); add spill directories or raise their caps (ExecOptions::spill_dirs); hint: add --spill-dir PATH[:CAP] or raise its cap\n"
    );
}

#[test]
fn a_corrupt_chunk_hints_at_verify_and_json_carries_the_hint() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    run([
        "create", &x, "--shape", "8,8", "--chunks", "4,4", "--fill", "ones", "-q",
    ])
    .success();
    let chunk = dir.path().join("x.zarr/c/1/0");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[3] ^= 0x40;
    std::fs::write(&chunk, bytes).unwrap();
    let r = run(["reduce", "sum", &x, "-q"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        stderr(&r, dir.path()),
        "error: array TMP/x.zarr: chunk [1, 0] (key `c/1/0`) is corrupt: checksum mismatch; hint: `tenrso-ooc verify ARRAY` lists every bad chunk\n"
    );
    let j = run(["reduce", "sum", &x, "--json"]).json();
    assert_eq!(j["hint"], "`tenrso-ooc verify ARRAY` lists every bad chunk");
}

#[test]
fn errors_no_flag_fixes_get_no_hint() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(["info", &arg(dir.path(), "nope.zarr")]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        stderr(&r, dir.path()),
        "error: TMP/nope.zarr: not a Zarr v3 array: no such directory\n"
    );
    let j = run(["info", &arg(dir.path(), "nope.zarr"), "--json"]).json();
    assert!(j.get("hint").is_none(), "{j}");
}
