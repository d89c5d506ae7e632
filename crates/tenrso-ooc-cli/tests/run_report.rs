//! Watching a run: the report's timeline, the HTML page rendered by a real
//! browser (Debian's Chromium), and the metrics endpoint scraped by a real
//! Prometheus (Debian's) while an operation runs — every query of the
//! shipped Grafana dashboard answered by it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{arg, debian_tool, run, spawn};
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A child process killed when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A column of the report's timeline.
fn column(report: &Value, name: &str) -> Vec<u64> {
    report["timeline"]["columns"][name]
        .as_array()
        .unwrap_or_else(|| panic!("timeline column {name}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// A map over an array 4× the limit, with `--report run.json`: peak RSS
/// within limit + 64 MiB, samples at least every 100 ms, the pool never
/// above the limit, counters that only grow and end at the metrics'
/// totals, the plan that ran, a small file.
/// The same with `--report run.html` writes the page directly.
#[test]
fn the_json_report_has_a_bounded_timeline_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x.zarr");
    // 4096 x 4096 f64 = 128 MiB in 4 MiB chunks, under 32 MiB.
    run([
        "create",
        &x,
        "--shape",
        "4096,4096",
        "--chunks",
        "256,2048",
        "--fill",
        "normal",
        "-q",
    ])
    .success();
    let json = dir.path().join("run.json");
    let mapped = run([
        "map",
        "sqrt(abs(x))+log(x*x+1)*sin(x)",
        &x,
        "-o",
        &arg(dir.path(), "y.zarr"),
        "--memory-limit",
        "32MiB",
        "--report",
        json.to_str().unwrap(),
        "-q",
    ])
    .success();
    let report = read_json(&json);
    let limit = 32 * MIB;
    assert_eq!(report["memory_limit_bytes"], limit);
    // Watching keeps the bound: the sampler thread and its 1024 samples
    // fit in the allowance beside the limit.
    assert!(
        mapped.peak_rss <= limit + 64 * MIB,
        "peak RSS {} MiB",
        mapped.peak_rss / MIB
    );
    let seconds: Vec<f64> = report["timeline"]["columns"]["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let n = seconds.len();
    let run_seconds = report["seconds"].as_f64().unwrap();
    assert!(n >= 3, "{n} samples");
    // A sample at least every ~100 ms (a loaded machine wakes late).
    assert!(
        n as f64 >= run_seconds / 0.2,
        "{n} samples in {run_seconds} s"
    );
    assert_eq!(report["timeline"]["samples"], n);
    for w in seconds.windows(2) {
        assert!(w[0] < w[1], "{seconds:?}");
    }
    let pool = column(&report, "pool_reserved_bytes");
    assert_eq!(pool.len(), n);
    assert!(pool.iter().all(|&p| p <= limit), "{pool:?}");
    assert!(
        pool.iter().any(|&p| p > 0),
        "the pool was sampled while used"
    );
    assert!(column(&report, "resident_bytes").iter().all(|&r| r > 0));
    let metrics = &report["metrics"];
    for counter in [
        "read_bytes_total",
        "written_bytes_total",
        "tasks_completed_total",
        "cache_misses_total",
    ] {
        let values = column(&report, counter);
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{counter}");
        assert_eq!(
            values.last(),
            metrics[counter].as_u64().as_ref(),
            "{counter}"
        );
    }
    // Each chunk is read once, unless a chunk loaded ahead is evicted for
    // a worker's memory before its task starts and read again: a known
    // waste (about 1 run in 15 with two busy processes beside the test,
    // before and after the spill tiers), never a wrong result.
    let read = metrics["read_bytes_total"].as_u64().unwrap();
    assert!((128 * MIB..=256 * MIB).contains(&read), "read {read}");
    assert_eq!(metrics["tasks_completed_total"], 32);
    assert_eq!(metrics["tasks_planned_total"], 32);
    assert_eq!(metrics["task_duration_seconds"]["count"], 32);
    // Where the tasks' time went: each wrote its chunk and asked for its
    // input; waiting and writing are parts of the time in tasks.
    assert_eq!(metrics["chunk_write_duration_seconds"]["count"], 32);
    assert_eq!(metrics["read_wait_duration_seconds"]["count"], 32);
    let sum = |name: &str| metrics[name]["sum_seconds"].as_f64().unwrap();
    assert!(sum("chunk_write_duration_seconds") > 0.0);
    assert!(
        sum("read_wait_duration_seconds") + sum("chunk_write_duration_seconds")
            <= sum("task_duration_seconds"),
        "{metrics}"
    );
    assert!(
        report["plans"][0]
            .as_str()
            .unwrap()
            .starts_with("plan: map")
    );
    let bytes = std::fs::metadata(&json).unwrap().len();
    assert!(bytes < 256 * 1024, "{bytes} bytes");

    // A transpose that spills its intermediate, with two spill tiers.
    let fast = dir.path().join("fast");
    let roomy = dir.path().join("roomy");
    std::fs::create_dir(&fast).unwrap();
    std::fs::create_dir(&roomy).unwrap();
    let small = arg(dir.path(), "s.zarr");
    run([
        "create",
        &small,
        "--shape",
        "1024,1024",
        "--chunks",
        "16,1024",
        "--fill",
        "uniform",
        "-q",
    ])
    .success();
    let spilled = dir.path().join("spill.json");
    run([
        "transpose",
        &small,
        "--axes",
        "1,0",
        "--chunks",
        "16,1024",
        "-o",
        &arg(dir.path(), "t.zarr"),
        "--memory-limit",
        "4MiB",
        "--spill-dir",
        &format!("{}:64MiB", fast.display()),
        "--spill-dir",
        roomy.to_str().unwrap(),
        "--report",
        spilled.to_str().unwrap(),
        "-q",
    ])
    .success();
    let report = read_json(&spilled);
    let metrics = &report["metrics"];
    let total = metrics["spill_written_bytes_total"].as_u64().unwrap();
    assert!(total > 0, "{metrics}");
    assert_eq!(
        column(&report, "spill_written_bytes_total").last(),
        Some(&total)
    );
    // Both tiers, in order, with their caps; emptied at the end.
    let tiers = metrics["spill_tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 2, "{metrics}");
    assert_eq!(tiers[0]["dir"], fast.display().to_string());
    assert_eq!(tiers[0]["cap"], 64 * MIB);
    assert_eq!(tiers[1]["dir"], roomy.display().to_string());
    assert!(tiers[1]["cap"].is_null());
    assert!(tiers.iter().all(|t| t["bytes"] == 0), "{metrics}");

    // An einsum's report holds its path and GEMM layouts, then each step's plan.
    let contracted = dir.path().join("einsum.json");
    run([
        "einsum",
        "ij,jk->ik",
        &small,
        &small,
        "-o",
        &arg(dir.path(), "p.zarr"),
        "--report",
        contracted.to_str().unwrap(),
        "-q",
    ])
    .success();
    let plans = read_json(&contracted)["plans"].clone();
    let first = plans[0].as_str().unwrap();
    assert!(first.starts_with("einsum ij,jk->ik\npath"), "{plans}");
    assert!(first.contains("GEMM operands"), "{plans}");
    assert!(
        plans[1]
            .as_str()
            .unwrap()
            .starts_with("plan: einsum step 0/1"),
        "{plans}"
    );

    // Straight to HTML.
    let html = dir.path().join("sum.html");
    run([
        "reduce",
        "sum",
        &x,
        "--memory-limit",
        "32MiB",
        "--report",
        html.to_str().unwrap(),
        "-q",
    ])
    .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg"), "the memory chart is drawn");
    assert!(page.contains("time in tasks: computing / waiting for reads / writing"));
    // The data travels with the page: `report` gives it back as JSON.
    let back = dir.path().join("sum.json");
    run([
        "report",
        html.to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
    ])
    .success();
    let back = read_json(&back);
    assert_eq!(back["command"][1], "reduce");
    assert_eq!(back["metrics"]["read_bytes_total"], 128 * MIB);
    assert!(back["result"]["value"].is_number(), "{back}");
}

/// A transpose spilling past a 2 MiB fast tier: the report counts the
/// spill files moved down and up, lists both tiers with their measured
/// speeds, and the page draws them as a table.
#[test]
fn a_spilling_run_reports_its_tiers_and_migrations() {
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
        "normal",
        "-q",
    ])
    .success();
    let (fast, slow) = (dir.path().join("fast"), dir.path().join("slow"));
    std::fs::create_dir_all(&fast).unwrap();
    std::fs::create_dir_all(&slow).unwrap();
    let json = dir.path().join("run.json");
    let ran = run([
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
        "--threads",
        "2",
        "--spill-dir",
        &format!("{}:2MiB", fast.display()),
        "--spill-dir",
        slow.to_str().unwrap(),
        // Both on one file system: `auto` would see no faster tier.
        "--spill-migration",
        "always",
        "--report",
        json.to_str().unwrap(),
    ])
    .success();
    assert!(
        ran.stdout.contains("spill files moved down a tier"),
        "{ran:?}"
    );
    let report = read_json(&json);
    let metrics = &report["metrics"];
    assert!(
        metrics["spill_demotions_total"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    // (Promotions depend on the prefetcher's timing: counted, maybe 0.)
    assert!(metrics["spill_promotions_total"].is_u64(), "{metrics}");
    let tiers = metrics["spill_tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 2, "{metrics}");
    assert_eq!(tiers[0]["cap"], 2 * MIB);
    for tier in tiers {
        assert!(
            tier["write_bytes_per_second"].as_f64().unwrap() > 0.0,
            "{tier}"
        );
        assert!(
            tier["read_bytes_per_second"].as_f64().unwrap() > 0.0,
            "{tier}"
        );
    }
    let html = dir.path().join("run.html");
    run([
        "report",
        json.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ])
    .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>Spill tiers</h2>"), "the tiers table");
    assert!(page.contains("<tr><th>tier 1</th>"), "a row per tier");
    assert!(page.contains("spill files moved down / up a tier"));
}

/// What Python's html.parser finds in the DOM Chromium rendered: the
/// page title, each SVG's polylines' vertex counts and texts, and every
/// `src` or `href` (what the page would fetch).
const DOM_SUMMARY: &str = r#"
import json, sys
from html.parser import HTMLParser

class Summary(HTMLParser):
    def __init__(self):
        super().__init__()
        self.title, self.svgs, self.in_text, self.in_title = "", [], False, False
        self.fetched = []
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.fetched += [attrs[a] for a in ("src", "href") if a in attrs]
        if tag == "svg":
            self.svgs.append({"polylines": [], "texts": []})
        elif tag == "polyline" and self.svgs:
            self.svgs[-1]["polylines"].append(len(attrs.get("points", "").split()))
        elif tag == "text":
            self.in_text = True
        elif tag == "title":
            self.in_title = True
    def handle_endtag(self, tag):
        if tag == "text":
            self.in_text = False
        elif tag == "title":
            self.in_title = False
    def handle_data(self, data):
        if self.in_text and self.svgs:
            self.svgs[-1]["texts"].append(data.strip())
        elif self.in_title:
            self.title += data

s = Summary()
s.feed(open(sys.argv[1], encoding="utf-8").read())
print(json.dumps({"title": s.title, "svgs": s.svgs, "fetched": s.fetched}))
"#;

/// A 128³ f64 tensor of CP rank 4 plus 1 % noise (16 MiB, 4× the 4 MiB
/// limit the decomposition tests run under): `DIR/x.zarr`.
fn rank_4_cube(dir: &Path) -> String {
    let x = arg(dir, "x.zarr");
    run([
        "create",
        &x,
        "--shape",
        "128,128,128",
        "--chunks",
        "32,32,128",
        "--fill",
        "lowrank:4:0.01",
        "-q",
    ])
    .success();
    x
}

/// Width and height of a PNG file, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// CP-ALS (100 iterations) on a tensor 4× the limit with `--report`, drawn by `tenrso-ooc
/// report`, loaded by headless Chromium: no script or load error, the
/// memory chart with its limit and many samples, the fit per iteration,
/// and a screenshot of the page.
#[test]
fn the_html_report_renders_in_chromium() {
    let Some(chromium) = debian_tool("chromium", "chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let x = rank_4_cube(dir.path());
    let json = dir.path().join("cp.json");
    run([
        "cp",
        &x,
        "--rank",
        "4",
        "--iters",
        "100",
        "--tol",
        "0",
        "-o",
        &arg(dir.path(), "model"),
        "--memory-limit",
        "4MiB",
        "--report",
        json.to_str().unwrap(),
        "-q",
    ])
    .success();
    let html = dir.path().join("cp.html");
    let made = run([
        "report",
        json.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ])
    .success();
    assert!(
        made.stdout.contains("open it in a browser"),
        "{}",
        made.stdout
    );

    let profile = tempfile::tempdir().unwrap();
    let chrome = |extra: &[&str]| {
        let out = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "chromium failed:\n{stderr}");
        // Script errors and loads that failed (the page must need none).
        // (Chromium logs console messages as `INFO:CONSOLE:LINE` or, in
        // older versions, `CONSOLE(LINE)`: the page runs no script, so any
        // is a fault.)
        for bad in ["Uncaught", "net::ERR_", ":CONSOLE:", "CONSOLE("] {
            assert!(!stderr.contains(bad), "`{bad}` while loading:\n{stderr}");
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chrome(&["--dump-dom"]);
    let dom_file = dir.path().join("dom.html");
    std::fs::write(&dom_file, &dom).unwrap();
    let summary = Command::new("python3")
        .arg("-c")
        .arg(DOM_SUMMARY)
        .arg(&dom_file)
        .output()
        .unwrap();
    assert!(
        summary.status.success(),
        "{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    let summary: Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert!(
        summary["title"].as_str().unwrap().contains("cp"),
        "{summary}"
    );
    // Self-contained: nothing to fetch.
    assert_eq!(summary["fetched"], serde_json::json!([]), "{summary}");
    let svgs = summary["svgs"].as_array().unwrap();
    let chart = |title: &str| {
        svgs.iter()
            .find(|s| s["texts"].as_array().unwrap().iter().any(|t| t == title))
            .unwrap_or_else(|| panic!("no chart titled {title}: {summary}"))
    };
    let most_vertices = |svg: &Value| {
        svg["polylines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .max()
            .unwrap_or(0)
    };
    let samples = read_json(&json)["timeline"]["samples"].as_u64().unwrap();
    assert!(
        samples >= 5,
        "{samples} samples: {}",
        std::fs::read_to_string(&json).unwrap()
    );
    let memory = chart("Memory against the limit");
    let texts: Vec<&str> = memory["texts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(texts.contains(&"limit 4.00 MiB"), "{texts:?}");
    assert!(texts.contains(&"MiB (limit 4.00 MiB)"), "{texts:?}");
    assert!(texts.contains(&"seconds"), "{texts:?}");
    assert_eq!(most_vertices(memory), samples, "one vertex per sample");
    for title in ["Throughput", "Progress", "Chunk cache"] {
        assert!(most_vertices(chart(title)) >= samples, "{title}");
    }
    assert_eq!(most_vertices(chart("Fit per iteration")), 100);
    chart("Time per phase");

    let png = dir.path().join("cp.png");
    chrome(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1000,2400",
        "--hide-scrollbars",
    ]);
    let png = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&png), (1000, 2400));
    assert!(png.len() > 50_000, "{} bytes: a blank page?", png.len());
}

/// `GET path` on `addr` over HTTP/1.0 (so the body is not chunked): the
/// status code and the body; `None` while nothing listens there.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u32, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Some((code, body.to_string()))
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An instant query through Prometheus' HTTP API: each series' labels and
/// value; `None` while the server is not up yet.
fn query(prometheus: SocketAddr, promql: &str) -> Option<Vec<(Value, f64)>> {
    let (code, body) = http_get(
        prometheus,
        &format!("/api/v1/query?query={}", encode(promql)),
    )?;
    if code == 503 {
        return None; // Starting.
    }
    assert_eq!(code, 200, "{promql}: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "success", "{promql}: {body}");
    Some(
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), value)
            })
            .collect(),
    )
}

/// Polls `promql` until `accept` takes its single value, for at most `wait`.
fn poll(prometheus: SocketAddr, promql: &str, wait: Duration, accept: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + wait;
    loop {
        let result = query(prometheus, promql);
        if let Some([(_, value)]) = result.as_deref()
            && accept(*value)
        {
            return *value;
        }
        assert!(
            Instant::now() < deadline,
            "{promql}: still {result:?} after {wait:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's Prometheus scrapes a running CP-ALS every second through
/// `--metrics-addr`: the target is up, our series are there with their
/// values and types (promtool lints the exposition clean), and the
/// counters grow between scrapes.
#[test]
fn a_real_prometheus_scrapes_a_running_operation() {
    let Some(prometheus) = debian_tool("prometheus", "prometheus") else {
        return;
    };
    let promtool = debian_tool("promtool", "prometheus").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every iteration reads it again.
    let x = rank_4_cube(dir.path());
    // Runs until stopped, its spill area (if any) in the test's directory.
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let (child, lines) = spawn(&[
        "cp",
        &x,
        "--rank",
        "4",
        "--iters",
        "1000000",
        "--tol",
        "0",
        "-o",
        &arg(dir.path(), "model"),
        "--memory-limit",
        "4MiB",
        "--threads",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--spill-dir",
        spill.to_str().unwrap(),
        "-q",
    ]);
    let ours = Killed(child);
    let target: SocketAddr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the metrics address is printed");
        if let Some(a) = line.strip_prefix("metrics: http://") {
            break a.trim_end_matches("/metrics").parse().unwrap();
        }
    };

    // Our exposition passes Prometheus' own linter.
    let exposition = tenrso_ooc::telemetry::scrape(target).unwrap();
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tenrso\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let checked = Command::new(&promtool)
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = Killed(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Target discovery takes ~5 s; then a scrape every second.
    let wait = Duration::from_secs(60);
    poll(listen, "up{job=\"tenrso\"}", wait, |v| v == 1.0);
    let read = "tenrso_read_bytes_total{job=\"tenrso\"}";
    let first = poll(listen, read, wait, |v| v > 0.0);
    let later = poll(listen, read, wait, |v| v > first);
    assert!(later > first);
    let done = "tenrso_tasks_completed_total{job=\"tenrso\"}";
    let tasks = poll(listen, done, wait, |v| v > 0.0);
    poll(listen, done, wait, |v| v > tasks);
    // Two scrapes at least: a rate.
    poll(listen, "rate(tenrso_read_bytes_total[10s])", wait, |v| {
        v > 0.0
    });
    assert_eq!(
        poll(listen, "tenrso_pool_limit_bytes", wait, |_| true),
        (4 * MIB) as f64
    );
    let rss = poll(listen, "tenrso_process_resident_memory_bytes", wait, |_| {
        true
    });
    assert!(rss > MIB as f64, "{rss}");
    let reserved = poll(listen, "tenrso_pool_reserved_bytes", wait, |_| true);
    assert!(reserved <= (4 * MIB) as f64);
    poll(listen, "tenrso_task_duration_seconds_count", wait, |v| {
        v > 0.0
    });
    poll(
        listen,
        "histogram_quantile(0.5, tenrso_chunk_read_duration_seconds_bucket)",
        wait,
        |v| v > 0.0,
    );
    poll(listen, "tenrso_tasks_planned_total", wait, |v| v > 0.0);
    for name in ["tenrso_cache_misses_total", "tenrso_prefetch_depth_tasks"] {
        assert_eq!(query(listen, name).map(|r| r.len()), Some(1), "{name}");
    }
    check_dashboard(listen, wait);
    // The target's health as Prometheus sees it.
    let (code, body) = http_get(listen, "/api/v1/targets").unwrap();
    assert_eq!(code, 200);
    let targets: Value = serde_json::from_str(&body).unwrap();
    let active = &targets["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up", "{body}");
    assert_eq!(active["lastError"], "", "{body}");
    drop(server);
    // SIGTERM cancels the run tidily: its spill area goes with it.
    let mut ours = ours;
    // SAFETY: signalling our own child, which has not been reaped.
    unsafe { libc::kill(ours.0.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ours.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "cp ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
}

/// The shipped Grafana dashboard is importable (unique panel ids, each
/// with a type, title, place and the datasource variable) and every PromQL
/// expression in it — panels and the `job` variable's query, Grafana's
/// variables substituted — parses and returns data from `prometheus`
/// scraping a running operation as job `tenrso`.
fn check_dashboard(prometheus: SocketAddr, wait: Duration) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/tenrso-ooc.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "tenrso-ooc");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let job = variables.iter().find(|v| v["name"] == "job").unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .unwrap();
    assert_eq!(datasource["query"], "prometheus");
    // `label_values(METRIC, job)`: the metric has the job's label.
    let metric = job["query"]["query"]
        .as_str()
        .and_then(|q| q.strip_prefix("label_values("))
        .and_then(|q| q.strip_suffix(", job)"))
        .unwrap();
    let jobs = poll_data(prometheus, metric, wait);
    assert!(
        jobs.iter().any(|(labels, _)| labels["job"] == "tenrso"),
        "{jobs:?}"
    );

    let mut ids = std::collections::HashSet::new();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id reused"
        );
        assert!(panel["type"].is_string(), "{title}");
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let promql = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "10s")
                .replace("$job", "tenrso");
            assert!(!promql.contains('$'), "{title}: {promql}");
            poll_data(prometheus, &promql, wait);
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
}

/// Polls `promql` until its result is not empty, for at most `wait`.
fn poll_data(prometheus: SocketAddr, promql: &str, wait: Duration) -> Vec<(Value, f64)> {
    let deadline = Instant::now() + wait;
    loop {
        let result = query(prometheus, promql);
        if let Some(series) = result.filter(|r| !r.is_empty()) {
            return series;
        }
        assert!(
            Instant::now() < deadline,
            "{promql}: no data after {wait:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `report` on what is not a run report: a one-line error naming the file,
/// exit 1, nothing written; and never over its own input.
#[test]
fn report_refuses_what_is_not_a_run_report() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, [0xff, 0x00, 0x7b, 0x22]).unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(&other, "{\"a\": [1, 2]}").unwrap();
    for (input, says) in [(&garbage, "not a run report"), (&other, "no `command`")] {
        let r = run(["report", input.to_str().unwrap()]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(
            r.stderr.contains(says) && r.stderr.contains(input.to_str().unwrap()),
            "{}",
            r.stderr
        );
        assert!(!input.with_extension("html").exists());
    }
    let page = dir.path().join("p.html");
    std::fs::write(&page, "<!DOCTYPE html>").unwrap();
    let r = run(["report", page.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("would replace"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&page).unwrap(), "<!DOCTYPE html>");
}
