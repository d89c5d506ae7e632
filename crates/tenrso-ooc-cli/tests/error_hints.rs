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

/// The new user: `--spill-dir FAST:8MiB` alone cannot hold a chain's
/// 32 MiB intermediate — refused before any I/O with the numbers and the
/// flag; with `--spill-dir ROOMY` after it, `--explain` places it there and
/// the run leaves both empty.
#[test]
fn an_intermediate_no_tier_can_hold_hints_at_spill_dir() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, shape: &str, chunks: &str| {
        let path = arg(dir.path(), name);
        run([
            "create", &path, "--shape", shape, "--chunks", chunks, "--fill", "normal", "-q",
        ])
        .success();
        path
    };
    let a = make("a.zarr", "2048,16", "512,16");
    let b = make("b.zarr", "16,2048", "16,512");
    let c = make("c.zarr", "2048,8", "512,8");
    let (fast, roomy) = (dir.path().join("fast"), dir.path().join("roomy"));
    std::fs::create_dir_all(&fast).unwrap();
    std::fs::create_dir_all(&roomy).unwrap();
    let out = arg(dir.path(), "abc.zarr");
    let fast_tier = format!("{}:8MiB", fast.display());
    let einsum = |tiers: &[&str], extra: &[&str]| {
        let mut args = vec![
            "einsum",
            "ij,jk,kl->il",
            &a,
            &b,
            &c,
            "-o",
            &out,
            "--path",
            "sequential",
            "--memory-limit",
            "16MiB",
            // The bound counts a chunk being written per thread.
            "--threads",
            "2",
            "-q",
        ];
        for t in tiers {
            args.extend(["--spill-dir", t]);
        }
        args.extend(extra);
        run(args)
    };
    let r = einsum(&[&fast_tier], &[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        stderr(&r, dir.path()),
        "error: no spill tier can hold einsum step 0 result (34.33 MiB): TMP/fast holds 0 B of its 8.00 MiB cap, 8.00 MiB free; add a spill directory with room or raise a cap (ExecOptions::spill_dirs); hint: add --spill-dir PATH[:CAP] or raise its cap\n"
    );
    assert!(!std::path::Path::new(&out).exists());
    let roomy_tier = roomy.display().to_string();
    let explained = einsum(&[&fast_tier, &roomy_tier], &["--explain"]);
    let text = explained
        .success()
        .stdout
        .replace(dir.path().to_str().unwrap(), "TMP");
    assert!(
        text.contains(
            "intermediate: einsum step 0 result (at most 34.33 MiB) in tier 1: TMP/roomy"
        ),
        "{text}"
    );
    einsum(&[&fast_tier, &roomy_tier], &[]).success();
    for tier in [&fast, &roomy] {
        assert_eq!(std::fs::read_dir(tier).unwrap().count(), 0, "{tier:?}");
    }
}
