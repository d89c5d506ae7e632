//! The run report: a JSON record of a run (outcome, time per phase,
//! metrics, the timeline of metrics over time, the plans that ran) and the
//! self-contained HTML page drawn from it.

mod charts;
mod html;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tenrso_ooc::exec::{RankFigures, Session};
use tenrso_ooc::telemetry::{Timeline, peak_resident_bytes};
use tenrso_ooc::{Error, Result};

pub use html::{render_html, report_in_page};

/// The buffer pool's counters and the allocator below it.
fn buffer_pool_json() -> Value {
    let stats = tenrso_ooc::memory::buffer_pool_stats();
    json!({
        "allocator": crate::allocator::BELOW,
        "reused_buffers": stats.reused,
        "fresh_buffers": stats.fresh,
        "kept_bytes": stats.kept_bytes,
    })
}

/// The JSON run report: the command line, its outcome (or error), time per
/// phase, the session's metrics, the timeline, the plans that ran and peak
/// memory.
pub fn run_report(
    session: &Session,
    elapsed: Duration,
    timeline: Option<&Timeline>,
    outcome: Result<&Value, String>,
) -> Value {
    let phases: Vec<Value> = session
        .metrics()
        .phases()
        .into_iter()
        .map(|(name, seconds)| json!({ "name": name, "seconds": seconds }))
        .collect();
    let (result, error) = match outcome {
        Ok(v) => (v.clone(), Value::Null),
        Err(e) => (Value::Null, Value::String(e)),
    };
    json!({
        "command": std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        "ok": error.is_null(),
        "error": error,
        "seconds": elapsed.as_secs_f64(),
        "phases": phases,
        "metrics": session.metrics().to_json(),
        "timeline": timeline.map_or(Value::Null, Timeline::to_json),
        "plans": session.metrics().plans(),
        "memory_limit_bytes": session.memory_limit(),
        "threads": session.threads(),
        "peak_rss_bytes": peak_resident_bytes(),
        "buffer_pool": buffer_pool_json(),
        "result": result,
    })
}

/// Adds every rank's figures of an MPI job (`ranks`, by rank) and their
/// totals (`ranks_total`) to a run report; nothing for one process.
pub fn add_ranks(report: &mut Value, ranks: &[RankFigures]) {
    if ranks.len() < 2 {
        return;
    }
    if let Some(map) = report.as_object_mut() {
        map.insert(
            "ranks".into(),
            Value::from(ranks.iter().map(RankFigures::to_json).collect::<Vec<_>>()),
        );
        let mut total = RankFigures::total(ranks).to_json();
        if let Some(t) = total.as_object_mut() {
            t.remove("rank");
        }
        map.insert("ranks_total".into(), total);
    }
}

/// True when `path` names an HTML page (`.html` or `.htm`): the report is
/// drawn, not listed.
pub fn is_html(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

/// Writes `report` to `path` atomically: as the HTML page when the name
/// ends in `.html`, as pretty JSON otherwise.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written; [`Error::InvalidArgument`]
/// when the page cannot be drawn.
pub fn write(path: &Path, report: &Value) -> Result<()> {
    let text = if is_html(path) {
        render_html(report)?
    } else {
        serde_json::to_string_pretty(report).map_err(|e| Error::invalid(e.to_string()))? + "\n"
    };
    tenrso_ooc::store::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tenrso_ooc::telemetry::{Sample, TIMELINE_CAPACITY};

    use super::*;

    /// The largest report a session can write: a full timeline of 13-digit
    /// values, every plan and phase kept, written as the CLI writes it.
    #[test]
    fn a_full_report_stays_under_512_kib() {
        let session = Session::default();
        let m = session.metrics();
        for i in 0..10_000 {
            m.record_phase(&format!("phase {}", i % 300), 1.0);
            m.record_plan("plan: x\n".repeat(20));
        }
        let mut timeline = Timeline::new(Duration::from_millis(100), TIMELINE_CAPACITY);
        let big = 9_999_999_999_999u64;
        for i in 0..TIMELINE_CAPACITY {
            timeline.push(Sample {
                seconds: 1e6 + i as f64,
                pool_reserved_bytes: big,
                resident_bytes: big,
                prefetch_depth_tasks: big,
                read_bytes_total: big,
                written_bytes_total: big,
                spill_written_bytes_total: big,
                spill_read_bytes_total: big,
                cache_hits_total: big,
                cache_misses_total: big,
                cache_evictions_total: big,
                tasks_completed_total: big,
                tasks_planned_total: big,
            });
        }
        let report = run_report(
            &session,
            Duration::from_secs(1),
            Some(&timeline),
            Err("x".into()),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write(&path, &report).unwrap();
        let bytes = std::fs::metadata(&path).unwrap().len();
        assert!(bytes < 512 * 1024, "{bytes} bytes");
        assert!(bytes > 256 * 1024, "{bytes} bytes: not the largest");
    }
}
