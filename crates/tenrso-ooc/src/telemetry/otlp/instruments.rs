//! The session's [`Metrics`] as OpenTelemetry instruments: its counters
//! and gauges observed when the periodic reader collects, its duration
//! histograms recorded as they are observed.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _, ObservableCounter, ObservableGauge};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::telemetry::{BUCKET_BOUNDS_SECONDS, Metrics, SeriesKind};

/// The instruments of one watched [`Metrics`], kept while the export runs.
#[derive(Debug)]
pub(super) struct Registered {
    _counters: Vec<ObservableCounter<u64>>,
    _gauges: Vec<ObservableGauge<u64>>,
}

/// The OpenTelemetry name and unit of the Prometheus series `name`
/// (without its `tenrso_` prefix).
pub(super) fn otel_name(name: &str) -> (String, &'static str) {
    let base = name.strip_suffix("_total").unwrap_or(name);
    match base.strip_suffix("_bytes") {
        Some(stem) => (format!("tenrso.{stem}"), "By"),
        None => (format!("tenrso.{base}"), "1"),
    }
}

/// Registers one instrument per series of `metrics` and one for the bytes
/// per spill tier.
pub(super) fn register(provider: &SdkMeterProvider, metrics: &Arc<Metrics>) -> Registered {
    let meter: Meter = provider.meter("tenrso-ooc");
    let mut counters = Vec::new();
    let mut gauges = Vec::new();
    for (index, series) in metrics.series().into_iter().enumerate() {
        let (name, unit) = otel_name(series.name);
        let watched = Arc::clone(metrics);
        // Each callback reads its own series (the list's order is fixed).
        let read = move || watched.series().get(index).map_or(0, |s| s.value);
        match series.kind {
            SeriesKind::Counter => counters.push(
                meter
                    .u64_observable_counter(name)
                    .with_unit(unit)
                    .with_description(series.help)
                    .with_callback(move |observer| observer.observe(read(), &[]))
                    .build(),
            ),
            SeriesKind::Gauge => gauges.push(
                meter
                    .u64_observable_gauge(name)
                    .with_unit(unit)
                    .with_description(series.help)
                    .with_callback(move |observer| observer.observe(read(), &[]))
                    .build(),
            ),
        }
    }
    // The duration histograms, fed as they are observed, in the same
    // buckets as the Prometheus ones.
    for (name, help, histogram) in metrics.histograms() {
        let name = name.strip_suffix("_seconds").unwrap_or(name);
        let exported = meter
            .f64_histogram(format!("tenrso.{name}"))
            .with_unit("s")
            .with_description(help)
            .with_boundaries(BUCKET_BOUNDS_SECONDS.to_vec())
            .build();
        histogram.mirror_to(move |seconds| exported.record(seconds, &[]));
    }
    let watched = Arc::clone(metrics);
    gauges.push(
        meter
            .u64_observable_gauge("tenrso.spill")
            .with_unit("By")
            .with_description("Bytes each spill tier holds now.")
            .with_callback(move |observer| {
                for tier in watched.spill_tiers() {
                    observer.observe(tier.bytes, &[KeyValue::new("dir", tier.dir)]);
                }
            })
            .build(),
    );
    Registered {
        _counters: counters,
        _gauges: gauges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_ones() {
        assert_eq!(otel_name("read_bytes_total"), ("tenrso.read".into(), "By"));
        assert_eq!(
            otel_name("pool_limit_bytes"),
            ("tenrso.pool_limit".into(), "By")
        );
        assert_eq!(
            otel_name("tasks_completed_total"),
            ("tenrso.tasks_completed".into(), "1")
        );
        assert_eq!(
            otel_name("prefetch_depth_tasks"),
            ("tenrso.prefetch_depth_tasks".into(), "1")
        );
        // Every series has a distinct name.
        let names: std::collections::HashSet<String> = Metrics::default()
            .series()
            .iter()
            .map(|s| otel_name(s.name).0)
            .collect();
        assert_eq!(names.len(), Metrics::default().series().len());
    }
}
