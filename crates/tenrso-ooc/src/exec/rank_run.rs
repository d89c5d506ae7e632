//! [`RankRun`]: what one rank did of a distributed run, and how every
//! rank's figures become the run's.

use crate::distributed::{Ranks, all_gather_u64s};
use crate::exec::RunStats;

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
}

impl RankRun {
    fn to_u64s(self) -> [u64; 7] {
        [
            self.rank as u64,
            self.seconds.to_bits(),
            self.tasks_run,
            self.bytes_read,
            self.bytes_written,
            self.bytes_spilled,
            self.pool_peak,
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
        self.ranks = all;
        self
    }
}
