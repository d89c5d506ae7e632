//! Logging setup, the metrics endpoint, and the export to an OpenTelemetry
//! collector.

use tenrso_ooc::Result;
use tenrso_ooc::exec::Session;
use tenrso_ooc::telemetry::MetricsServer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::cli::LogFormat;

/// The export of spans and metrics to an OpenTelemetry collector.
#[cfg(feature = "otel")]
pub use tenrso_ooc::telemetry::OtlpExport as Otlp;

/// A build without the `otel` feature exports nothing: no value exists.
#[cfg(not(feature = "otel"))]
#[derive(Debug)]
pub enum Otlp {}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `warn`);
/// with `otlp`, spans are exported too, whatever the filter prints.
pub fn init_logging(format: LogFormat, otlp: Option<&Otlp>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Pretty => fmt.pretty().boxed(),
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Compact => fmt.compact().boxed(),
    };
    let export = otlp_layer(otlp);
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(export)
        .try_init();
}

#[cfg(feature = "otel")]
fn otlp_layer<S>(otlp: Option<&Otlp>) -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber
        + for<'span> tracing_subscriber::registry::LookupSpan<'span>
        + Send
        + Sync,
{
    otlp.map(Otlp::tracing_layer)
}

#[cfg(not(feature = "otel"))]
fn otlp_layer<S>(otlp: Option<&Otlp>) -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber,
{
    otlp.map(|never| match *never {})
}

/// Starts the export to the collector `endpoint` names (else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` and its kin); `None` when neither does.
///
/// # Errors
/// A bad `--otlp-endpoint`, in words. A bad environment variable is only
/// a warning: the run goes on without export.
#[cfg(feature = "otel")]
pub fn start_otlp(endpoint: Option<&str>) -> std::result::Result<Option<Otlp>, String> {
    use tenrso_ooc::telemetry::{OTLP_ENDPOINT_VAR, OtlpOptions};
    let (opts, from_flag) = match endpoint {
        Some(url) => (OtlpOptions::new(url), true),
        None => match OtlpOptions::from_env() {
            Some(opts) => (opts, false),
            None => return Ok(None),
        },
    };
    // Each rank of an MPI job exports its own spans.
    let rank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .find_map(|var| std::env::var(var).ok());
    let opts = match rank {
        Some(rank) => opts.with_attribute("tenrso.rank", rank),
        None => opts,
    };
    match Otlp::start(&opts) {
        Ok(otlp) => Ok(Some(otlp)),
        Err(err) if from_flag => Err(format!("--otlp-endpoint: {err}")),
        Err(err) => {
            eprintln!("warning: {err} (from {OTLP_ENDPOINT_VAR} or its kin); nothing is exported");
            Ok(None)
        }
    }
}

/// Without the `otel` feature: `--otlp-endpoint` is refused, and the
/// environment ignored.
#[cfg(not(feature = "otel"))]
pub fn start_otlp(endpoint: Option<&str>) -> std::result::Result<Option<Otlp>, String> {
    match endpoint {
        Some(_) => Err(
            "--otlp-endpoint: this build has no OpenTelemetry export (build with the `otel` feature)"
                .into(),
        ),
        None => Ok(None),
    }
}

/// Exports `session`'s metrics while the export runs.
pub fn watch_metrics(otlp: Option<&Otlp>, session: &Session) {
    #[cfg(feature = "otel")]
    if let Some(otlp) = otlp {
        otlp.watch(session.metrics());
    }
    #[cfg(not(feature = "otel"))]
    let _ = (otlp, session);
}

/// Sends what is left to the collector; a warning on stderr for what could
/// not be sent (the exit status is the command's).
pub fn finish_otlp(otlp: Option<Otlp>) {
    #[cfg(feature = "otel")]
    if let Some(warning) = otlp.and_then(|o| o.finish().warning()) {
        eprintln!("warning: {warning}");
    }
    #[cfg(not(feature = "otel"))]
    let _ = otlp;
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
