//! Telemetry: the metrics registry of a session and its Prometheus exporter.
//! (Tracing spans are emitted with the `tracing` crate by each layer; the
//! CLI installs the subscriber.)

mod metrics;
mod server;

pub use metrics::{Counter, Metrics};
pub use server::{MetricsServer, scrape};
