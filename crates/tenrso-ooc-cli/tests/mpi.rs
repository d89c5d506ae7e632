//! Every array command under `mpirun -np 1..4` against one process, bit for
//! bit; per-rank memory on data 4× the per-rank limit; fail-stop on a
//! corrupt chunk. Needs Open MPI (`mpirun`) and the build with `--features
//! mpi`; the default build compiles none of it.
//!
//! The one-process reference is the build without MPI when
//! `TENRSO_OOC_SERIAL_BIN` names it (`.ci/run` keeps a copy), else this
//! binary started without `mpirun` (one rank, no collective on any path).
#![cfg(feature = "mpi")]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bin;

/// What one `mpirun` produced.
#[derive(Debug)]
struct MpiRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
}

impl MpiRun {
    fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "mpirun failed: {self:#?}");
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `cmd` (stdin closed, output read on two threads), killing it after
/// `limit`: SIGTERM first (mpirun then ends its ranks), SIGKILL 5 s later.
fn run_with_timeout(mut cmd: Command, limit: Duration) -> MpiRun {
    let started = Instant::now();
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut terminated = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        let elapsed = started.elapsed();
        match terminated {
            None if elapsed > limit => {
                // SAFETY: kill only sends a signal to our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                terminated = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(5) => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    MpiRun {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// `mpirun -np N tenrso-ooc ARGS`, with what Open MPI needs as root and in
/// containers, killed after 120 s.
fn mpirun(np: usize, args: &[&str]) -> MpiRun {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", &np.to_string()])
        .arg(bin())
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        // Four ranks share two cores: one thread each keeps runs short.
        .env("RAYON_NUM_THREADS", "1");
    run_with_timeout(cmd, Duration::from_secs(120))
}

/// The one-process reference: the build without MPI, or this one started
/// without mpirun.
fn serial(args: &[&str]) -> MpiRun {
    let bin = std::env::var_os("TENRSO_OOC_SERIAL_BIN").map_or_else(bin, PathBuf::from);
    let mut cmd = Command::new(bin);
    cmd.args(args);
    run_with_timeout(cmd, Duration::from_secs(120))
}

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    found
}

/// Asserts two stores hold the same files, byte for byte.
fn assert_same_store(expected: &Path, got: &Path) {
    let (a, b) = (files(expected), files(got));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{} and {} hold different files",
        expected.display(),
        got.display()
    );
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{} differs between {} and {}",
            name.display(),
            expected.display(),
            got.display()
        );
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every command of the issue, on shapes the chunks do not divide, by one
/// process and by 1, 2, 3 and 4 ranks: the same files, the same values.
#[test]
fn every_command_is_bitwise_equal_for_one_to_four_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y, a, b, c) = (
        d.join("x"),
        d.join("y"),
        d.join("a"),
        d.join("b"),
        d.join("c"),
    );
    let create = |path: &Path, shape: &str, chunks: &str, fill: &str, seed: &str| {
        vec![
            "create".to_string(),
            p(path).to_string(),
            "--shape".into(),
            shape.into(),
            "--chunks".into(),
            chunks.into(),
            "--fill".into(),
            fill.into(),
            "--seed".into(),
            seed.into(),
            "-q".into(),
        ]
    };
    let inputs = [
        create(&x, "1000,777", "128,100", "uniform", "3"),
        create(&y, "1000,777", "96,130", "normal", "4"),
        create(&a, "600,450", "128,100", "uniform", "5"),
        create(&b, "450,530", "100,96", "normal", "6"),
        create(&c, "530,310", "96,64", "uniform", "7"),
    ];
    for args in &inputs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serial(&args).success();
    }
    // Commands writing an array: (name, arguments before the output path).
    let limit = ["--memory-limit", "12MiB", "-q"];
    let writes: Vec<(&str, Vec<&str>)> = vec![
        ("map", vec!["map", "x*2+sin(y)", p(&x), p(&y)]),
        ("reduce0", vec!["reduce", "sum", p(&x), "--axes", "0"]),
        ("reduce1", vec!["reduce", "max", p(&y), "--axes", "1"]),
        ("transpose", vec!["transpose", p(&x), "--axes", "1,0"]),
        ("rechunk", vec!["rechunk", p(&y), "--chunks", "300,70"]),
        ("matmul", vec!["einsum", "ij,jk->ik", p(&a), p(&b)]),
        ("chain", vec!["einsum", "ij,jk,kl->il", p(&a), p(&b), p(&c)]),
    ];
    let values: Vec<Vec<&str>> = vec![
        vec!["reduce", "sum", p(&x)],
        vec!["reduce", "mean", p(&y)],
        vec!["reduce", "norm", p(&x)],
        vec!["reduce", "min", p(&y)],
        vec!["reduce", "max", p(&x)],
        vec!["einsum", "ij,ij->", p(&x), p(&y)],
    ];
    let out = |name: &str, who: &str| d.join(format!("{name}-{who}"));
    let with_out = |args: &[&str], target: &Path| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["-o".to_string(), p(target).to_string()]);
        v.extend(limit.iter().map(|s| s.to_string()));
        v
    };
    for (name, args) in &writes {
        let v = with_out(args, &out(name, "serial"));
        serial(&v.iter().map(String::as_str).collect::<Vec<_>>()).success();
    }
    let expected_values: Vec<String> = values
        .iter()
        .map(|args| {
            let mut v = args.clone();
            v.extend(limit);
            serial(&v).success().stdout
        })
        .collect();
    let created = d.join("created-serial");
    serial(
        &create(&created, "333,250", "64,64", "normal", "9")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .success();
    for np in 1..=4 {
        let who = format!("np{np}");
        // Threads per rank vary too (the serial runs use every core).
        let threads = (np % 3 + 1).to_string();
        let threads = ["--threads", threads.as_str()];
        for (name, args) in &writes {
            let target = out(name, &who);
            let mut v = with_out(args, &target);
            v.extend(threads.iter().map(|s| s.to_string()));
            mpirun(np, &v.iter().map(String::as_str).collect::<Vec<_>>()).success();
            assert_same_store(&out(name, "serial"), &target);
        }
        for (args, expected) in values.iter().zip(&expected_values) {
            let mut v = args.clone();
            v.extend(limit);
            v.extend(threads);
            let got = mpirun(np, &v).success();
            assert_eq!(&got.stdout, expected, "{args:?} with {np} ranks");
        }
        let made = d.join(format!("created-{who}"));
        let v = create(&made, "333,250", "64,64", "normal", "9");
        mpirun(np, &v.iter().map(String::as_str).collect::<Vec<_>>()).success();
        assert_same_store(&created, &made);
        let verified = mpirun(np, &["verify", p(&made), "--json"]).success();
        assert_eq!(verified.json()["chunks_stored"], 24, "{verified:#?}");
    }
}

/// Two ranks, each under 64 MiB, on 256 MiB of data: every rank's peak
/// resident memory stays within its limit plus 64 MiB.
#[test]
fn each_rank_holds_its_own_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("x");
    // 256 MiB of f64 in 4 MiB chunks; a 16 MiB right-hand side.
    serial(&[
        "create",
        p(&x),
        "--shape",
        "4096,8192",
        "--chunks",
        "512,1024",
        "--fill",
        "uniform",
        "-q",
    ])
    .success();
    let w = d.join("w");
    serial(&[
        "create",
        p(&w),
        "--shape",
        "8192,256",
        "--chunks",
        "1024,256",
        "-q",
    ])
    .success();
    // 256 MiB of a 3-way f64 tensor for the decompositions.
    let y = d.join("y");
    serial(&[
        "create",
        p(&y),
        "--shape",
        "320,320,320",
        "--chunks",
        "80,80,80",
        "--fill",
        "normal",
        "-q",
    ])
    .success();
    let limit: u64 = 64 << 20;
    let (m, r, t, e) = (d.join("m"), d.join("r"), d.join("t"), d.join("e"));
    let (cp, tk) = (d.join("cp"), d.join("tk"));
    let runs: [Vec<&str>; 7] = [
        vec!["map", "x*2+1", p(&x), "-o", p(&m)],
        vec!["reduce", "norm", p(&x)],
        vec!["reduce", "sum", p(&x), "--axes", "1", "-o", p(&r)],
        vec!["transpose", p(&x), "--axes", "1,0", "-o", p(&t)],
        vec!["einsum", "ij,jk->ik", p(&x), p(&w), "-o", p(&e)],
        vec![
            "cp",
            p(&y),
            "--rank",
            "8",
            "--iters",
            "2",
            "--init",
            "random",
            "--stream",
            "-o",
            p(&cp),
        ],
        vec![
            "tucker",
            p(&y),
            "--ranks",
            "8,8,8",
            "--iters",
            "1",
            "--init",
            "random",
            "--stream",
            "-o",
            p(&tk),
        ],
    ];
    for args in &runs {
        let mut v = args.clone();
        v.extend(["--memory-limit", "64MiB", "--json", "-q"]);
        let run = mpirun(2, &v).success();
        let peaks = run.json()["ranks_peak_rss_bytes"].clone();
        let peaks: Vec<u64> = peaks
            .as_array()
            .unwrap_or_else(|| panic!("no per-rank peaks: {run:#?}"))
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect();
        assert_eq!(peaks.len(), 2);
        for (rank, peak) in peaks.iter().enumerate() {
            assert!(
                *peak <= limit + (64 << 20),
                "{args:?}: rank {rank} peaked at {} MiB",
                peak >> 20
            );
        }
    }
}

/// A chunk one rank reads is corrupt: every rank ends, non-zero, within
/// 10 s, with that rank's error naming the chunk; `verify` lists it.
#[test]
fn a_corrupt_chunk_on_one_rank_ends_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    serial(&[
        "create",
        p(&x),
        "--shape",
        "1000,777",
        "--chunks",
        "128,100",
        "-q",
    ])
    .success();
    // The last chunk along both axes: the last rank's.
    let chunk = x.join("c/7/7");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&chunk, bytes).unwrap();
    for args in [
        vec!["reduce", "sum", p(&x)],
        vec!["map", "x+1", p(&x), "-o", p(&dir.path().join("y"))],
    ] {
        let run = mpirun(3, &args);
        assert_ne!(run.code, Some(0), "{run:#?}");
        assert!(run.seconds < 10.0, "took {} s: {run:#?}", run.seconds);
        assert!(
            run.stderr.contains("error (rank 2 of 3)") && run.stderr.contains("[7, 7]"),
            "{run:#?}"
        );
    }
    let run = mpirun(3, &["verify", p(&x), "--json"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let bad = &run.json()["bad_chunks"];
    assert_eq!(bad.as_array().map(Vec::len), Some(1), "{run:#?}");
}

/// The files of a decomposition's OUTDIR but those holding timings
/// (`report.json`, the checkpoint's `state.json`).
fn model_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = files(dir);
    found.retain(|p, _| !p.ends_with("report.json") && !p.ends_with("state.json"));
    found
}

/// `cp`, `tucker` and `reconstruct` of their models by one process and by
/// 1, 2 and 3 ranks: the same factor, weight and core files and the same
/// reconstructed stores, byte for byte.
#[test]
fn decompositions_are_bitwise_equal_for_one_to_three_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    serial(&[
        "create",
        p(&x),
        "--shape",
        "90,70,50",
        "--chunks",
        "32,32,16",
        "--fill",
        "lowrank:4:0.1",
        "-q",
    ])
    .success();
    let limit = ["--memory-limit", "8MiB", "-q"];
    let commands = |out: &Path| -> Vec<Vec<String>> {
        let o = |name: &str| out.join(name).display().to_string();
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        vec![
            s(&[
                "cp",
                p(&x),
                "--rank",
                "4",
                "--iters",
                "4",
                "--tol",
                "0",
                "--stream",
                "-o",
                &o("cp"),
            ]),
            s(&[
                "cp",
                p(&x),
                "--rank",
                "3",
                "--iters",
                "3",
                "--tol",
                "0",
                "--sweep",
                "per-mode",
                "--init",
                "random",
                "--normalize",
                "-o",
                &o("cp-random"),
            ]),
            s(&[
                "tucker",
                p(&x),
                "--ranks",
                "5,4,3",
                "--iters",
                "3",
                "--tol",
                "0",
                "--stream",
                "-o",
                &o("tucker"),
            ]),
            s(&["reconstruct", &o("cp"), "-o", &o("cp.zarr")]),
            s(&[
                "reconstruct",
                &o("tucker"),
                "-o",
                &o("tucker.zarr"),
                "--dtype",
                "f32",
            ]),
        ]
    };
    let one = dir.path().join("one");
    for args in commands(&one) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serial(&[&args[..], &limit].concat()).success();
    }
    for np in 1..=3 {
        let out = dir.path().join(format!("np{np}"));
        for args in commands(&out) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            mpirun(np, &[&args[..], &limit].concat()).success();
        }
        for model in ["cp", "cp-random", "tucker"] {
            let (a, b) = (model_files(&one.join(model)), model_files(&out.join(model)));
            assert!(a.len() >= 4, "{model}: {:?}", a.keys());
            assert!(a == b, "{model} differs with {np} ranks");
        }
        for store in ["cp.zarr", "tucker.zarr"] {
            assert_same_store(&one.join(store), &out.join(store));
        }
    }
}

/// `--report` under 3 ranks merges every rank: each one's bytes and times,
/// the totals, and the table of the HTML page.
#[test]
fn the_run_report_merges_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    serial(&[
        "create",
        p(&x),
        "--shape",
        "600,500",
        "--chunks",
        "100,100",
        "-q",
    ])
    .success();
    let json = dir.path().join("run.json");
    mpirun(3, &["reduce", "sum", p(&x), "--report", p(&json), "-q"]).success();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let ranks = report["ranks"].as_array().expect("a row per rank");
    assert_eq!(ranks.len(), 3, "{report:#}");
    let figure = |r: &serde_json::Value, name: &str| r[name].as_u64().unwrap();
    let total = &report["ranks_total"];
    for name in ["bytes_read", "bytes_sent", "bytes_received"] {
        let sum: u64 = ranks.iter().map(|r| figure(r, name)).sum();
        assert_eq!(figure(total, name), sum, "{name}");
    }
    // Every chunk read once, by one rank each.
    assert_eq!(figure(total, "bytes_read"), 600 * 500 * 8);
    for (k, r) in ranks.iter().enumerate() {
        assert_eq!(figure(r, "rank"), k as u64);
        assert!(figure(r, "bytes_read") > 0, "{r}");
        assert!(figure(r, "bytes_sent") > 0, "{r}");
        assert!(figure(r, "peak_rss_bytes") > 0, "{r}");
        assert!(r["communication_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["task_seconds"].as_f64().unwrap() > 0.0, "{r}");
    }
    // What rank r sent, the two others received.
    assert_eq!(figure(total, "bytes_sent"), figure(total, "bytes_received"));
    let page = dir.path().join("run.html");
    mpirun(3, &["reduce", "sum", p(&x), "--report", p(&page), "-q"]).success();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<h2>Ranks</h2>"), "no table of ranks");
    assert_eq!(html.matches("<tr><th>rank ").count(), 3);
}

/// Under `mpirun -np 1..4 … --otlp-endpoint`, every rank exports its own
/// trace, named by the resource attribute `tenrso.rank`: one `command`
/// root each, whose operations read the array between them once; the
/// result is the one process's.
#[cfg(feature = "otel")]
#[test]
fn each_rank_exports_its_own_spans() {
    let Some(python) = common::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let receiver = common::OtlpReceiver::start(&python, dir.path());
    let x = dir.path().join("x");
    serial(&[
        "create",
        p(&x),
        "--shape",
        "600,500",
        "--chunks",
        "100,100",
        "-q",
    ])
    .success();
    let expected = serial(&["reduce", "sum", p(&x), "-q"]).success();
    let url = receiver.url();
    for np in 1..=4 {
        let args = ["reduce", "sum", p(&x), "-q", "--otlp-endpoint", &url];
        let got = mpirun(np, &args).success();
        assert_eq!(got.stdout, expected.stdout, "{np} ranks");
        let records = receiver.take();
        let spans: Vec<&serde_json::Value> =
            records.iter().filter(|r| r["signal"] == "span").collect();
        let mut roots: Vec<&serde_json::Value> = spans
            .iter()
            .copied()
            .filter(|s| s["parent_span_id"] == "")
            .collect();
        roots.sort_by_key(|r| r["resource"]["tenrso.rank"].as_str().map(str::to_string));
        let ranks: Vec<String> = roots
            .iter()
            .map(|r| r["resource"]["tenrso.rank"].as_str().unwrap().to_string())
            .collect();
        let expected_ranks: Vec<String> = (0..np).map(|r| r.to_string()).collect();
        assert_eq!(ranks, expected_ranks, "{roots:?}");
        let traces: std::collections::HashSet<&str> = roots
            .iter()
            .map(|r| r["trace_id"].as_str().unwrap())
            .collect();
        assert_eq!(traces.len(), np, "a trace per rank");
        let mut read = 0;
        for root in &roots {
            assert_eq!(root["name"], "tenrso-ooc reduce");
            let operation = spans
                .iter()
                .find(|s| s["parent_span_id"] == root["span_id"] && s["name"] == "operation")
                .unwrap_or_else(|| panic!("no operation under {root}"));
            read += operation["attributes"]["read_bytes"].as_i64().unwrap();
        }
        assert_eq!(read, 600 * 500 * 8, "{np} ranks");
    }
}

/// A 3-operand chain whose 11 MiB intermediate is larger than each rank's
/// 8 MiB limit, each rank with its own `--local-dir`: bitwise the one
/// process's result, chunks fetched between ranks (the merged report says
/// how many bytes), and nothing left in any local directory.
#[test]
fn intermediates_on_distinct_local_dirs_are_fetched_between_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c"];
    for (seed, name) in names.iter().enumerate() {
        let path = dir.path().join(name);
        let seed = seed.to_string();
        serial(&[
            "create",
            p(&path),
            "--shape",
            "1200,1200",
            "--chunks",
            "200,200",
            "--fill",
            "normal",
            "--seed",
            &seed,
            "-q",
        ])
        .success();
    }
    let operands: Vec<String> = names
        .iter()
        .map(|n| dir.path().join(n).display().to_string())
        .collect();
    let one = dir.path().join("one");
    serial(&[
        "einsum",
        "ij,jk,kl->il",
        &operands[0],
        &operands[1],
        &operands[2],
        "-o",
        p(&one),
        "--memory-limit",
        "8MiB",
        "-q",
    ])
    .success();
    let out = dir.path().join("three");
    let report = dir.path().join("run.json");
    let local = dir.path().join("local");
    // Each rank its own directory, named by its rank.
    let script = format!(
        "exec \"$0\" einsum 'ij,jk,kl->il' {} {} {} -o {} --memory-limit 8MiB --threads 1 -q --report {} --local-dir {}/rank$OMPI_COMM_WORLD_RANK",
        operands[0],
        operands[1],
        operands[2],
        p(&out),
        p(&report),
        p(&local)
    );
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", "3", "sh", "-c", &script])
        .arg(bin())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    run_with_timeout(cmd, Duration::from_secs(120)).success();
    assert_same_store(&one, &out);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let fetched: Vec<u64> = report["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes_fetched"].as_u64().unwrap())
        .collect();
    assert_eq!(fetched.len(), 3);
    assert!(
        fetched.iter().sum::<u64>() > 0,
        "no chunk fetched: {fetched:?}"
    );
    for rank in 0..3 {
        let mine = local.join(format!("rank{rank}"));
        let left: Vec<_> = std::fs::read_dir(&mine).unwrap().collect();
        assert!(left.is_empty(), "left in {}: {left:?}", mine.display());
    }
}

/// The process ids of `mpirun`'s ranks (its children running this binary).
fn ranks_of(mpirun: u32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(mpirun) && stat.contains("(tenrso-ooc)") {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Starts `mpirun -np N tenrso-ooc ARGS`, SIGKILLs one rank once `ready`
/// holds, and returns the run (which must end by itself).
fn kill_one_rank_when(
    np: usize,
    args: &[&str],
    ready: impl Fn() -> bool + Send + 'static,
) -> MpiRun {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", &np.to_string()])
        .arg(bin())
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("RAYON_NUM_THREADS", "1");
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let id = child.id();
    let killer = std::thread::spawn(move || {
        while started.elapsed() < Duration::from_secs(60) {
            let ranks = ranks_of(id);
            if ranks.len() == np && ready() {
                // SAFETY: a signal to a rank of our own mpirun.
                unsafe { libc::kill(ranks[np - 1], libc::SIGKILL) };
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    });
    let output = child.wait_with_output().expect("wait");
    let killed_at = killer
        .join()
        .unwrap()
        .expect("the run got far enough to be killed");
    MpiRun {
        code: output.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        seconds: killed_at.elapsed().as_secs_f64(),
    }
}

/// A rank killed with SIGKILL mid-einsum ends the job within 30 s; the
/// same command with `--resume`, with the same or another number of ranks,
/// ends bitwise equal to an uninterrupted run. The same for CP-ALS from
/// its checkpoint.
#[test]
fn a_killed_rank_ends_the_job_and_resume_finishes_it_with_any_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (path, shape, seed) in [(&a, "2400,2000", "1"), (&b, "2000,2400", "2")] {
        serial(&[
            "create",
            p(path),
            "--shape",
            shape,
            "--chunks",
            "100,100",
            "--fill",
            "normal",
            "--seed",
            seed,
            "-q",
        ])
        .success();
    }
    let whole = dir.path().join("whole");
    let scratch = dir.path().join("scratch");
    let einsum = |out: &Path| {
        vec![
            "einsum".to_string(),
            "ij,jk->ik".into(),
            p(&a).into(),
            p(&b).into(),
            "-o".into(),
            p(out).into(),
            "--memory-limit".into(),
            "16MiB".into(),
            "-q".into(),
            // A killed rank leaves its scratch: here, not in /tmp.
            "--local-dir".into(),
            p(&scratch).into(),
        ]
    };
    let strs = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();
    let args = einsum(&whole);
    serial(&args.iter().map(String::as_str).collect::<Vec<_>>()).success();
    for (first, then) in [(3, 3), (3, 2)] {
        let out = dir.path().join(format!("killed-{first}-{then}"));
        let args = strs(&einsum(&out));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let chunks = out.join("c");
        let killed = kill_one_rank_when(first, &args, move || {
            std::fs::read_dir(&chunks).is_ok_and(|d| d.count() >= 2)
        });
        assert_ne!(killed.code, Some(0), "{killed:#?}");
        assert!(
            killed.seconds < 30.0,
            "the job took {} s to end: {killed:#?}",
            killed.seconds
        );
        let chunk_files = |dir: &Path| files(&dir.join("c")).len();
        assert!(
            chunk_files(&out) < chunk_files(&whole),
            "the einsum had finished when its rank was killed"
        );
        mpirun(then, &[&args[..], &["--resume"]].concat()).success();
        assert_same_store(&whole, &out);
    }
    let x = dir.path().join("x");
    serial(&[
        "create",
        p(&x),
        "--shape",
        "160,150,140",
        "--chunks",
        "40,50,35",
        "--fill",
        "lowrank:5:0.1",
        "-q",
    ])
    .success();
    let cp = |out: &Path| {
        vec![
            "cp".to_string(),
            p(&x).into(),
            "--rank".into(),
            "5".into(),
            "--iters".into(),
            "12".into(),
            "--tol".into(),
            "0".into(),
            "--stream".into(),
            "--memory-limit".into(),
            "8MiB".into(),
            "--local-dir".into(),
            p(&scratch).into(),
            "-q".into(),
            "-o".into(),
            p(out).into(),
        ]
    };
    let whole = dir.path().join("cp-whole");
    let args = cp(&whole);
    serial(&args.iter().map(String::as_str).collect::<Vec<_>>()).success();
    let out = dir.path().join("cp-killed");
    let args = cp(&out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let state = out.join("checkpoint/state.json");
    let ready = state.clone();
    let killed = kill_one_rank_when(3, &args, move || ready.exists());
    assert_ne!(killed.code, Some(0), "{killed:#?}");
    assert!(
        killed.seconds < 30.0,
        "the job took {} s to end: {killed:#?}",
        killed.seconds
    );
    assert!(
        !out.join("factor_0.npy").exists(),
        "the run ended before it was killed"
    );
    let resumed = mpirun(2, &[&args[..], &["--resume", "--json"]].concat()).success();
    assert!(
        resumed.json()["resumed_after"].as_u64().is_some(),
        "{resumed:#?}"
    );
    assert!(
        model_files(&whole) == model_files(&out),
        "CP-ALS resumed with 2 ranks differs"
    );
}

/// Commands that do not run distributed yet say so, and `--explain` shows
/// each rank's share.
#[test]
fn refusals_and_explained_shares() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    serial(&[
        "create",
        p(&a),
        "--shape",
        "2000,1500",
        "--chunks",
        "250,250",
        "-q",
    ])
    .success();
    serial(&[
        "create",
        p(&b),
        "--shape",
        "1500,1800",
        "--chunks",
        "250,300",
        "-q",
    ])
    .success();
    let export = mpirun(2, &["export", p(&a), p(&dir.path().join("a.npy"))]);
    assert_eq!(export.code, Some(2), "{export:#?}");
    assert!(
        export.stderr.contains("`export` runs in one process"),
        "{export:#?}"
    );
    let c = dir.path().join("c");
    let explain = [
        "einsum",
        "ij,jk->ik",
        p(&a),
        p(&b),
        "-o",
        p(&c),
        "--explain",
    ];
    let limit = ["--memory-limit", "12MiB"];
    let explained = mpirun(4, &[&explain[..], &limit].concat()).success();
    assert!(
        explained.stdout.contains("2x2 grid of ranks"),
        "{explained:#?}"
    );
    let json = mpirun(4, &[&explain[..], &limit, &["--json"]].concat())
        .success()
        .json();
    let step = &json["ranks"][0];
    assert_eq!(step["rank_grid"], serde_json::json!([2, 2]));
    // A row block of a and a column block of b per rank.
    let (a_bytes, b_bytes) = (2000u64 * 1500 * 8, 1500u64 * 1800 * 8);
    assert_eq!(step["bytes_read_per_rank"], a_bytes / 2 + b_bytes / 2);
    let map = mpirun(
        3,
        &[
            "map",
            "x+1",
            p(&a),
            "-o",
            p(&dir.path().join("m")),
            "--explain",
            "--json",
        ],
    )
    .success()
    .json();
    let shares = map["ranks"].as_array().unwrap();
    assert_eq!(shares.len(), 3);
    let tasks: u64 = shares.iter().map(|s| s["tasks"].as_u64().unwrap()).sum();
    assert_eq!(tasks, 48);
}
