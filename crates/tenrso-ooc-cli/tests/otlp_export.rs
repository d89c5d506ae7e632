//! `--otlp-endpoint` and `OTEL_EXPORTER_OTLP_ENDPOINT` against a real OTLP
//! decoder: `tests/python/otlp_receiver.py` parses what the CLI posts with
//! the official `opentelemetry-proto` package. The span tree and its
//! attributes, the metrics, and an unreachable collector that only warns.
#![cfg(feature = "otel")]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{OtlpReceiver, arg, bin, python, run, run_command};
use serde_json::Value;

const MIB: i64 = 1 << 20;

/// The spans received, by id.
fn span_map(records: &[Value]) -> HashMap<String, Value> {
    for r in records {
        assert_ne!(r["signal"], "error", "the receiver refused a post: {r}");
    }
    records
        .iter()
        .filter(|r| r["signal"] == "span")
        .map(|r| (r["span_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// The children of span `id`, by start time.
fn children<'a>(spans: &'a HashMap<String, Value>, id: &str) -> Vec<&'a Value> {
    let mut kids: Vec<&Value> = spans
        .values()
        .filter(|s| s["parent_span_id"] == id)
        .collect();
    kids.sort_by_key(|s| s["start_ns"].as_u64());
    kids
}

fn named<'a>(spans: &[&'a Value], name: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .copied()
        .filter(|s| s["name"] == name)
        .collect()
}

/// The one span named `name` among `spans`.
fn one<'a>(spans: &[&'a Value], name: &str) -> &'a Value {
    match named(spans, name)[..] {
        [span] => span,
        _ => panic!("not one {name} among {spans:?}"),
    }
}

fn int(span: &Value, key: &str) -> i64 {
    span["attributes"][key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {span}"))
}

/// The root span of the run: `command`, renamed `tenrso-ooc COMMAND`.
fn root<'a>(spans: &'a HashMap<String, Value>, command: &str) -> &'a Value {
    let roots: Vec<&Value> = spans
        .values()
        .filter(|s| s["parent_span_id"] == "")
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    assert_eq!(roots[0]["name"], format!("tenrso-ooc {command}"));
    assert_eq!(roots[0]["attributes"]["command"], command);
    // One trace.
    let trace = &roots[0]["trace_id"];
    assert!(spans.values().all(|s| &s["trace_id"] == trace));
    roots[0]
}

/// A stage's task batches cover its tasks once, and its work.
fn check_stage(spans: &HashMap<String, Value>, stage: &Value) -> i64 {
    let batches = children(spans, stage["span_id"].as_str().unwrap());
    assert!(!batches.is_empty(), "no task batches under {stage}");
    assert!(batches.iter().all(|b| b["name"] == "tasks"));
    let tasks: i64 = batches.iter().map(|b| int(b, "tasks")).sum();
    assert_eq!(tasks, int(stage, "tasks"), "{batches:?}");
    assert!(int(stage, "workers") >= 1);
    batches.iter().map(|b| int(b, "work_bytes")).sum()
}

/// The metric `name`'s one data point.
fn metric<'a>(records: &'a [Value], name: &str) -> &'a Value {
    let points: Vec<&Value> = records
        .iter()
        .filter(|r| r["signal"] == "metric" && r["name"] == name)
        .collect();
    assert!(!points.is_empty(), "no {name} among {records:?}");
    points.last().unwrap()
}

#[test]
fn spans_and_metrics_reach_a_real_otlp_receiver() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let receiver = OtlpReceiver::start(&python, dir.path());
    let x = arg(dir.path(), "x");
    run([
        "create",
        &x,
        "--shape",
        "1024,1024",
        "--chunks",
        "128,256",
        "--fill",
        "normal",
        "-q",
    ])
    .success();
    receiver.take();

    // reduce, through the flag: its value is the one without export.
    let plain = run(["reduce", "sum", &x, "--memory-limit", "16MiB", "-q"]).success();
    let url = receiver.url();
    let traced = run([
        "reduce",
        "sum",
        &x,
        "--memory-limit",
        "16MiB",
        "-q",
        "--otlp-endpoint",
        &url,
    ])
    .success();
    assert_eq!(traced.stdout, plain.stdout);
    assert!(!traced.stderr.contains("warning"), "{}", traced.stderr);
    let records = receiver.take();
    let spans = span_map(&records);
    let command = root(&spans, "reduce");
    assert_eq!(command["resource"]["service.name"], "tenrso-ooc");
    let under = children(&spans, command["span_id"].as_str().unwrap());
    let plan = one(&under, "plan");
    let operation = one(&under, "operation");
    assert_eq!(plan["attributes"]["operation"], "sum over all axes");
    assert_eq!(operation["attributes"]["operation"], "sum over all axes");
    assert_eq!(
        operation["attributes"]["inputs"],
        format!("{x} [1024, 1024] in 32 chunks of [128, 256]")
    );
    assert_eq!(operation["attributes"]["dtype"], "f64");
    assert_eq!(int(operation, "memory_limit_bytes"), 16 * MIB);
    assert_eq!(int(operation, "chunks"), 32);
    assert_eq!(int(operation, "tasks"), 32);
    assert_eq!(int(plan, "planned_read_bytes"), 8 * MIB);
    assert_eq!(int(operation, "read_bytes"), 8 * MIB);
    assert_eq!(int(operation, "written_bytes"), 0);
    assert!(int(operation, "pool_peak_bytes") <= 16 * MIB);
    let stages = children(&spans, operation["span_id"].as_str().unwrap());
    let stage = one(&stages, "stage");
    assert_eq!(int(stage, "tasks"), 32);
    assert_eq!(check_stage(&spans, stage), 8 * MIB);
    // The plan comes before the run, both inside the command.
    assert!(plan["end_ns"].as_u64() <= operation["start_ns"].as_u64());
    assert!(command["start_ns"].as_u64() <= plan["start_ns"].as_u64());
    assert!(operation["end_ns"].as_u64() <= command["end_ns"].as_u64());
    // The metrics, exported at the end of the run.
    assert_eq!(metric(&records, "tenrso.read")["value"], 8 * MIB);
    assert_eq!(metric(&records, "tenrso.read")["unit"], "By");
    assert_eq!(metric(&records, "tenrso.read")["monotonic"], true);
    assert_eq!(metric(&records, "tenrso.tasks_completed")["value"], 32);
    assert_eq!(metric(&records, "tenrso.pool_limit")["value"], 16 * MIB);
    assert_eq!(metric(&records, "tenrso.pool_limit")["kind"], "gauge");
    assert!(metric(&records, "tenrso.process_resident_memory")["value"].as_i64() > Some(MIB));
    // The duration histograms, in the Prometheus buckets: one task
    // duration per task, one chunk-read duration per chunk.
    let tasks = metric(&records, "tenrso.task_duration");
    assert_eq!(tasks["kind"], "histogram");
    assert_eq!(tasks["unit"], "s");
    assert_eq!(tasks["count"], 32);
    assert_eq!(tasks["bounds"].as_array().unwrap().len(), 16);
    let counts = tasks["bucket_counts"].as_array().unwrap();
    assert_eq!(counts.iter().map(|c| c.as_i64().unwrap()).sum::<i64>(), 32);
    assert_eq!(metric(&records, "tenrso.chunk_read_duration")["count"], 32);

    // map, through the standard environment variable: the output written.
    let y = arg(dir.path(), "y");
    let mut cmd = Command::new(bin());
    cmd.args(["map", "x*2", &x, "-o", &y, "-q"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .env("OTEL_SERVICE_NAME", "nightly-map");
    run_command(cmd).success();
    let records = receiver.take();
    let spans = span_map(&records);
    let command = root(&spans, "map");
    assert_eq!(command["resource"]["service.name"], "nightly-map");
    let under = children(&spans, command["span_id"].as_str().unwrap());
    let operation = one(&under, "operation");
    assert_eq!(operation["attributes"]["operation"], "map `x*2`");
    assert_eq!(
        operation["attributes"]["outputs"],
        format!("{y} [1024, 1024] in 32 chunks of [128, 256]")
    );
    assert_eq!(int(operation, "written_bytes"), 8 * MIB);
    let stages = children(&spans, operation["span_id"].as_str().unwrap());
    assert_eq!(check_stage(&spans, named(&stages, "stage")[0]), 8 * MIB);
    assert_eq!(metric(&records, "tenrso.written")["value"], 8 * MIB);

    // einsum: its plan, then its operation with a plan and an operation
    // per step (and per rechunk it chose).
    let c = arg(dir.path(), "xx");
    run([
        "einsum",
        "ij,kj->ik",
        &x,
        &x,
        "-o",
        &c,
        "-q",
        "--memory-limit",
        "16MiB",
        "--otlp-endpoint",
        &url,
    ])
    .success();
    let records = receiver.take();
    let spans = span_map(&records);
    let command = root(&spans, "einsum");
    let under = children(&spans, command["span_id"].as_str().unwrap());
    let names: Vec<&str> = under.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["plan", "operation"], "{under:?}");
    assert_eq!(under[1]["attributes"]["operation"], "einsum ij,kj->ik");
    assert_eq!(under[1]["attributes"]["output_shape"], "[1024, 1024]");
    let steps = children(&spans, under[1]["span_id"].as_str().unwrap());
    let step = named(&steps, "operation")
        .into_iter()
        .find(|s| {
            s["attributes"]["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("einsum step 0/1"))
        })
        .unwrap_or_else(|| panic!("no step among {steps:?}"));
    assert_eq!(int(step, "written_bytes"), 8 * MIB);
    let stages = children(&spans, step["span_id"].as_str().unwrap());
    check_stage(&spans, named(&stages, "stage")[0]);

    // CP-ALS: operation → iteration → pass → stage → task batches (the
    // tensor is over half the limit, so every pass reads it).
    let c = arg(dir.path(), "c");
    run([
        "create",
        &c,
        "--shape",
        "64,64,64",
        "--chunks",
        "16,16,64",
        "--fill",
        "lowrank:3",
        "-q",
    ])
    .success();
    receiver.take();
    run([
        "cp",
        &c,
        "--rank",
        "3",
        "--iters",
        "2",
        "--tol",
        "0",
        "-o",
        &arg(dir.path(), "model"),
        "--memory-limit",
        "1MiB",
        "-q",
        "--otlp-endpoint",
        &url,
    ])
    .success();
    check_decomposition(&receiver.take(), "cp", "cp_als", "[3]");

    // Tucker (HOOI): the same tree.
    run([
        "tucker",
        &c,
        "--ranks",
        "3,3,3",
        "--iters",
        "2",
        "--tol",
        "0",
        "-o",
        &arg(dir.path(), "tucker"),
        "--memory-limit",
        "1MiB",
        "-q",
        "--otlp-endpoint",
        &url,
    ])
    .success();
    check_decomposition(&receiver.take(), "tucker", "tucker", "[3, 3, 3]");
}

/// A decomposition's trace: `command` → `operation` (its name, shape,
/// ranks, limit) → 2 iterations (fit in (0, 1]) → as many passes over the
/// 2 MiB tensor as the iteration says, each with one stage of task
/// batches.
fn check_decomposition(records: &[Value], command: &str, operation: &str, ranks: &str) {
    let spans = span_map(records);
    let command = root(&spans, command);
    let under = children(&spans, command["span_id"].as_str().unwrap());
    let decomposition = one(&under, "operation");
    assert_eq!(decomposition["attributes"]["operation"], operation);
    assert_eq!(decomposition["attributes"]["shape"], "[64, 64, 64]");
    assert_eq!(decomposition["attributes"]["ranks"], ranks);
    assert_eq!(int(decomposition, "memory_limit_bytes"), MIB);
    let iterations = named(
        &children(&spans, decomposition["span_id"].as_str().unwrap()),
        "iteration",
    );
    assert_eq!(iterations.len(), 2, "{iterations:?}");
    for (k, iteration) in iterations.iter().enumerate() {
        assert_eq!(int(iteration, "iteration"), k as i64 + 1);
        let fit = iteration["attributes"]["fit"].as_f64().unwrap();
        assert!(fit > 0.0 && fit <= 1.0, "{iteration}");
        let passes = children(&spans, iteration["span_id"].as_str().unwrap());
        assert_eq!(passes.len() as i64, int(iteration, "passes"));
        let mut read = 0;
        for pass in passes {
            assert_eq!(pass["name"], "pass");
            assert_eq!(int(pass, "tensor_bytes"), 2 * MIB);
            assert_eq!(pass["attributes"]["resident"], false);
            let stages = children(&spans, pass["span_id"].as_str().unwrap());
            let stage = one(&stages, "stage");
            check_stage(&spans, stage);
            read += int(pass, "tensor_bytes");
        }
        // Each pass reads the whole tensor, some chunks twice when the
        // 1 MiB limit evicts a prefetched one before its task.
        assert!(int(iteration, "read_bytes") >= read, "{iteration}");
    }
}

#[test]
fn an_unreachable_collector_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    let x = arg(dir.path(), "x");
    run([
        "create", &x, "--shape", "512,512", "--chunks", "128,128", "--fill", "range", "-q",
    ])
    .success();
    let plain = run(["reduce", "sum", &x, "-q"]).success();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let traced = run([
        "reduce",
        "sum",
        &x,
        "-q",
        "--otlp-endpoint",
        &format!("http://127.0.0.1:{port}"),
    ])
    .success();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(traced.stdout, plain.stdout);
    assert!(
        traced.stderr.contains("warning: telemetry not fully sent")
            && traced
                .stderr
                .contains(&format!("cannot connect to 127.0.0.1:{port}"))
            && traced.stderr.contains("the run itself is unaffected"),
        "{}",
        traced.stderr
    );

    // A bad variable in the environment warns and runs; a bad flag is a
    // usage error.
    let mut cmd = Command::new(bin());
    cmd.args(["reduce", "sum", &x, "-q"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url");
    let r = run_command(cmd).success();
    assert_eq!(r.stdout, plain.stdout);
    assert!(
        r.stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{}",
        r.stderr
    );
    let r = run([
        "reduce",
        "sum",
        &x,
        "--otlp-endpoint",
        "https://collector:4318",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("https is not supported"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}
