//! [`ExecOptions`]: thread count and memory limit of a run.

use crate::core::{ByteSize, Error, Result};

/// How a run may use the machine: worker threads and a memory limit.
///
/// The limit bounds the bytes of every large buffer in flight (chunk blocks,
/// codec buffers); work that cannot fit even one task under it is refused
/// before it starts.
///
/// ```
/// use tenrso_ooc::exec::ExecOptions;
/// let opts = ExecOptions::default().with_threads(2).with_memory_limit(64 << 20);
/// // Tasks of 24 MiB: two fit under 64 MiB.
/// assert_eq!(opts.concurrency(24 << 20, "a chunk").unwrap(), 2);
/// assert!(opts.concurrency(100 << 20, "a chunk").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Memory limit in bytes.
    pub memory_limit: u64,
}

impl Default for ExecOptions {
    /// All cores, and a quarter of physical memory.
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_limit: default_memory_limit(),
        }
    }
}

impl ExecOptions {
    /// Sets the number of worker threads (0 means all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = if threads == 0 {
            Self::default().threads
        } else {
            threads
        };
        self
    }

    /// Sets the memory limit in bytes.
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The size of chunks to create when none is given: about 8 MiB, and at
    /// most a sixteenth of the memory limit so that several chunks (each
    /// needing a few times its size while encoded) fit in flight.
    pub fn default_chunk_bytes(&self) -> u64 {
        (8u64 << 20).min(self.memory_limit / 16)
    }

    /// How many tasks needing `per_task` bytes each may run at once.
    ///
    /// # Errors
    /// [`Error::MemoryLimit`] when a single task does not fit under the limit.
    pub fn concurrency(&self, per_task: u64, what: &str) -> Result<usize> {
        if per_task > self.memory_limit {
            return Err(Error::MemoryLimit {
                limit: self.memory_limit,
                required: per_task,
                what: what.to_string(),
            });
        }
        let fit = self.memory_limit.checked_div(per_task).unwrap_or(u64::MAX);
        Ok((self.threads.max(1) as u64).min(fit).max(1) as usize)
    }
}

/// A quarter of physical memory (1 GiB when it cannot be read).
pub fn default_memory_limit() -> u64 {
    physical_memory().map_or(1 << 30, |m| m / 4)
}

/// Total physical memory in bytes, from `/proc/meminfo`.
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl std::fmt::Display for ExecOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} threads, memory limit {}",
            self.threads,
            ByteSize(self.memory_limit)
        )
    }
}
