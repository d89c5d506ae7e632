//! [`Histogram`]: durations counted in fixed buckets, lock-free.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// Upper bounds of the buckets, in seconds: from 100 µs (a cached chunk)
/// to 10 s (a large task on a slow disk); Prometheus adds `+Inf`.
pub const BUCKET_BOUNDS_SECONDS: [f64; 16] = [
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations: counts per bucket (not cumulative), their sum
/// and count, updated with relaxed atomics from any thread.
///
/// ```
/// use std::time::Duration;
/// use tenrso_ooc::telemetry::Histogram;
/// let h = Histogram::default();
/// h.observe(Duration::from_millis(3));
/// h.observe(Duration::from_secs(20));
/// assert_eq!(h.count(), 2);
/// // Cumulative counts per upper bound; the last is +Inf.
/// let cumulative = h.cumulative();
/// assert_eq!(cumulative[5], (5e-3, 1));
/// assert_eq!(cumulative.last().unwrap().1, 2);
/// ```
#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, then the overflow bucket.
    buckets: [AtomicU64; BUCKET_BOUNDS_SECONDS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
    mirror: OnceLock<Mirror>,
}

/// Where a [`Histogram`] also reports each duration, in seconds (an
/// exporter's own histogram).
struct Mirror(Box<dyn Fn(f64) + Send + Sync>);

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mirror")
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKET_BOUNDS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKET_BOUNDS_SECONDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(mirror) = self.mirror.get() {
            (mirror.0)(seconds);
        }
    }

    /// Reports every later duration to `record` too, in seconds (how an
    /// exporter keeps its own histogram); the first mirror set stays, and
    /// false says one was already set.
    pub fn mirror_to(&self, record: impl Fn(f64) + Send + Sync + 'static) -> bool {
        self.mirror.set(Mirror(Box::new(record))).is_ok()
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Their sum, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// `(upper bound, durations at most that long)` per bucket, the last
    /// bound being infinity (Prometheus' `le` buckets).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        BUCKET_BOUNDS_SECONDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, n)| {
                total += n.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect()
    }

    /// Appends the series `NAME_bucket{le=…}`, `NAME_sum` and `NAME_count`
    /// in the Prometheus text format, after its HELP and TYPE lines.
    pub fn write_prometheus(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (bound, n) in self.cumulative() {
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                bound.to_string()
            };
            out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {n}\n"));
        }
        out.push_str(&format!(
            "{name}_sum {}\n{name}_count {}\n",
            self.sum_seconds(),
            self.count()
        ));
    }

    /// `{"count", "sum_seconds", "buckets": [[le, cumulative count], …]}`
    /// (the last bound written as `null`: infinity).
    pub fn to_json(&self) -> Value {
        let buckets: Vec<Value> = self
            .cumulative()
            .into_iter()
            .map(|(bound, n)| json!([bound.is_finite().then_some(bound), n]))
            .collect();
        json!({
            "count": self.count(),
            "sum_seconds": self.sum_seconds(),
            "buckets": buckets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // exactly the first bound
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(11));
        let c = h.cumulative();
        assert_eq!(c.len(), 17);
        assert_eq!(c[0], (1e-4, 1));
        assert_eq!(c[1], (2.5e-4, 2));
        assert_eq!(c[15], (10.0, 2));
        assert_eq!(c[16].1, 3);
        assert!((h.sum_seconds() - 11.000201).abs() < 1e-9);
        let mut text = String::new();
        h.write_prometheus("x_seconds", "X.", &mut text);
        assert!(
            text.contains("x_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
        assert_eq!(h.to_json()["buckets"][16], json!([null, 3]));
    }

    #[test]
    fn a_mirror_sees_later_durations() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(1));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        assert!(h.mirror_to(move |s| sink.lock().unwrap().push(s)));
        assert!(!h.mirror_to(|_| {}), "the first mirror stays");
        h.observe(Duration::from_millis(250));
        assert_eq!(*seen.lock().unwrap(), vec![0.25]);
        assert_eq!(h.count(), 2);
    }
}
