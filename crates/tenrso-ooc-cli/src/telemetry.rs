//! Logging setup, the metrics endpoint and the run report.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tenrso_ooc::Result;
use tenrso_ooc::exec::Session;
use tenrso_ooc::telemetry::MetricsServer;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use crate::process_memory::peak_rss_bytes;

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `warn`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.pretty().try_init(),
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
}

/// Serves the session's metrics on `addr` while the returned guard lives.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve_metrics(addr: Option<&str>, session: &Session) -> Result<Option<MetricsServer>> {
    let Some(addr) = addr else { return Ok(None) };
    let server = MetricsServer::start(addr, session.metrics().clone())?;
    tracing::info!(addr = %server.addr(), "serving metrics");
    eprintln!("metrics: http://{}/metrics", server.addr());
    Ok(Some(server))
}

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

/// Writes the JSON run report: the command's outcome (or error), time per
/// phase, the session's metrics and peak memory.
///
/// # Errors
/// [`Error::Io`](tenrso_ooc::Error::Io) when the file cannot be written.
pub fn write_report(
    path: &Path,
    session: &Session,
    elapsed: Duration,
    outcome: Result<&Value, String>,
) -> Result<()> {
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
    let report = json!({
        "command": std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        "ok": error.is_null(),
        "error": error,
        "seconds": elapsed.as_secs_f64(),
        "phases": phases,
        "metrics": session.metrics().to_json(),
        "memory_limit_bytes": session.memory_limit(),
        "threads": session.threads(),
        "peak_rss_bytes": peak_rss_bytes(),
        "buffer_pool": buffer_pool_json(),
        "result": result,
    });
    let text = serde_json::to_string_pretty(&report).expect("report serialises");
    tenrso_ooc::store::write_atomically(path, (text + "\n").as_bytes())
}
