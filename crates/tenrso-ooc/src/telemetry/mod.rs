//! Telemetry: the metrics registry of a session, its Prometheus exporter,
//! its OTLP export (feature `otel`), its timeline, and the process's own
//! memory figures. (Tracing spans are emitted with the `tracing` crate by
//! each layer — operation, plan, stage, task batches, iteration, pass; the
//! CLI installs the subscriber.)
//!
//! Telemetry depends on no other layer but `core`: the memory pool and the
//! spill area report their figures through [`PoolGauges`] and
//! [`SpillGauges`].

mod histogram;
mod metrics;
#[cfg(feature = "otel")]
mod otlp;
mod process;
mod server;
mod timeline;

pub use histogram::{BUCKET_BOUNDS_SECONDS, Histogram};
pub use metrics::{
    Counter, Metrics, PHASES_KEPT, PoolGauges, Series, SeriesKind, SpillGauges, SpillTier,
};
#[cfg(feature = "otel")]
pub use otlp::{ExportHealth, ExportSummary, OTLP_ENDPOINT_VAR, OtlpExport, OtlpOptions};
pub use process::{peak_resident_bytes, resident_bytes};
pub use server::{MetricsServer, scrape};
pub use timeline::{Sample, TIMELINE_CAPACITY, Timeline, TimelineRecorder};

/// `value` as an integer attribute of a span: OpenTelemetry's integers are
/// `i64` (an unsigned value would be exported as text); saturating.
///
/// ```
/// assert_eq!(tenrso_ooc::telemetry::span_int(7u64), 7);
/// assert_eq!(tenrso_ooc::telemetry::span_int(u64::MAX), i64::MAX);
/// ```
pub fn span_int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}
