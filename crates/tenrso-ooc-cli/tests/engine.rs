//! The engine's commands as child processes: memory bounds on 1 GiB arrays,
//! spilling, interrupts, metrics and explain.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{arg, identical, run, spawn};
use tenrso_ooc::store::ZarrArray;
use tenrso_ooc::{Block, Region};

const MIB: u64 = 1 << 20;
const LIMIT: &str = "128MiB";
const BOUND: u64 = 128 * MIB + 64 * MIB;

fn open(path: &str) -> ZarrArray {
    ZarrArray::open(path).unwrap()
}
/// Checks chunks of `out` against `f(region)`: every chunk, or with
/// `sample`, the first, last and two middle ones (when rebuilding a chunk
/// from the input costs a pass over it). Exhaustive checks on small arrays
/// are in the library's tests.
fn check_chunks(out: &ZarrArray, sample: bool, f: impl Fn(&Region) -> Block<f64>) {
    let n = out.chunk_grid().num_chunks();
    let picks: Vec<u64> = if sample {
        vec![0, n / 3, 2 * n / 3, n - 1]
    } else {
        (0..n).collect()
    };
    for k in picks {
        let c = out.chunk_grid().chunk_coords(k);
        let got = out.read_chunk::<f64>(&c).unwrap();
        assert_eq!(got, f(&out.chunk_grid().chunk_region(&c)), "chunk {c:?}");
    }
}
#[test]
fn gib_arrays_stay_under_the_limit_for_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    // 8192 x 16384 f64 = 1 GiB, in 4 MiB chunks of full rows.
    run([
        "create",
        &x,
        "--shape",
        "8192,16384",
        "--chunks",
        "32,16384",
        "--fill",
        "uniform",
        "--seed",
        "7",
        "--memory-limit",
        LIMIT,
        "-q",
    ])
    .success();
    let xa = open(&x);

    // reduce sum (a value) and mean over an axis (an array).
    let sum = run(["reduce", "sum", &x, "--memory-limit", LIMIT, "--json", "-q"]).success();
    eprintln!("reduce sum: peak {} MiB", sum.peak_rss / MIB);
    assert!(
        sum.peak_rss <= BOUND,
        "reduce peak {} MiB",
        sum.peak_rss / MIB
    );
    let mut reference = (0.0f64, 0.0f64);
    for c in xa.chunk_grid().iter() {
        for v in xa.read_chunk::<f64>(&c).unwrap().as_slice() {
            let t = reference.0 + v;
            reference.1 += if reference.0.abs() >= v.abs() {
                (reference.0 - t) + v
            } else {
                (v - t) + reference.0
            };
            reference.0 = t;
        }
    }
    let want = reference.0 + reference.1;
    let got = sum.json()["value"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-9 * want.abs(), "{got} vs {want}");

    // map x*2+1.
    let y = arg(dir.path(), "y.zarr");
    let m = run(["map", "x*2+1", &x, "-o", &y, "--memory-limit", LIMIT, "-q"]).success();
    eprintln!("map: peak {} MiB", m.peak_rss / MIB);
    assert!(m.peak_rss <= BOUND, "map peak {} MiB", m.peak_rss / MIB);
    check_chunks(&open(&y), false, |r| {
        let b = xa.read_region::<f64>(r).unwrap();
        Block::from_vec(
            b.shape().to_vec(),
            b.as_slice().iter().map(|v| v * 2.0 + 1.0).collect(),
        )
        .unwrap()
    });

    // A transpose whose output chunks cross every input chunk: it must go
    // through a spilled intermediate.
    let t = arg(dir.path(), "t.zarr");
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let tr = run([
        "transpose",
        &x,
        "--axes",
        "1,0",
        "--chunks",
        "64,8192",
        "-o",
        &t,
        "--memory-limit",
        LIMIT,
        "--spill-dir",
        spill.to_str().unwrap(),
        "--json",
        "-q",
    ])
    .success();
    let j = tr.json();
    eprintln!("transpose: peak {} MiB, {j}", tr.peak_rss / MIB);
    assert!(
        tr.peak_rss <= BOUND,
        "transpose peak {} MiB",
        tr.peak_rss / MIB
    );
    assert!(j["bytes_spilled"].as_u64().unwrap() > 0, "{j}");
    let moved = j["bytes_read"].as_u64().unwrap() + j["bytes_written"].as_u64().unwrap();
    assert!(moved <= 3 * xa.nbytes(), "{j}");
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "spill files removed"
    );
    check_chunks(&open(&t), true, |r| {
        let src = Region::new(
            vec![r.start()[1], r.start()[0]],
            vec![r.shape()[1], r.shape()[0]],
        );
        xa.read_region::<f64>(&src).unwrap().permuted(&[1, 0])
    });

    // rechunk to square chunks.
    let r = arg(dir.path(), "r.zarr");
    let rc = run([
        "rechunk",
        &x,
        "--chunks",
        "1024,512",
        "-o",
        &r,
        "--memory-limit",
        LIMIT,
        "-q",
    ])
    .success();
    eprintln!("rechunk: peak {} MiB", rc.peak_rss / MIB);
    assert!(
        rc.peak_rss <= BOUND,
        "rechunk peak {} MiB",
        rc.peak_rss / MIB
    );
    let ra = open(&r);
    assert_eq!(ra.chunk_grid().chunk_shape(), &[1024, 512]);
    check_chunks(&ra, true, |r| xa.read_region::<f64>(r).unwrap());

    // A contraction, whose tiles read these uncompressed 4 MiB chunks in
    // place (mapped from the page cache): x · 1 gives each row's sum.
    assert!(xa.chunk_nbytes() >= tenrso_ooc::io::MAP_MIN_BYTES);
    let ones = arg(dir.path(), "ones.zarr");
    run([
        "create", &ones, "--shape", "16384", "--chunks", "16384", "--fill", "ones", "-q",
    ])
    .success();
    let rows = arg(dir.path(), "rows.zarr");
    let e = run([
        "einsum",
        "ij,j->i",
        &x,
        &ones,
        "-o",
        &rows,
        "--memory-limit",
        LIMIT,
        "-q",
    ])
    .success();
    eprintln!("einsum: peak {} MiB", e.peak_rss / MIB);
    assert!(e.peak_rss <= BOUND, "einsum peak {} MiB", e.peak_rss / MIB);
    let got = open(&rows)
        .read_region::<f64>(&Region::full(&[8192]))
        .unwrap();
    for chunk in xa.chunk_grid().iter() {
        let block = xa.read_chunk::<f64>(&chunk).unwrap();
        let first = xa.chunk_grid().chunk_region(&chunk).start()[0] as usize;
        for (r, row) in block.as_slice().chunks(16384).enumerate() {
            let (want, scale): (f64, f64) = (row.iter().sum(), row.iter().map(|v| v.abs()).sum());
            let g = got.as_slice()[first + r];
            assert!(
                (g - want).abs() <= 1e-12 * scale,
                "row {}: {g} against {want}",
                first + r
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_threads_or_readers() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    run([
        "create",
        &x,
        "--shape",
        "300,200,20",
        "--chunks",
        "64,64,20",
        "--fill",
        "normal",
        "-q",
    ])
    .success();
    let mut sums = Vec::new();
    // (threads, reader threads loading ahead)
    let configs = [("1", "1"), ("2", "4")];
    for (k, (threads, readers)) in configs.into_iter().enumerate() {
        let s = run([
            "reduce",
            "sum",
            &x,
            "--threads",
            threads,
            "--readers",
            readers,
            "--json",
            "-q",
        ])
        .success();
        sums.push(s.json()["value"].as_f64().unwrap().to_bits());
        for (name, cmd) in [
            ("m", vec!["map", "sqrt(abs(x))*x"]),
            (
                "t",
                vec!["transpose", "--axes", "2,0,1", "--chunks", "20,7,300"],
            ),
            ("e", vec!["einsum", "ijk,ljk->il"]),
        ] {
            let out = arg(dir.path(), &format!("{name}{k}"));
            let mut args: Vec<&str> = cmd.clone();
            match name {
                "m" => args.push(&x),
                "e" => args.extend([x.as_str(), x.as_str()]),
                _ => args.insert(1, &x),
            }
            args.extend([
                "-o",
                &out,
                "--threads",
                threads,
                "--readers",
                readers,
                "--memory-limit",
                "8MiB",
                "-q",
            ]);
            run(args).success();
        }
    }
    assert_eq!(sums[0], sums[1]);
    for name in ["m", "t", "e"] {
        let a = ZarrArray::open(dir.path().join(format!("{name}0"))).unwrap();
        let b = ZarrArray::open(dir.path().join(format!("{name}1"))).unwrap();
        assert!(identical(a, b), "{name}");
    }
}

#[test]
fn explain_prints_the_plan_and_refuses_impossible_ones_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    run([
        "create", &x, "--shape", "512,512", "--chunks", "512,512", "--fill", "ones", "-q",
    ])
    .success();
    let out = arg(dir.path(), "t.zarr");
    let e = run(["--explain", "transpose", &x, "--axes", "1,0", "-o", &out]).success();
    assert!(
        e.stdout.contains("plan: transpose") && e.stdout.contains("min working set"),
        "{}",
        e.stdout
    );
    let j = run(["--explain", "--json", "reduce", "max", &x])
        .success()
        .json();
    assert_eq!(j["tasks"], 1);
    assert_eq!(j["bytes_read"], 512 * 512 * 8);
    assert!(!dir.path().join("t.zarr").exists());
    // 1 MiB cannot hold one 2 MiB chunk's decode buffers: refused, nothing read.
    let r = run([
        "transpose",
        &x,
        "--axes",
        "1,0",
        "-o",
        &out,
        "--memory-limit",
        "1MiB",
        "--report",
        &arg(dir.path(), "rep.json"),
    ]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("memory limit 1.00 MiB is too small"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("t.zarr").exists());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("rep.json")).unwrap())
            .unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["metrics"]["read_bytes_total"], 0);
}

#[test]
fn tiny_spill_cap_is_a_typed_error_and_leaves_no_output() {
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
    let out = arg(dir.path(), "t.zarr");
    let cap = format!("{}:1MiB", spill.display());
    let r = run([
        "transpose",
        &x,
        "--axes",
        "1,0",
        "--chunks",
        "16,1024",
        "-o",
        &out,
        "--memory-limit",
        "4MiB",
        "--spill-dir",
        &cap,
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("cannot spill") && r.stderr.contains("--spill-dir"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("t.zarr").exists());
}

/// Runs `args` in the background, returning the child and its stderr lines.
fn spill_dirs_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("tenrso-spill")
        })
        .count()
}

/// Interrupts a spilling transpose with `signal` once spill files exist:
/// the run is cancelled (exit 128 + signal), the spill directory is gone,
/// the output is a valid array, and `--resume` finishes it with the bits of
/// an uninterrupted run.
fn interrupted_transpose_is_tidy_and_resumable(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    run([
        "create",
        &x,
        "--shape",
        "4096,4096",
        "--chunks",
        "16,4096",
        "--fill",
        "uniform",
        "-q",
    ])
    .success();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let out = arg(dir.path(), "t.zarr");
    let (mut child, _lines) = spawn(&[
        "transpose",
        &x,
        "--axes",
        "1,0",
        "--chunks",
        "16,4096",
        "-o",
        &out,
        "--memory-limit",
        "16MiB",
        "--threads",
        "1",
        "--spill-dir",
        spill.to_str().unwrap(),
        "-q",
    ]);
    // Wait for spill files, then interrupt.
    let start = Instant::now();
    let spill_files = || -> usize {
        std::fs::read_dir(&spill)
            .unwrap()
            .filter_map(Result::ok)
            .map(|d| std::fs::read_dir(d.path()).map_or(0, |f| f.count()))
            .sum()
    };
    while spill_files() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no spill files appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(128 + signal));
    assert_eq!(
        spill_dirs_in(&spill),
        0,
        "spill directories removed on interrupt"
    );
    // What was written is a valid array; resuming completes it.
    run(["verify", &out, "-q"]).success();
    let transpose = |out: &str, resume: bool| {
        let mut args = vec![
            "transpose",
            &x,
            "--axes",
            "1,0",
            "--chunks",
            "16,4096",
            "-o",
            out,
            "--memory-limit",
            "16MiB",
            "--spill-dir",
            spill.to_str().unwrap(),
            "-q",
        ];
        if resume {
            args.push("--resume");
        }
        run(args).success();
    };
    transpose(&out, true);
    let fresh = arg(dir.path(), "fresh.zarr");
    transpose(&fresh, false);
    // Compared chunk by chunk: reading whole files into this process would
    // inflate the peak RSS that concurrently spawned children report (they
    // share its address space until exec).
    assert!(
        identical(
            ZarrArray::open(&out).unwrap(),
            ZarrArray::open(&fresh).unwrap()
        ),
        "the resumed transpose differs from an uninterrupted one"
    );
    assert_eq!(spill_dirs_in(&spill), 0);
}

#[test]
fn sigint_cancels_tidily_and_resumes() {
    interrupted_transpose_is_tidy_and_resumable(libc::SIGINT);
}

#[test]
fn sigterm_cancels_tidily_and_resumes() {
    interrupted_transpose_is_tidy_and_resumable(libc::SIGTERM);
}

#[test]
fn metrics_answer_while_running_and_match_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    run([
        "create",
        &x,
        "--shape",
        "4096,4096",
        "--chunks",
        "256,4096",
        "--fill",
        "uniform",
        "-q",
    ])
    .success();
    let report = dir.path().join("report.json");
    let y = arg(dir.path(), "y.zarr");
    let (mut child, lines) = spawn(&[
        "map",
        "sqrt(abs(x))+log(x+1)*x",
        &x,
        "-o",
        &y,
        "--threads",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--report",
        report.to_str().unwrap(),
        "-q",
    ]);
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the metrics address is printed");
        if let Some(a) = line.strip_prefix("metrics: http://") {
            break a.trim_end_matches("/metrics").parse().unwrap();
        }
    };
    let live = tenrso_ooc::telemetry::scrape(addr).expect("metrics answer while the command runs");
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let metrics = report["metrics"].as_object().unwrap();
    // Every exported unlabelled series is in the report, and no live
    // counter exceeds its final value.
    let mut kinds = std::collections::HashMap::new();
    for line in live.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE tenrso_") {
            let (name, kind) = rest.split_once(' ').unwrap();
            kinds.insert(name.to_string(), kind.to_string());
        }
    }
    let mut seen = 0;
    for line in live.lines().filter(|l| l.starts_with("tenrso_")) {
        let (name, value) = line.split_once(' ').unwrap();
        let name = name.trim_start_matches("tenrso_");
        let Some(kind) = kinds.get(name) else {
            // A histogram's buckets, sum and count, or a labelled series.
            continue;
        };
        let final_value = metrics[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} missing from the report"));
        let live_value: u64 = value.parse().unwrap();
        if kind == "counter" {
            assert!(
                live_value <= final_value,
                "{name}: live {live_value} > final {final_value}"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, kinds.values().filter(|k| *k != "histogram").count());
    assert!(seen >= 16, "{seen} series");
    for histogram in ["task_duration_seconds", "chunk_read_duration_seconds"] {
        assert_eq!(kinds[histogram], "histogram");
        assert!(live.contains(&format!("tenrso_{histogram}_bucket{{le=\"+Inf\"}}")));
    }
    assert_eq!(metrics["task_duration_seconds"]["count"], 16);
    assert_eq!(metrics["chunk_read_duration_seconds"]["count"], 16);
    assert_eq!(metrics["read_bytes_total"], 4096 * 4096 * 8);
    assert_eq!(metrics["written_bytes_total"], 4096 * 4096 * 8);
    assert_eq!(metrics["tasks_completed_total"], 16);
    assert!(
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "execute")
    );
}

/// `--explain`'s planned peak is what the run then reserves at most, and
/// reached (within 10 %, or one chunk of the eight prefetched and running:
/// a streamed task drops its input before writing its output, so a run
/// whose writes dominate stays that much below), prefetch included, for
/// map, transpose, reduce and einsum on an array 4× the limit.
#[test]
fn explain_plans_the_peak_the_run_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    // 4096 x 16384 f64 = 512 MiB in 8 MiB chunks, under 128 MiB.
    run([
        "create",
        &x,
        "--shape",
        "4096,16384",
        "--chunks",
        "1024,1024",
        "--fill",
        "uniform",
        "--memory-limit",
        "1GiB",
        "-q",
    ])
    .success();
    let out = arg(dir.path(), "out.zarr");
    let cases: [&[&str]; 5] = [
        &["map", "x*2+1", &x, "--out", &out],
        &["transpose", &x, "--axes", "1,0", "--out", &out],
        &["reduce", "sum", &x],
        &["reduce", "sum", &x, "--axes", "0", "--out", &out],
        &["einsum", "ij->j", &x, "--out", &out],
    ];
    for args in cases {
        let with = |extra: &[&str]| {
            let _ = std::fs::remove_dir_all(&out);
            let mut all: Vec<&str> = args.to_vec();
            all.extend_from_slice(&["--memory-limit", LIMIT, "--json"]);
            all.extend_from_slice(extra);
            run(all).success().json()
        };
        let explained = with(&["--explain"]);
        let planned = explained["planned_peak_bytes"].as_u64().unwrap() as f64;
        let ran = with(&["-q"]);
        let measured = ran["pool_peak_bytes"].as_u64().unwrap() as f64;
        eprintln!("{args:?}: planned {planned}, pool peak {measured}");
        let chunk = (8 << 20) as f64;
        assert!(
            measured <= planned * 1.001 && planned - measured <= (0.1 * measured).max(chunk),
            "{args:?}: planned peak {planned} against a pool peak of {measured}"
        );
    }
}
