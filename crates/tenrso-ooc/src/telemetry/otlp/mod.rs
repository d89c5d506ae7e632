//! [`OtlpExport`]: a run's tracing spans and its session's metrics, sent to
//! an OpenTelemetry collector over OTLP/HTTP (protobuf) with the official
//! `opentelemetry` SDK and `opentelemetry-otlp` exporters (feature `otel`).
//!
//! Spans go through a batch processor and metrics through a periodic reader,
//! each on its own thread: the run never waits for the collector. A
//! collector that is down or refuses costs one connection attempt per few
//! seconds, and [`OtlpExport::finish`] says what could not be sent instead
//! of failing the run.

mod instruments;
mod transport;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::core::{Error, Result};
use crate::telemetry::Metrics;

pub use transport::ExportHealth;
use transport::PlainHttp;

/// The environment variable naming the collector's base URL (the
/// OpenTelemetry standard one).
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How often metrics are sent when `OTEL_METRIC_EXPORT_INTERVAL` does not
/// say (a last export is made when the run ends).
const METRIC_INTERVAL: Duration = Duration::from_secs(10);

/// How long one export may take when `OTEL_EXPORTER_OTLP_TIMEOUT` does not
/// say.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`OtlpExport::finish`] waits for the last posts.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to export.
///
/// ```
/// use tenrso_ooc::telemetry::OtlpOptions;
/// let opts = OtlpOptions::new("http://127.0.0.1:4318").with_attribute("job", "nightly");
/// assert_eq!(opts.traces_url().unwrap(), "http://127.0.0.1:4318/v1/traces");
/// assert_eq!(opts.metrics_url().unwrap(), "http://127.0.0.1:4318/v1/metrics");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpOptions {
    traces: String,
    metrics: String,
    attributes: Vec<(String, String)>,
}

impl OtlpOptions {
    /// Export to the collector at the base URL `endpoint` (as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` and `/v1/metrics` are
    /// appended).
    pub fn new(endpoint: &str) -> Self {
        let base = endpoint.trim_end_matches('/');
        Self {
            traces: format!("{base}/v1/traces"),
            metrics: format!("{base}/v1/metrics"),
            attributes: Vec::new(),
        }
    }

    /// What the standard environment variables name:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and `…_METRICS_ENDPOINT` (used
    /// as they are), else `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL);
    /// `None` when none is set or `OTEL_SDK_DISABLED=true`.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return None;
        }
        let base = var(OTLP_ENDPOINT_VAR).map(|b| Self::new(&b));
        let traces = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let metrics = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        if base.is_none() && traces.is_none() && metrics.is_none() {
            return None;
        }
        let base = base.unwrap_or_else(|| Self::new("http://localhost:4318"));
        Some(Self {
            traces: traces.unwrap_or(base.traces),
            metrics: metrics.unwrap_or(base.metrics),
            attributes: Vec::new(),
        })
    }

    /// Adds a resource attribute (`service.name` is `tenrso-ooc` unless
    /// `OTEL_SERVICE_NAME` says; `OTEL_RESOURCE_ATTRIBUTES` is read too).
    pub fn with_attribute(mut self, key: &str, value: impl Into<String>) -> Self {
        self.attributes.push((key.to_string(), value.into()));
        self
    }

    /// Where spans are posted.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when it is not an `http://` URL.
    pub fn traces_url(&self) -> Result<&str> {
        checked_url(&self.traces)
    }

    /// Where metrics are posted.
    ///
    /// # Errors
    /// As [`traces_url`](Self::traces_url).
    pub fn metrics_url(&self) -> Result<&str> {
        checked_url(&self.metrics)
    }
}

/// `url` when it is an `http://` URL with a host.
fn checked_url(url: &str) -> Result<&str> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| Error::invalid(format!("OTLP endpoint `{url}` is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(url),
        (Some("https"), _) => Err(Error::invalid(format!(
            "OTLP endpoint `{url}`: https is not supported; send to a collector on http:// (its OTLP/HTTP port, 4318 by default)"
        ))),
        _ => Err(Error::invalid(format!(
            "OTLP endpoint `{url}` is not an http:// URL with a host"
        ))),
    }
}

/// Spans and metrics on their way to a collector. Install
/// [`tracing_layer`](Self::tracing_layer) in the process's subscriber,
/// [`watch`](Self::watch) the session's metrics, and call
/// [`finish`](Self::finish) at the end to send what is left.
#[derive(Debug)]
pub struct OtlpExport {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    traces_client: Arc<PlainHttp>,
    metrics_client: Arc<PlainHttp>,
    traces_url: String,
    metrics_url: String,
    instruments: Mutex<Vec<instruments::Registered>>,
}

/// What an export did, once finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Where spans were posted.
    pub traces_url: String,
    /// Where metrics were posted.
    pub metrics_url: String,
    /// The span posts.
    pub traces: ExportHealth,
    /// The metric posts.
    pub metrics: ExportHealth,
    /// What the SDK reported while flushing and shutting down.
    pub errors: Vec<String>,
}

impl ExportSummary {
    /// A warning for the user when something was not delivered; `None`
    /// when everything was.
    pub fn warning(&self) -> Option<String> {
        let failed = self.traces.failed + self.metrics.failed;
        if failed == 0 && self.errors.is_empty() {
            return None;
        }
        let tried = failed + self.traces.delivered + self.metrics.delivered;
        let first = self
            .traces
            .first_failure
            .as_ref()
            .or(self.metrics.first_failure.as_ref())
            .or(self.errors.first())
            .map_or(String::new(), |f| format!(": {f}"));
        let (traces, metrics) = (&self.traces_url, &self.metrics_url);
        let detail = if failed > 0 {
            format!("{failed} of {tried} posts to {traces} and {metrics} failed{first}")
        } else {
            format!("posting to {traces} and {metrics}{first}")
        };
        Some(format!(
            "telemetry not fully sent to the OpenTelemetry collector ({detail}); the run itself is unaffected"
        ))
    }
}

impl OtlpExport {
    /// Starts exporting as `opts` says (spans in batches, metrics every
    /// `OTEL_METRIC_EXPORT_INTERVAL` ms, default 10 s; each post bounded by
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` ms, default 10 s; headers from
    /// `OTEL_EXPORTER_OTLP_HEADERS`). Nothing is sent until spans end or
    /// metrics are watched.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an endpoint that is not an `http://`
    /// URL, or a setting the exporters refuse.
    pub fn start(opts: &OtlpOptions) -> Result<Self> {
        let traces_url = opts.traces_url()?.to_string();
        let metrics_url = opts.metrics_url()?.to_string();
        let timeout = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
            .ok()
            .and_then(|ms| ms.trim().parse().ok())
            .map_or(EXPORT_TIMEOUT, Duration::from_millis);
        let refused = |what: &str, e: &dyn std::fmt::Display| {
            Error::invalid(format!("the OTLP {what} exporter cannot be built: {e}"))
        };
        let traces_client = Arc::new(PlainHttp::new(timeout));
        let span_exporter = posting(
            opentelemetry_otlp::SpanExporter::builder().with_http(),
            &traces_url,
            timeout,
            &traces_client,
        )
        .build()
        .map_err(|e| refused("span", &e))?;
        let metrics_client = Arc::new(PlainHttp::new(timeout));
        let metric_exporter = posting(
            opentelemetry_otlp::MetricExporter::builder().with_http(),
            &metrics_url,
            timeout,
            &metrics_client,
        )
        .build()
        .map_err(|e| refused("metric", &e))?;
        let resource = resource(&opts.attributes);
        let tracer = SdkTracerProvider::builder()
            .with_batch_exporter(span_exporter)
            .with_resource(resource.clone())
            .build();
        let mut reader = PeriodicReader::builder(metric_exporter);
        if std::env::var_os("OTEL_METRIC_EXPORT_INTERVAL").is_none() {
            reader = reader.with_interval(METRIC_INTERVAL);
        }
        let meter = SdkMeterProvider::builder()
            .with_reader(reader.build())
            .with_resource(resource)
            .build();
        Ok(Self {
            tracer,
            meter,
            traces_client,
            metrics_client,
            traces_url,
            metrics_url,
            instruments: Mutex::new(Vec::new()),
        })
    }

    /// A layer for a `tracing_subscriber` registry that exports the spans
    /// of target `tenrso_ooc` (this crate's, and the CLI's: its binary is
    /// the crate `tenrso_ooc` too) at INFO level and above, whatever the
    /// log filter prints.
    pub fn tracing_layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync + 'static>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let targets = Targets::new().with_target("tenrso_ooc", tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.tracer("tenrso-ooc"))
            .with_tracked_inactivity(false)
            .with_location(false)
            .with_filter(targets)
            .boxed()
    }

    /// Exports `metrics` until [`finish`](Self::finish): each counter and
    /// gauge of [`Metrics::series`] and the bytes per spill tier, named
    /// `tenrso.` and the Prometheus name less `_total` (the instrument's
    /// kind says it) and `_bytes` (unit `By`), so that a collector's
    /// Prometheus exporter gives back the names of `--metrics-addr`; and
    /// the duration histograms of [`Metrics::histograms`] (less `_seconds`,
    /// unit `s`, the same buckets), from the durations observed from now on.
    pub fn watch(&self, metrics: &Arc<Metrics>) {
        let registered = instruments::register(&self.meter, metrics);
        self.instruments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(registered);
    }

    /// Sends what is left (the spans still queued, a last export of the
    /// metrics) and stops: what was delivered and what was not. A collector
    /// that accepts but does not answer holds this up at most 5 s.
    pub fn finish(self) -> ExportSummary {
        self.finish_within(FINISH_TIMEOUT)
    }

    fn finish_within(self, limit: Duration) -> ExportSummary {
        let Self {
            tracer,
            meter,
            traces_client,
            metrics_client,
            traces_url,
            metrics_url,
            instruments,
        } = self;
        // Shut down on a thread of its own, waited for at most `limit`:
        // what is still posting then is abandoned with the process.
        let (sender, receiver) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("otlp-finish".into())
            .spawn(move || {
                let mut errors = Vec::new();
                if let Err(e) = tracer.shutdown() {
                    errors.push(format!("spans: {e}"));
                }
                if let Err(e) = meter.shutdown() {
                    errors.push(format!("metrics: {e}"));
                }
                drop(instruments);
                let _ = sender.send(errors);
            });
        let outcome = spawned.map(|_| receiver.recv_timeout(limit));
        let (traces, metrics) = (traces_client.health(), metrics_client.health());
        let errors = match outcome {
            // The SDK's own errors repeat failed posts already counted.
            Ok(Ok(_)) if traces.failed + metrics.failed > 0 => Vec::new(),
            Ok(Ok(errors)) => errors,
            Ok(Err(_)) => vec![format!(
                "the collector did not take the last spans and metrics within {} s",
                limit.as_secs_f64()
            )],
            Err(e) => vec![format!("no thread to send the last spans and metrics: {e}")],
        };
        ExportSummary {
            traces_url,
            metrics_url,
            traces,
            metrics,
            errors,
        }
    }
}

/// `builder` set to post protobuf to `url` through `client`, each post
/// bounded by `timeout` and retried once after 100 ms (a collector's
/// hiccup; one that is down is not waited for).
fn posting<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    url: &str,
    timeout: Duration,
    client: &Arc<PlainHttp>,
) -> B {
    let retry = RetryPolicy::default()
        .with_max_retries(1)
        .with_initial_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(100));
    builder
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(timeout)
        .with_retry_policy(retry)
        .with_shared_http_client(client.clone())
}

/// The resource of this process: `service.name` (`tenrso-ooc` unless
/// `OTEL_SERVICE_NAME` says), its version and pid, `OTEL_RESOURCE_ATTRIBUTES`
/// and `extra`.
fn resource(extra: &[(String, String)]) -> Resource {
    use opentelemetry::KeyValue;
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name("tenrso-ooc");
    }
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())))
        .with_attributes(
            extra
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        let opts = OtlpOptions::new("http://collector:4318/");
        assert_eq!(
            opts.traces_url().unwrap(),
            "http://collector:4318/v1/traces"
        );
        for bad in ["https://c:4318", "collector:4318", "ftp://c", "http://"] {
            let err = OtlpOptions::new(bad).traces_url().unwrap_err().to_string();
            assert!(err.contains(bad.trim_end_matches('/')), "{err}");
        }
        assert!(
            OtlpOptions::new("https://c")
                .metrics_url()
                .unwrap_err()
                .to_string()
                .contains("https is not supported")
        );
    }

    #[test]
    fn a_collector_that_never_answers_holds_the_end_up_boundedly() {
        // Accepts connections and reads nothing, answers nothing.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let export =
            OtlpExport::start(&OtlpOptions::new(&format!("http://127.0.0.1:{port}"))).unwrap();
        let metrics = Arc::new(Metrics::default());
        export.watch(&metrics);
        metrics.task_seconds.observe(Duration::from_millis(3));
        let started = std::time::Instant::now();
        let summary = export.finish_within(Duration::from_millis(500));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let warning = summary.warning().unwrap();
        assert!(
            warning.contains("(posting to http://127.0.0.1:")
                && warning.contains("did not take the last spans and metrics within 0.5 s"),
            "{warning}"
        );
    }

    #[test]
    fn a_summary_warns_only_of_failures() {
        let mut summary = ExportSummary {
            traces_url: "http://c/v1/traces".into(),
            metrics_url: "http://c/v1/metrics".into(),
            ..ExportSummary::default()
        };
        summary.traces.delivered = 3;
        assert_eq!(summary.warning(), None);
        summary.metrics.failed = 1;
        summary.metrics.first_failure = Some("cannot connect to c:80: refused".into());
        let warning = summary.warning().unwrap();
        assert!(
            warning.contains("1 of 4 posts")
                && warning.contains("cannot connect to c:80")
                && warning.contains("unaffected"),
            "{warning}"
        );
    }
}
