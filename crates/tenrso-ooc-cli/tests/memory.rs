//! Peak memory of streaming commands, measured on the child process: a 1 GiB
//! array with 16 MiB chunks goes to `.npy` and back under 128 MiB of RSS;
//! and the measure is the child's own, not the test process's.

mod common;

use common::{arg, identical, run};
use tenrso_ooc::store::ZarrArray;

const MIB: u64 = 1 << 20;

#[test]
fn import_and_export_of_1gib_npy_stay_under_128mib() {
    let dir = tempfile::tempdir().unwrap();
    let src = arg(dir.path(), "big.zarr");
    // 16384 x 8192 f64 = 1 GiB in 16 MiB chunks of 1024 x 2048.
    let shape = "16384,8192";
    let chunks = "1024,2048";
    run([
        "create",
        &src,
        "--shape",
        shape,
        "--chunks",
        chunks,
        "--fill",
        "uniform",
        "--seed",
        "3",
        "--memory-limit",
        "64MiB",
        "-q",
    ])
    .success();

    let npy = arg(dir.path(), "big.npy");
    let export = run(["export", &src, &npy, "--memory-limit", "64MiB", "-q"]).success();
    assert_eq!(std::fs::metadata(&npy).unwrap().len(), (1 << 30) + 128);
    eprintln!("export peak RSS {} MiB", export.peak_rss / MIB);
    assert!(
        export.peak_rss < 128 * MIB,
        "export peak RSS {} MiB",
        export.peak_rss / MIB
    );

    let dst = arg(dir.path(), "back.zarr");
    let import = run([
        "import",
        &npy,
        &dst,
        "--chunks",
        chunks,
        "--memory-limit",
        "64MiB",
        "-q",
    ])
    .success();
    eprintln!("import peak RSS {} MiB", import.peak_rss / MIB);
    assert!(
        import.peak_rss < 128 * MIB,
        "import peak RSS {} MiB",
        import.peak_rss / MIB
    );

    let a = ZarrArray::open(&src).unwrap();
    let b = ZarrArray::open(&dst).unwrap();
    assert!(identical(a, b), "the import differs from its source");
}

/// The peak every memory test asserts is the child's alone: a test process
/// that held 256 MiB before starting a small command does not lend it to
/// the command (`wait4`'s `ru_maxrss` would, through the child's `exec`).
#[test]
fn peak_rss_is_the_childs_own_not_the_test_process() {
    let held = vec![1u8; 256 << 20];
    // Touch every page, so that they are resident, then let them go.
    assert_eq!(
        held.iter()
            .step_by(4096)
            .map(|&b| b as usize)
            .sum::<usize>(),
        65536
    );
    drop(held);
    let r = run(["--version"]).success();
    eprintln!("--version: peak RSS {} MiB", r.peak_rss / MIB);
    assert!(r.peak_rss > 0);
    assert!(r.peak_rss < 64 * MIB, "peak RSS {} MiB", r.peak_rss / MIB);
}
