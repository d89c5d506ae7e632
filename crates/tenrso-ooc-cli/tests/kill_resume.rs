//! A writer killed mid-run leaves every chunk old or new, and `--resume`
//! finishes the job with the same bits as an uninterrupted run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{arg, bin, identical, run};
use tenrso_ooc::store::ZarrArray;

#[test]
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
    // Kill it once a few chunks are on disk, well before the 256 chunks are done.
    kill_when_written(&args(&killed), Path::new(&killed), 8);

    // Every chunk on disk is complete: verify decodes them all.
    let written = stored_chunk_files(&dir.path().join("killed.zarr"));
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

/// Chunk files of a store (any depth under `c/`), temporaries excluded.
fn stored_chunk_files(store: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count(&e.path()),
                    Ok(_) if !e.file_name().to_string_lossy().contains(".tenrso-tmp.") => 1,
                    _ => 0,
                })
                .sum()
        })
    }
    count(&store.join("c"))
}

/// Runs `args` (writing `out`), SIGKILLs it once `files` chunk files of
/// `out` exist, and returns once it is reaped.
fn kill_when_written(args: &[String], out: &Path, files: usize) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while stored_chunk_files(out) < files {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{args:?} made no progress"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let code = child.wait().unwrap().code();
    assert_eq!(
        code, None,
        "{args:?} finished before it could be killed; make the job larger"
    );
}

/// `map`, `import` and `einsum`, each SIGKILLed mid-run under each
/// `--durability`: with `chunk` and `batch` every chunk on disk is complete
/// (`verify` clean) and `--resume` gives the uninterrupted result bitwise;
/// with `none` every chunk is the uninterrupted one or named by `verify`
/// (torn), and once those are removed `--resume` finishes the job.
#[test]
fn every_durability_survives_sigkill_during_map_import_and_einsum() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, a, npy) = (arg(d, "x.zarr"), arg(d, "a.zarr"), arg(d, "x.npy"));
    run([
        "create",
        &x,
        "--shape",
        "8192,8192",
        "--chunks",
        "64,8192",
        "--fill",
        "lowrank:4:0.1",
        "--seed",
        "3",
        "-q",
    ])
    .success();
    run([
        "create",
        &a,
        "--shape",
        "4096,4096",
        "--chunks",
        "256,256",
        "--fill",
        "uniform",
        "--seed",
        "4",
        "-q",
    ])
    .success();
    run(["export", &x, &npy, "-q"]).success();
    let jobs: [(&str, Vec<String>); 3] = [
        (
            "map",
            vec!["map".into(), "x*2+1".into(), x.clone(), "--out".into()],
        ),
        ("import", vec!["import".into(), npy.clone()]),
        (
            "einsum",
            vec![
                "einsum".into(),
                "ij,jk->ik".into(),
                a.clone(),
                a.clone(),
                "-o".into(),
            ],
        ),
    ];
    let tail = |job: &str| -> Vec<String> {
        let mut tail: Vec<String> = ["--codec", "zstd:3", "--threads", "2", "-q"]
            .map(String::from)
            .to_vec();
        match job {
            "import" => tail.extend(["--chunks".into(), "64,8192".into()]),
            "einsum" => tail.extend(["--memory-limit".into(), "48MiB".into()]),
            _ => {}
        }
        tail
    };
    for (job, head) in &jobs {
        let args = |out: &str, extra: &[&str]| -> Vec<String> {
            let mut args = head.clone();
            args.push(out.to_string());
            args.extend(tail(job));
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let clean = arg(d, &format!("{job}-clean.zarr"));
        run(args(&clean, &["--durability", "chunk"])).success();
        let clean_array = ZarrArray::open(&clean).unwrap();
        let total = clean_array.chunk_grid().num_chunks();
        for mode in ["chunk", "batch", "none"] {
            let killed = arg(d, &format!("{job}-{mode}.zarr"));
            kill_when_written(
                &args(&killed, &["--durability", mode]),
                Path::new(&killed),
                4,
            );
            let v = run(["verify", &killed, "--json"]).json();
            let stored = v["chunks_stored"].as_u64().unwrap();
            assert!(stored < total, "{job} {mode}: {v}");
            let bad: Vec<Vec<u64>> = v["bad_chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| serde_json::from_value(b["chunk"].clone()).unwrap())
                .collect();
            let array = ZarrArray::open(&killed).unwrap();
            let mut torn = Vec::new();
            for chunk in array.stored_chunks().unwrap() {
                match array.read_chunk::<f64>(&chunk) {
                    Ok(values) => assert_eq!(
                        values.as_slice(),
                        clean_array.read_chunk::<f64>(&chunk).unwrap().as_slice(),
                        "{job} {mode}: chunk {chunk:?} is neither absent nor complete"
                    ),
                    Err(_) => torn.push(chunk),
                }
            }
            assert_eq!(
                bad, torn,
                "{job} {mode}: verify names exactly the torn chunks: {v}"
            );
            if mode == "none" {
                for chunk in &torn {
                    std::fs::remove_file(array.chunk_path(chunk)).unwrap();
                }
            } else {
                assert_eq!(v["ok"], true, "{job} {mode}: {v}");
            }
            eprintln!(
                "{job} {mode}: killed with {stored} of {total} chunks, {} torn",
                torn.len()
            );
            run(args(&killed, &["--durability", mode, "--resume"])).success();
            assert!(
                identical(
                    ZarrArray::open(&killed).unwrap(),
                    ZarrArray::open(&clean).unwrap()
                ),
                "{job} {mode}: resumed result differs"
            );
        }
    }
}
