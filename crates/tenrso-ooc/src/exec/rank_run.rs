//! [`RankRun`]: what one rank did of a distributed run, and how every
//! rank's figures become the run's.

use crate::distributed::{Ranks, all_gather_u64s};
use crate::exec::{RunStats, Session};

/// What one rank did of a distributed run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankRun {
    /// The rank.
    pub rank: usize,
    /// Its wall-clock seconds.
    pub seconds: f64,
    /// Tasks it ran.
    pub tasks_run: u64,
    /// Bytes it read from stored arrays.
    pub bytes_read: u64,
    /// Bytes it wrote to stored arrays.
    pub bytes_written: u64,
    /// Bytes it spilled.
    pub bytes_spilled: u64,
    /// The most memory its pool reserved at once.
    pub pool_peak: u64,
    /// Spill files it moved down a tier.
    pub spill_demotions: u64,
    /// Spill files it moved up a tier.
    pub spill_promotions: u64,
    /// Seconds its workers spent in tasks.
    pub task_seconds: f64,
    /// Of which waiting for input chunks.
    pub read_wait_seconds: f64,
    /// Of which writing output chunks.
    pub write_seconds: f64,
}

impl RankRun {
    fn to_u64s(self) -> [u64; 12] {
        [
            self.rank as u64,
            self.seconds.to_bits(),
            self.tasks_run,
            self.bytes_read,
            self.bytes_written,
            self.bytes_spilled,
            self.pool_peak,
            self.spill_demotions,
            self.spill_promotions,
            self.task_seconds.to_bits(),
            self.read_wait_seconds.to_bits(),
            self.write_seconds.to_bits(),
        ]
    }

    fn from_u64s(v: &[u64]) -> Self {
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Self {
            rank: at(0) as usize,
            seconds: f64::from_bits(at(1)),
            tasks_run: at(2),
            bytes_read: at(3),
            bytes_written: at(4),
            bytes_spilled: at(5),
            pool_peak: at(6),
            spill_demotions: at(7),
            spill_promotions: at(8),
            task_seconds: f64::from_bits(at(9)),
            read_wait_seconds: f64::from_bits(at(10)),
            write_seconds: f64::from_bits(at(11)),
        }
    }

    /// The figures as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rank": self.rank,
            "seconds": self.seconds,
            "tasks_run": self.tasks_run,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_spilled": self.bytes_spilled,
            "pool_peak_bytes": self.pool_peak,
            "spill_demotions": self.spill_demotions,
            "spill_promotions": self.spill_promotions,
            "task_seconds": self.task_seconds,
            "read_wait_seconds": self.read_wait_seconds,
            "write_seconds": self.write_seconds,
        })
    }
}

impl RunStats {
    /// Gathers every rank's figures (a collective: every rank calls it):
    /// the counters become totals over the ranks, the time and pool peak
    /// maxima, and [`ranks`](Self::ranks) holds each rank's own. Nothing
    /// changes in one process.
    pub fn gather(mut self, ranks: &dyn Ranks) -> Self {
        if !ranks.is_distributed() {
            return self;
        }
        let mine = RankRun {
            rank: ranks.rank(),
            seconds: self.seconds,
            tasks_run: self.tasks_run,
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
            bytes_spilled: self.bytes_spilled,
            pool_peak: self.pool_peak,
            spill_demotions: self.spill_demotions,
            spill_promotions: self.spill_promotions,
            task_seconds: self.task_seconds,
            read_wait_seconds: self.read_wait_seconds,
            write_seconds: self.write_seconds,
        };
        let all: Vec<RankRun> = all_gather_u64s(ranks, &mine.to_u64s())
            .iter()
            .map(|v| RankRun::from_u64s(v))
            .collect();
        self.seconds = all.iter().map(|r| r.seconds).fold(0.0, f64::max);
        self.pool_peak = all.iter().map(|r| r.pool_peak).max().unwrap_or(0);
        self.tasks_run = all.iter().map(|r| r.tasks_run).sum();
        self.bytes_read = all.iter().map(|r| r.bytes_read).sum();
        self.bytes_written = all.iter().map(|r| r.bytes_written).sum();
        self.bytes_spilled = all.iter().map(|r| r.bytes_spilled).sum();
        self.spill_demotions = all.iter().map(|r| r.spill_demotions).sum();
        self.spill_promotions = all.iter().map(|r| r.spill_promotions).sum();
        self.task_seconds = all.iter().map(|r| r.task_seconds).sum();
        self.read_wait_seconds = all.iter().map(|r| r.read_wait_seconds).sum();
        self.write_seconds = all.iter().map(|r| r.write_seconds).sum();
        self.ranks = all;
        self
    }
}

/// What one rank of a job did over its session (every operation so far):
/// the bytes it moved and where its time went — the rows of a job's merged
/// run report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankFigures {
    /// The rank.
    pub rank: usize,
    /// Bytes read from stored arrays and files.
    pub bytes_read: u64,
    /// Bytes written to stored arrays and files.
    pub bytes_written: u64,
    /// Bytes written to spill files.
    pub bytes_spilled: u64,
    /// Bytes sent to the other ranks.
    pub bytes_sent: u64,
    /// Bytes received from the other ranks.
    pub bytes_received: u64,
    /// Bytes of node-local chunks fetched from the ranks holding them
    /// (part of [`bytes_received`](Self::bytes_received)).
    pub bytes_fetched: u64,
    /// Seconds spent running tasks, summed over its threads (a task's wait
    /// for an input not yet loaded included).
    pub task_seconds: f64,
    /// Seconds spent reading chunks (decoding and checksums included),
    /// summed over the threads that read them.
    pub read_seconds: f64,
    /// Seconds spent in collectives with the other ranks, waiting for them
    /// included.
    pub communication_seconds: f64,
    /// The process's peak resident memory (VmHWM), 0 where unknown.
    pub peak_rss: u64,
}

impl RankFigures {
    /// This rank's figures, from its session's metrics.
    pub fn of(session: &Session) -> Self {
        let m = session.metrics();
        Self {
            rank: session.ranks().rank(),
            bytes_read: m.bytes_read.get(),
            bytes_written: m.bytes_written.get(),
            bytes_spilled: m.bytes_spilled.get(),
            bytes_sent: m.bytes_sent.get(),
            bytes_received: m.bytes_received.get(),
            bytes_fetched: m.bytes_fetched.get(),
            task_seconds: m.task_seconds.sum_seconds(),
            read_seconds: m.chunk_read_seconds.sum_seconds(),
            communication_seconds: m.communication_seconds.sum_seconds(),
            peak_rss: crate::telemetry::peak_resident_bytes().unwrap_or(0),
        }
    }

    /// Every rank's figures, by rank, on every rank (a collective: every
    /// rank calls it); this rank's alone in one process. The figures are
    /// taken before the exchange, so its own bytes are not counted in it.
    pub fn gather(session: &Session) -> Vec<Self> {
        let mine = Self::of(session);
        if !session.ranks().is_distributed() {
            return vec![mine];
        }
        all_gather_u64s(session.ranks(), &mine.to_u64s())
            .iter()
            .map(|v| Self::from_u64s(v))
            .collect()
    }

    /// The sums over `ranks` (the peak memory: the largest).
    pub fn total(ranks: &[Self]) -> Self {
        ranks.iter().fold(Self::default(), |t, r| Self {
            rank: 0,
            bytes_read: t.bytes_read + r.bytes_read,
            bytes_written: t.bytes_written + r.bytes_written,
            bytes_spilled: t.bytes_spilled + r.bytes_spilled,
            bytes_sent: t.bytes_sent + r.bytes_sent,
            bytes_received: t.bytes_received + r.bytes_received,
            bytes_fetched: t.bytes_fetched + r.bytes_fetched,
            task_seconds: t.task_seconds + r.task_seconds,
            read_seconds: t.read_seconds + r.read_seconds,
            communication_seconds: t.communication_seconds + r.communication_seconds,
            peak_rss: t.peak_rss.max(r.peak_rss),
        })
    }

    fn to_u64s(self) -> [u64; 11] {
        [
            self.rank as u64,
            self.bytes_read,
            self.bytes_written,
            self.bytes_spilled,
            self.bytes_sent,
            self.bytes_received,
            self.task_seconds.to_bits(),
            self.read_seconds.to_bits(),
            self.communication_seconds.to_bits(),
            self.peak_rss,
            self.bytes_fetched,
        ]
    }

    fn from_u64s(v: &[u64]) -> Self {
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Self {
            rank: at(0) as usize,
            bytes_read: at(1),
            bytes_written: at(2),
            bytes_spilled: at(3),
            bytes_sent: at(4),
            bytes_received: at(5),
            task_seconds: f64::from_bits(at(6)),
            read_seconds: f64::from_bits(at(7)),
            communication_seconds: f64::from_bits(at(8)),
            peak_rss: at(9),
            bytes_fetched: at(10),
        }
    }

    /// The figures as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rank": self.rank,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_spilled": self.bytes_spilled,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_fetched": self.bytes_fetched,
            "task_seconds": self.task_seconds,
            "read_seconds": self.read_seconds,
            "communication_seconds": self.communication_seconds,
            "peak_rss_bytes": self.peak_rss,
        })
    }
}
