//! Telemetry: the metrics registry of a session and its Prometheus exporter.
//! (Tracing spans are emitted with the `tracing` crate by each layer; the
//! CLI installs the subscriber.)
//!
//! Telemetry depends on no other layer but `core`: the memory pool reports
//! its figures through [`PoolGauges`].

mod metrics;
mod server;

pub use metrics::{Counter, Metrics, PoolGauges};
pub use server::{MetricsServer, scrape};
