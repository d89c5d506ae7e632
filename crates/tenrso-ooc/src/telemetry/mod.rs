//! Telemetry: the metrics registry of a session, its Prometheus exporter,
//! its timeline, and the process's own memory figures. (Tracing spans are
//! emitted with the `tracing` crate by each layer; the CLI installs the
//! subscriber.)
//!
//! Telemetry depends on no other layer but `core`: the memory pool and the
//! spill area report their figures through [`PoolGauges`] and
//! [`SpillGauges`].

mod histogram;
mod metrics;
mod process;
mod server;
mod timeline;

pub use histogram::{BUCKET_BOUNDS_SECONDS, Histogram};
pub use metrics::{
    Counter, Metrics, PHASES_KEPT, PoolGauges, Series, SeriesKind, SpillGauges, SpillTier,
};
pub use process::{peak_resident_bytes, resident_bytes};
pub use server::{MetricsServer, scrape};
pub use timeline::{Sample, TIMELINE_CAPACITY, Timeline, TimelineRecorder};
