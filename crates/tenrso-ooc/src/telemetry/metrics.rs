//! [`Metrics`]: the counters of a session, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use crate::telemetry::Histogram;
use crate::telemetry::process::resident_bytes;

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

/// One spill directory (tier) as [`SpillGauges`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpillTier {
    /// The directory the user named.
    pub dir: String,
    /// Bytes its spill files hold now (as stored).
    pub bytes: u64,
    /// Its cap, if any.
    pub cap: Option<u64>,
    /// Bytes written to its spill files so far (moves included).
    pub written_bytes: u64,
    /// Bytes read from its spill files so far (moves included).
    pub read_bytes: u64,
    /// Bytes per second written to it so far (`None` before any write).
    pub write_bytes_per_second: Option<f64>,
    /// Bytes per second read from it so far (`None` before any read).
    pub read_bytes_per_second: Option<f64>,
}

/// The spill area's tiers, read by [`Metrics`] (`memory::SpillManager`
/// implements this trait).
pub trait SpillGauges: std::fmt::Debug + Send + Sync {
    /// Each tier in the order they are tried.
    fn tiers(&self) -> Vec<SpillTier>;
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
    /// Spill files moved to a slower tier to make room in a faster one for
    /// a chunk needed sooner.
    pub spill_demotions: Counter,
    /// Spill files moved to a faster tier ahead of their use.
    pub spill_promotions: Counter,
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
    /// Tasks the prefetcher has loaded the inputs of ahead of the next one
    /// to start (a gauge).
    pub prefetch_depth: Counter,
    /// Tasks finished.
    pub tasks_done: Counter,
    /// Tasks planned.
    pub tasks_total: Counter,
    /// How long each task of a chunk graph took to run.
    pub task_seconds: Histogram,
    /// How long each chunk read from a stored array took (decoding and
    /// checksum included).
    pub chunk_read_seconds: Histogram,
    /// How long each request of a task for an input chunk took: nothing
    /// for a chunk in memory, the wait for a reader's load under way, or
    /// the load itself.
    pub read_wait_seconds: Histogram,
    /// How long each output chunk write by a task took (encoding, checksum
    /// and writing; the sync too with `--durability chunk`).
    pub chunk_write_seconds: Histogram,
    /// Bytes this rank sent to the other ranks of its job.
    pub bytes_sent: Counter,
    /// Bytes this rank received from the other ranks of its job.
    pub bytes_received: Counter,
    /// Bytes of node-local chunks this rank fetched from the ranks that
    /// hold them.
    pub bytes_fetched: Counter,
    /// How long each collective operation among the ranks (a gather, a
    /// barrier) took this rank, waiting for the others included.
    pub communication_seconds: Histogram,
    pool: OnceLock<Box<dyn PoolGauges>>,
    spill: OnceLock<Weak<dyn SpillGauges>>,
    phases: Mutex<Vec<(String, f64)>>,
    plans: Mutex<Vec<String>>,
}

/// A series' type in the Prometheus sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// Only grows (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One unlabelled series: its name (without the `tenrso_` prefix), type,
/// help text and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Name by Prometheus conventions: unit in the name, `_total` counters.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: SeriesKind,
    /// One sentence.
    pub help: &'static str,
    /// The value now.
    pub value: u64,
}

/// Plans kept for the run report: the first few of a session.
const PLANS_KEPT: usize = 8;

/// Phases kept one by one; later ones are added to earlier ones.
pub const PHASES_KEPT: usize = 256;

impl Metrics {
    /// Reports the pool's reserved, peak and limit bytes as gauges (the
    /// first pool watched stays).
    pub fn watch_pool<P: PoolGauges + Clone + 'static>(&self, pool: &P) {
        let _ = self.pool.set(Box::new(pool.clone()));
    }

    /// Reports the bytes in each spill tier while `spill` lives (held
    /// weakly: the spill area is removed when its session drops it).
    pub fn watch_spill(&self, spill: Weak<dyn SpillGauges>) {
        let _ = self.spill.set(spill);
    }

    /// Counts a chunk of `bytes` read from a stored array in `elapsed`.
    pub fn chunk_read(&self, bytes: u64, elapsed: Duration) {
        self.bytes_read.add(bytes);
        self.chunk_read_seconds.observe(elapsed);
    }

    /// Records that phase `name` took `seconds`. After the first
    /// [`PHASES_KEPT`](crate::telemetry::PHASES_KEPT) phases, a phase adds
    /// its time to the last one of its name (or to `other phases`), so a
    /// session's phases stay bounded.
    pub fn record_phase(&self, name: &str, seconds: f64) {
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        if phases.len() < PHASES_KEPT {
            phases.push((name.to_string(), seconds));
            return;
        }
        let other = "other phases";
        if let Some(same) = phases.iter_mut().rev().find(|(n, _)| n == name) {
            same.1 += seconds;
        } else if let Some(last) = phases.last_mut().filter(|(n, _)| n == other) {
            last.1 += seconds;
        } else {
            phases.push((other.to_string(), seconds));
        }
    }

    /// Phases recorded so far, in order.
    pub fn phases(&self) -> Vec<(String, f64)> {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the plan (its `explain` text) of an operation about to run,
    /// for the run report; the first few of a session are kept.
    pub fn record_plan(&self, explained: String) {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() < PLANS_KEPT {
            plans.push(explained);
        }
    }

    /// Plans recorded so far, in order.
    pub fn plans(&self) -> Vec<String> {
        self.plans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pool's (reserved, peak, limit) bytes; zeros before a pool is watched.
    pub fn pool_figures(&self) -> (u64, u64, u64) {
        self.pool
            .get()
            .map_or((0, 0, 0), |p| (p.reserved(), p.peak(), p.limit()))
    }

    /// Each spill tier now; empty before the spill area is made or after
    /// it is removed.
    pub fn spill_tiers(&self) -> Vec<SpillTier> {
        self.spill
            .get()
            .and_then(Weak::upgrade)
            .map_or_else(Vec::new, |s| s.tiers())
    }

    /// Every unlabelled series, in exposition order.
    pub fn series(&self) -> Vec<Series> {
        use SeriesKind::{Counter as C, Gauge as G};
        let (reserved, peak, limit) = self.pool_figures();
        let s = |name, kind, help, value| Series {
            name,
            kind,
            help,
            value,
        };
        vec![
            s(
                "read_bytes_total",
                C,
                "Bytes read from arrays and files (uncompressed).",
                self.bytes_read.get(),
            ),
            s(
                "written_bytes_total",
                C,
                "Bytes written to arrays and files (uncompressed).",
                self.bytes_written.get(),
            ),
            s(
                "spill_written_bytes_total",
                C,
                "Bytes written to spill files (as stored).",
                self.bytes_spilled.get(),
            ),
            s(
                "spill_read_bytes_total",
                C,
                "Bytes read back from spill files (as stored).",
                self.bytes_unspilled.get(),
            ),
            s(
                "spill_demotions_total",
                C,
                "Spill files moved to a slower tier to make room for chunks needed sooner.",
                self.spill_demotions.get(),
            ),
            s(
                "spill_promotions_total",
                C,
                "Spill files moved to a faster tier ahead of their use.",
                self.spill_promotions.get(),
            ),
            s(
                "cache_hits_total",
                C,
                "Chunk requests served from the cache.",
                self.cache_hits.get(),
            ),
            s(
                "cache_misses_total",
                C,
                "Chunk requests that loaded the chunk.",
                self.cache_misses.get(),
            ),
            s(
                "cache_evictions_total",
                C,
                "Chunks evicted from the cache.",
                self.cache_evictions.get(),
            ),
            s(
                "prefetch_hits_total",
                C,
                "Chunk requests served by a prefetched chunk.",
                self.prefetch_hits.get(),
            ),
            s(
                "prefetch_waits_total",
                C,
                "Chunk requests that waited for a load under way.",
                self.prefetch_waits.get(),
            ),
            s(
                "prefetch_depth_tasks",
                G,
                "Tasks whose inputs the prefetcher has loaded ahead of the next task to start.",
                self.prefetch_depth.get(),
            ),
            s(
                "tasks_completed_total",
                C,
                "Tasks finished.",
                self.tasks_done.get(),
            ),
            s(
                "tasks_planned_total",
                C,
                "Tasks planned (progress is completed over planned).",
                self.tasks_total.get(),
            ),
            s(
                "pool_reserved_bytes",
                G,
                "Bytes reserved in the memory pool.",
                reserved,
            ),
            s(
                "pool_peak_bytes",
                G,
                "Most bytes ever reserved in the memory pool.",
                peak,
            ),
            s("pool_limit_bytes", G, "The memory limit.", limit),
            s(
                "sent_bytes_total",
                C,
                "Bytes sent to the other ranks of an MPI job.",
                self.bytes_sent.get(),
            ),
            s(
                "fetched_bytes_total",
                C,
                "Bytes of node-local chunks fetched from the other ranks of an MPI job.",
                self.bytes_fetched.get(),
            ),
            s(
                "received_bytes_total",
                C,
                "Bytes received from the other ranks of an MPI job.",
                self.bytes_received.get(),
            ),
            s(
                "process_resident_memory_bytes",
                G,
                "Resident set size of the process (VmRSS).",
                resident_bytes().unwrap_or(0),
            ),
        ]
    }

    /// The duration histograms: name (without the `tenrso_` prefix), help
    /// text, histogram.
    pub fn histograms(&self) -> [(&'static str, &'static str, &Histogram); 5] {
        [
            (
                "task_duration_seconds",
                "How long each task of a chunk graph took.",
                &self.task_seconds,
            ),
            (
                "chunk_read_duration_seconds",
                "How long each chunk read from a stored array took, decoding included.",
                &self.chunk_read_seconds,
            ),
            (
                "read_wait_duration_seconds",
                "How long each request of a task for an input chunk waited for it.",
                &self.read_wait_seconds,
            ),
            (
                "chunk_write_duration_seconds",
                "How long each output chunk write by a task took, encoding included.",
                &self.chunk_write_seconds,
            ),
            (
                "communication_duration_seconds",
                "How long each collective operation among the ranks of an MPI job took, waiting included.",
                &self.communication_seconds,
            ),
        ]
    }

    /// The metrics in the Prometheus text exposition format (version
    /// 0.0.4), each name prefixed `tenrso_`: the series, the bytes held per
    /// spill tier (`tenrso_spill_bytes{dir=…}`) and the task and chunk-read
    /// duration histograms.
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        for Series {
            name,
            kind,
            help,
            value,
        } in self.series()
        {
            let kind = match kind {
                SeriesKind::Counter => "counter",
                SeriesKind::Gauge => "gauge",
            };
            out.push_str(&format!(
                "# HELP tenrso_{name} {help}\n# TYPE tenrso_{name} {kind}\ntenrso_{name} {value}\n"
            ));
        }
        let tiers = self.spill_tiers();
        if !tiers.is_empty() {
            out.push_str(
                "# HELP tenrso_spill_bytes Bytes each spill tier holds now (spill files and intermediate arrays placed in it).\n# TYPE tenrso_spill_bytes gauge\n",
            );
            for tier in &tiers {
                out.push_str(&format!(
                    "tenrso_spill_bytes{{dir=\"{}\"}} {}\n",
                    label_value(&tier.dir),
                    tier.bytes
                ));
            }
            out.push_str(
                "# HELP tenrso_spill_capacity_bytes The cap of each capped spill tier.\n# TYPE tenrso_spill_capacity_bytes gauge\n",
            );
            for tier in &tiers {
                if let Some(cap) = tier.cap {
                    out.push_str(&format!(
                        "tenrso_spill_capacity_bytes{{dir=\"{}\"}} {cap}\n",
                        label_value(&tier.dir)
                    ));
                }
            }
            for (name, help, of) in [
                (
                    "spill_write_bytes_per_second",
                    "Speed of the writes to each spill tier so far.",
                    (|t: &SpillTier| t.write_bytes_per_second) as fn(&SpillTier) -> Option<f64>,
                ),
                (
                    "spill_read_bytes_per_second",
                    "Speed of the reads from each spill tier so far.",
                    |t: &SpillTier| t.read_bytes_per_second,
                ),
            ] {
                let measured: Vec<(&SpillTier, f64)> =
                    tiers.iter().filter_map(|t| of(t).map(|v| (t, v))).collect();
                if measured.is_empty() {
                    continue;
                }
                out.push_str(&format!(
                    "# HELP tenrso_{name} {help}\n# TYPE tenrso_{name} gauge\n"
                ));
                for (tier, value) in measured {
                    out.push_str(&format!(
                        "tenrso_{name}{{dir=\"{}\"}} {value:.0}\n",
                        label_value(&tier.dir)
                    ));
                }
            }
        }
        for (name, help, histogram) in self.histograms() {
            histogram.write_prometheus(&format!("tenrso_{name}"), help, &mut out);
        }
        out
    }

    /// The metrics as a JSON object: each series by its name without the
    /// prefix, `spill_bytes` per tier and the histograms.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for series in self.series() {
            map.insert(series.name.to_string(), json!(series.value));
        }
        let tiers: Vec<Value> = self
            .spill_tiers()
            .into_iter()
            .map(|t| {
                json!({
                    "dir": t.dir,
                    "bytes": t.bytes,
                    "cap": t.cap,
                    "written_bytes": t.written_bytes,
                    "read_bytes": t.read_bytes,
                    "write_bytes_per_second": t.write_bytes_per_second,
                    "read_bytes_per_second": t.read_bytes_per_second,
                })
            })
            .collect();
        map.insert("spill_tiers".into(), Value::from(tiers));
        for (name, _, histogram) in self.histograms() {
            map.insert(name.into(), histogram.to_json());
        }
        Value::Object(map)
    }
}

/// A label value escaped for the text format (backslash, quote, newline).
fn label_value(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

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

    #[derive(Debug)]
    struct Tiers;
    impl SpillGauges for Tiers {
        fn tiers(&self) -> Vec<SpillTier> {
            vec![
                SpillTier {
                    dir: "/dev/shm/a\"b".into(),
                    bytes: 7,
                    cap: Some(8),
                    written_bytes: 1 << 30,
                    read_bytes: 0,
                    write_bytes_per_second: Some(1e9),
                    read_bytes_per_second: None,
                },
                SpillTier {
                    dir: "/tmp".into(),
                    bytes: 0,
                    cap: None,
                    written_bytes: 0,
                    read_bytes: 0,
                    write_bytes_per_second: None,
                    read_bytes_per_second: None,
                },
            ]
        }
    }

    #[test]
    fn prometheus_text_has_help_type_and_value() {
        let m = Metrics::default();
        m.bytes_read.add(42);
        m.watch_pool(&Fixed);
        let text = m.prometheus_text();
        assert!(
            text.contains("# TYPE tenrso_read_bytes_total counter\ntenrso_read_bytes_total 42\n"),
            "{text}"
        );
        assert!(text.contains("tenrso_pool_limit_bytes 1000\n"), "{text}");
        assert!(text.contains("tenrso_pool_peak_bytes 20\n"), "{text}");
        assert!(text.contains("# TYPE tenrso_task_duration_seconds histogram\n"));
        assert!(!text.contains("tenrso_spill_bytes"), "no spill area yet");
        assert_eq!(m.to_json()["read_bytes_total"], 42);
        // Counters and only counters end in `_total`.
        for s in m.series() {
            assert_eq!(
                s.name.ends_with("_total"),
                s.kind == SeriesKind::Counter,
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn spill_tiers_are_labelled_while_the_spill_area_lives() {
        let m = Metrics::default();
        let tiers: Arc<dyn SpillGauges> = Arc::new(Tiers);
        m.watch_spill(Arc::downgrade(&tiers));
        let text = m.prometheus_text();
        assert!(
            text.contains("tenrso_spill_bytes{dir=\"/dev/shm/a\\\"b\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("tenrso_spill_bytes{dir=\"/tmp\"} 0\n"));
        assert!(
            text.contains(
                "tenrso_spill_write_bytes_per_second{dir=\"/dev/shm/a\\\"b\"} 1000000000\n"
            )
        );
        assert!(
            !text.contains("tenrso_spill_read_bytes_per_second"),
            "not measured"
        );
        assert!(text.contains("tenrso_spill_capacity_bytes{dir=\"/dev/shm/a\\\"b\"} 8\n"));
        assert!(!text.contains("tenrso_spill_capacity_bytes{dir=\"/tmp\"}"));
        assert_eq!(m.to_json()["spill_tiers"][0]["bytes"], 7);
        drop(tiers);
        assert!(m.spill_tiers().is_empty());
    }

    #[test]
    fn phases_stay_bounded() {
        let m = Metrics::default();
        for i in 0..PHASES_KEPT + 1000 {
            m.record_phase(if i % 2 == 0 { "plan" } else { "execute" }, 1.0);
        }
        m.record_phase("write", 2.0);
        m.record_phase("flush", 3.0);
        let phases = m.phases();
        assert_eq!(phases.len(), PHASES_KEPT + 1);
        let total: f64 = phases.iter().map(|p| p.1).sum();
        assert_eq!(total, (PHASES_KEPT + 1000) as f64 + 5.0);
        assert_eq!(phases.last().unwrap(), &("other phases".to_string(), 5.0));
    }

    #[test]
    fn only_the_first_plans_are_kept() {
        let m = Metrics::default();
        for i in 0..20 {
            m.record_plan(format!("plan {i}"));
        }
        assert_eq!(m.plans().len(), PLANS_KEPT);
        assert_eq!(m.plans()[0], "plan 0");
    }
}
