//! A writer killed mid-run leaves every chunk old or new, and `--resume`
//! finishes the job with the same bits as an uninterrupted run.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{arg, bin, identical, run, wait_with_rusage};
use tenrso_ooc::store::ZarrArray;

fn chunk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("c")).map_or(0, |rows| {
        rows.map(|r| std::fs::read_dir(r.unwrap().path()).map_or(0, |d| d.count()))
            .sum()
    })
}

#[test]
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4 in wait_with_rusage"
)]
fn sigkill_then_resume_gives_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let args = |path: &str| {
        vec![
            "create".to_string(),
            path.to_string(),
            "--shape".into(),
            "4096,4096".into(),
            "--chunks".into(),
            "256,256".into(),
            "--fill".into(),
            "lowrank:4:0.1".into(),
            "--seed".into(),
            "5".into(),
            "--codec".into(),
            "zstd:1".into(),
            "--threads".into(),
            "2".into(),
            "-q".into(),
        ]
    };
    let killed = arg(dir.path(), "killed.zarr");
    let child = Command::new(bin())
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few chunks are on disk, well before the 256 chunks are done.
    let start = Instant::now();
    while chunk_files(&dir.path().join("killed.zarr")) < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "writer made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let (code, _) = wait_with_rusage(child.id());
    drop(child);
    assert_eq!(
        code, None,
        "the writer finished before it could be killed; make the job larger"
    );

    // Every chunk on disk is complete: verify decodes them all.
    let written = chunk_files(&dir.path().join("killed.zarr"));
    let v = run(["verify", &killed, "--json"]).success().json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["chunks_stored"].as_u64().unwrap() < 256, "{v}");
    eprintln!(
        "killed after {written} chunk files; {} complete chunks",
        v["chunks_stored"]
    );

    // Without --resume the existing array is refused; with it the job completes.
    let refused = run(args(&killed));
    assert_eq!(refused.code, Some(1));
    let mut resume = args(&killed);
    resume.push("--resume".into());
    resume.push("--json".into());
    let r = run(resume).success().json();
    assert!(r["chunks_skipped"].as_u64().unwrap() >= 1, "{r}");

    let clean = arg(dir.path(), "clean.zarr");
    run(args(&clean)).success();
    let a = ZarrArray::open(&killed).unwrap();
    let b = ZarrArray::open(&clean).unwrap();
    assert_eq!(a.stored_chunks().unwrap().len(), 256);
    assert!(identical(ZarrArray::open(&killed).unwrap(), b));
    // Temporaries of the killed write (if it died mid-chunk) are listed and removable.
    let stale = a.stale_temporaries().unwrap().len();
    assert_eq!(a.remove_stale_temporaries().unwrap(), stale);
    assert!(a.stale_temporaries().unwrap().is_empty());
}
