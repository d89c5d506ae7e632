//! [`Metrics`]: the counters of a session, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

/// Figures of a memory budget that [`Metrics`] reports as gauges.
///
/// Telemetry sits below the memory layer, so it reads the session's pool
/// (`memory::MemoryPool` implements this trait) without depending on it.
pub trait PoolGauges: std::fmt::Debug + Send + Sync {
    /// Bytes currently reserved.
    fn reserved(&self) -> u64;
    /// The most bytes ever reserved at once.
    fn peak(&self) -> u64;
    /// The hard limit in bytes.
    fn limit(&self) -> u64;
}

/// One named counter or gauge.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets the value (gauges).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Counters of one session: I/O, cache, pool, prefetch and tasks. Shared by
/// every layer of a run; exported as Prometheus text and in run reports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bytes read from stored arrays and files (uncompressed).
    pub bytes_read: Counter,
    /// Bytes written to stored arrays and files (uncompressed).
    pub bytes_written: Counter,
    /// Bytes written to spill files (as stored).
    pub bytes_spilled: Counter,
    /// Bytes read back from spill files (as stored).
    pub bytes_unspilled: Counter,
    /// Chunk requests served from the cache.
    pub cache_hits: Counter,
    /// Chunk requests that loaded the chunk.
    pub cache_misses: Counter,
    /// Chunks evicted from the cache.
    pub cache_evictions: Counter,
    /// Chunk requests served by a prefetched chunk.
    pub prefetch_hits: Counter,
    /// Chunk requests that waited for a load under way.
    pub prefetch_waits: Counter,
    /// Tasks finished.
    pub tasks_done: Counter,
    /// Tasks planned.
    pub tasks_total: Counter,
    pool: OnceLock<Box<dyn PoolGauges>>,
    phases: Mutex<Vec<(String, f64)>>,
}

impl Metrics {
    /// Reports the pool's reserved, peak and limit bytes as gauges (the
    /// first pool watched stays).
    pub fn watch_pool<P: PoolGauges + Clone + 'static>(&self, pool: &P) {
        let _ = self.pool.set(Box::new(pool.clone()));
    }

    /// Records that phase `name` took `seconds`.
    pub fn record_phase(&self, name: &str, seconds: f64) {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_string(), seconds));
    }

    /// Phases recorded so far, in order.
    pub fn phases(&self) -> Vec<(String, f64)> {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn counters(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let (reserved, peak, limit) = self
            .pool
            .get()
            .map_or((0, 0, 0), |p| (p.reserved(), p.peak(), p.limit()));
        vec![
            (
                "bytes_read_total",
                "counter",
                "Bytes read from arrays and files (uncompressed).",
                self.bytes_read.get(),
            ),
            (
                "bytes_written_total",
                "counter",
                "Bytes written to arrays and files (uncompressed).",
                self.bytes_written.get(),
            ),
            (
                "bytes_spilled_total",
                "counter",
                "Bytes written to spill files.",
                self.bytes_spilled.get(),
            ),
            (
                "bytes_unspilled_total",
                "counter",
                "Bytes read back from spill files.",
                self.bytes_unspilled.get(),
            ),
            (
                "cache_hits_total",
                "counter",
                "Chunk requests served from the cache.",
                self.cache_hits.get(),
            ),
            (
                "cache_misses_total",
                "counter",
                "Chunk requests that loaded the chunk.",
                self.cache_misses.get(),
            ),
            (
                "cache_evictions_total",
                "counter",
                "Chunks evicted from the cache.",
                self.cache_evictions.get(),
            ),
            (
                "prefetch_hits_total",
                "counter",
                "Chunk requests served by a prefetched chunk.",
                self.prefetch_hits.get(),
            ),
            (
                "prefetch_waits_total",
                "counter",
                "Chunk requests that waited for a load under way.",
                self.prefetch_waits.get(),
            ),
            (
                "tasks_done_total",
                "counter",
                "Tasks finished.",
                self.tasks_done.get(),
            ),
            (
                "tasks_planned",
                "gauge",
                "Tasks planned.",
                self.tasks_total.get(),
            ),
            (
                "pool_reserved_bytes",
                "gauge",
                "Bytes reserved in the memory pool.",
                reserved,
            ),
            (
                "pool_peak_bytes",
                "gauge",
                "Most bytes ever reserved in the memory pool.",
                peak,
            ),
            ("pool_limit_bytes", "gauge", "The memory limit.", limit),
        ]
    }

    /// The counters in the Prometheus text exposition format, each prefixed
    /// `tenrso_`.
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in self.counters() {
            out.push_str(&format!(
                "# HELP tenrso_{name} {help}\n# TYPE tenrso_{name} {kind}\ntenrso_{name} {value}\n"
            ));
        }
        out
    }

    /// The counters as a JSON object (names without the prefix).
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (name, _, _, value) in self.counters() {
            map.insert(name.to_string(), json!(value));
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_value() {
        let m = Metrics::default();
        m.bytes_read.add(42);
        #[derive(Debug, Clone)]
        struct Fixed;
        impl PoolGauges for Fixed {
            fn reserved(&self) -> u64 {
                10
            }
            fn peak(&self) -> u64 {
                20
            }
            fn limit(&self) -> u64 {
                1000
            }
        }
        m.watch_pool(&Fixed);
        let text = m.prometheus_text();
        assert!(
            text.contains("# TYPE tenrso_bytes_read_total counter\ntenrso_bytes_read_total 42\n"),
            "{text}"
        );
        assert!(text.contains("tenrso_pool_limit_bytes 1000\n"), "{text}");
        assert!(text.contains("tenrso_pool_peak_bytes 20\n"), "{text}");
        assert_eq!(m.to_json()["bytes_read_total"], 42);
    }
}
