//! [`Timeline`]: the session's metrics sampled over time, bounded in size
//! however long the run; [`TimelineRecorder`] samples on a thread.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::core::{Error, Result};
use crate::telemetry::Metrics;
use crate::telemetry::process::resident_bytes;

/// The metrics at one moment of a run. Gauges are values at that moment
/// (or, once samples are merged, the most over the merged span); counters
/// are totals since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the recording started.
    pub seconds: f64,
    /// Bytes reserved in the memory pool (gauge).
    pub pool_reserved_bytes: u64,
    /// Resident set size of the process (gauge).
    pub resident_bytes: u64,
    /// Tasks the prefetcher has loaded ahead (gauge).
    pub prefetch_depth_tasks: u64,
    /// Bytes read from arrays and files.
    pub read_bytes_total: u64,
    /// Bytes written to arrays and files.
    pub written_bytes_total: u64,
    /// Bytes written to spill files.
    pub spill_written_bytes_total: u64,
    /// Bytes read back from spill files.
    pub spill_read_bytes_total: u64,
    /// Chunk requests served from the cache.
    pub cache_hits_total: u64,
    /// Chunk requests that loaded the chunk.
    pub cache_misses_total: u64,
    /// Chunks evicted from the cache.
    pub cache_evictions_total: u64,
    /// Tasks finished.
    pub tasks_completed_total: u64,
    /// Tasks planned.
    pub tasks_planned_total: u64,
}

/// A column of a timeline's JSON: its name and its value in a sample.
type Column = (&'static str, fn(&Sample) -> Value);

/// The columns of a timeline's JSON, in order. `seconds` is the first; the
/// gauges follow. Times are rounded to milliseconds (enough, and smaller).
const COLUMNS: [Column; 13] = [
    ("seconds", |s| {
        Value::from((s.seconds * 1000.0).round() / 1000.0)
    }),
    ("pool_reserved_bytes", |s| s.pool_reserved_bytes.into()),
    ("resident_bytes", |s| s.resident_bytes.into()),
    ("prefetch_depth_tasks", |s| s.prefetch_depth_tasks.into()),
    ("read_bytes_total", |s| s.read_bytes_total.into()),
    ("written_bytes_total", |s| s.written_bytes_total.into()),
    ("spill_written_bytes_total", |s| {
        s.spill_written_bytes_total.into()
    }),
    ("spill_read_bytes_total", |s| {
        s.spill_read_bytes_total.into()
    }),
    ("cache_hits_total", |s| s.cache_hits_total.into()),
    ("cache_misses_total", |s| s.cache_misses_total.into()),
    ("cache_evictions_total", |s| s.cache_evictions_total.into()),
    ("tasks_completed_total", |s| s.tasks_completed_total.into()),
    ("tasks_planned_total", |s| s.tasks_planned_total.into()),
];

impl Sample {
    /// The session's metrics now, `seconds` into the recording.
    pub fn take(metrics: &Metrics, seconds: f64) -> Self {
        Self {
            seconds,
            pool_reserved_bytes: metrics.pool_figures().0,
            resident_bytes: resident_bytes().unwrap_or(0),
            prefetch_depth_tasks: metrics.prefetch_depth.get(),
            read_bytes_total: metrics.bytes_read.get(),
            written_bytes_total: metrics.bytes_written.get(),
            spill_written_bytes_total: metrics.bytes_spilled.get(),
            spill_read_bytes_total: metrics.bytes_unspilled.get(),
            cache_hits_total: metrics.cache_hits.get(),
            cache_misses_total: metrics.cache_misses.get(),
            cache_evictions_total: metrics.cache_evictions.get(),
            tasks_completed_total: metrics.tasks_done.get(),
            tasks_planned_total: metrics.tasks_total.get(),
        }
    }

    /// `self` (earlier) and `later` as one sample: the later counters and
    /// time, the larger gauges (so no peak is lost).
    fn merge(&self, later: &Self) -> Self {
        Self {
            pool_reserved_bytes: self.pool_reserved_bytes.max(later.pool_reserved_bytes),
            resident_bytes: self.resident_bytes.max(later.resident_bytes),
            prefetch_depth_tasks: self.prefetch_depth_tasks.max(later.prefetch_depth_tasks),
            ..*later
        }
    }
}

/// Samples of a run at a fixed interval, at most `capacity` of them: when
/// full, neighbouring samples are merged in pairs and the interval doubles,
/// so an hour-long run and a one-second run give timelines of like size.
///
/// ```
/// use std::time::Duration;
/// use tenrso_ooc::telemetry::{Sample, Timeline};
/// let mut t = Timeline::new(Duration::from_millis(100), 4);
/// for i in 0..9 {
///     t.push(Sample { seconds: i as f64 * 0.1, pool_reserved_bytes: i, ..Sample::default() });
/// }
/// // Full before the 5th, 7th and 9th samples: merged three times.
/// assert_eq!(t.samples().len(), 3);
/// assert_eq!(t.interval(), Duration::from_millis(800));
/// assert_eq!(t.samples().last().unwrap().pool_reserved_bytes, 8);
/// ```
#[derive(Debug, Clone)]
pub struct Timeline {
    interval: Duration,
    capacity: usize,
    samples: Vec<Sample>,
}

impl Timeline {
    /// An empty timeline sampled every `interval`, holding at most
    /// `capacity` samples (at least 2).
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            interval,
            capacity: capacity.max(2),
            samples: Vec::new(),
        }
    }

    /// Appends `sample`, merging pairs first when full.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() >= self.capacity {
            self.samples = self
                .samples
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => a.merge(b),
                    [a] => *a,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            self.interval = self.interval.saturating_mul(2);
        }
        self.samples.push(sample);
    }

    /// The time between samples now.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// `{"interval_seconds", "samples", "columns": {"seconds": […],
    /// "pool_reserved_bytes": […], …}}`: one array per metric (column-wise,
    /// so the report stays small).
    pub fn to_json(&self) -> Value {
        let mut columns = Map::new();
        for (name, value) in COLUMNS {
            let values: Vec<Value> = self.samples.iter().map(value).collect();
            columns.insert(name.to_string(), Value::from(values));
        }
        serde_json::json!({
            "interval_seconds": self.interval.as_secs_f64(),
            "samples": self.samples.len(),
            "columns": columns,
        })
    }
}

/// Samples a session's [`Metrics`] into a [`Timeline`] on a background
/// thread until [`finish`](Self::finish)ed (or dropped).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tenrso_ooc::telemetry::{Metrics, TimelineRecorder};
/// let metrics = Arc::new(Metrics::default());
/// let recorder = TimelineRecorder::start(metrics.clone(), Duration::from_millis(10))?;
/// metrics.tasks_done.add(5);
/// std::thread::sleep(Duration::from_millis(30));
/// let timeline = recorder.finish();
/// // A first sample at the start, one at the end, and some between.
/// assert!(timeline.samples().len() >= 3);
/// assert_eq!(timeline.samples().last().unwrap().tasks_completed_total, 5);
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
pub struct TimelineRecorder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    timeline: Mutex<Timeline>,
    stop: Mutex<bool>,
    wake: Condvar,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl Shared {
    fn sample(&self) {
        let sample = Sample::take(&self.metrics, self.started.elapsed().as_secs_f64());
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sample);
    }
}

/// Samples kept before merging: ~100 s at 100 ms; an hour at 6.4 s.
pub const TIMELINE_CAPACITY: usize = 1024;

impl TimelineRecorder {
    /// Starts sampling `metrics` every `interval` (100 ms suits runs of
    /// seconds to hours), keeping at most [`TIMELINE_CAPACITY`] samples.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the thread cannot be started.
    pub fn start(metrics: Arc<Metrics>, interval: Duration) -> Result<Self> {
        let shared = Arc::new(Shared {
            timeline: Mutex::new(Timeline::new(interval, TIMELINE_CAPACITY)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            metrics,
            started: Instant::now(),
        });
        shared.sample();
        let sampler = shared.clone();
        let thread = std::thread::Builder::new()
            .name("timeline".into())
            .spawn(move || {
                let mut stop = sampler.stop.lock().unwrap_or_else(|p| p.into_inner());
                // Finished before this thread first looked: no wait.
                while !*stop {
                    let interval = sampler
                        .timeline
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .interval();
                    stop = sampler
                        .wake
                        .wait_timeout(stop, interval)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    if *stop {
                        break;
                    }
                    sampler.sample();
                }
            })
            .map_err(|e| Error::invalid(format!("cannot start the timeline thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The timeline so far (the recording goes on).
    pub fn snapshot(&self) -> Timeline {
        self.shared
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops sampling, takes a last sample and returns the timeline.
    pub fn finish(mut self) -> Timeline {
        self.stop();
        self.shared.sample();
        self.snapshot()
    }

    fn stop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TimelineRecorder {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_stays_within_capacity_and_keeps_peaks() {
        let mut t = Timeline::new(Duration::from_millis(100), TIMELINE_CAPACITY);
        // Ten hours sampled as the recorder does (at the current interval),
        // with one spike of the pool in the middle.
        let (mut now, mut pushed, mut spiked) = (0.0, 0u64, false);
        while now < 36_000.0 {
            let spike = !spiked && now >= 18_000.0;
            spiked |= spike;
            t.push(Sample {
                seconds: now,
                pool_reserved_bytes: if spike { 1 << 30 } else { pushed % 1000 },
                read_bytes_total: pushed * 4096,
                ..Sample::default()
            });
            pushed += 1;
            now += t.interval().as_secs_f64();
        }
        assert!(t.samples().len() <= TIMELINE_CAPACITY);
        assert!(t.samples().len() > TIMELINE_CAPACITY / 4);
        // 36,000 s in at most 1024 samples: 51.2 s apart.
        assert_eq!(t.interval(), Duration::from_millis(51_200));
        let max = t.samples().iter().map(|s| s.pool_reserved_bytes).max();
        assert_eq!(max, Some(1 << 30), "the spike survives merging");
        let last = t.samples().last().unwrap();
        assert_eq!(last.read_bytes_total, (pushed - 1) * 4096);
        // Times still increase, counters never decrease.
        for w in t.samples().windows(2) {
            assert!(w[0].seconds < w[1].seconds);
            assert!(w[0].read_bytes_total <= w[1].read_bytes_total);
        }
        let json = serde_json::to_string(&t.to_json()).unwrap();
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
        assert_eq!(
            t.to_json()["columns"]["seconds"].as_array().unwrap().len(),
            t.samples().len()
        );
    }

    #[test]
    fn pushed_faster_than_sampled_the_interval_saturates() {
        let mut t = Timeline::new(Duration::from_secs(1), 2);
        for _ in 0..200 {
            t.push(Sample::default());
        }
        assert!(t.samples().len() <= 2);
        assert_eq!(t.interval(), Duration::MAX);
    }

    #[test]
    fn the_recorder_stops_promptly() {
        let metrics = Arc::new(Metrics::default());
        let recorder = TimelineRecorder::start(metrics, Duration::from_secs(3600)).unwrap();
        let started = Instant::now();
        let t = recorder.finish();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(t.samples().len(), 2);
    }
}
