//! Telemetry: the metrics registry of a session.

mod metrics;

pub use metrics::{Counter, Metrics};
