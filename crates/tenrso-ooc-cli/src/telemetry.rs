//! Logging setup and the metrics endpoint.

use tenrso_ooc::Result;
use tenrso_ooc::exec::Session;
use tenrso_ooc::telemetry::MetricsServer;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

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
