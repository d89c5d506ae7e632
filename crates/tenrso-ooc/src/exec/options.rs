//! [`ExecOptions`]: how a session may use the machine.

use crate::core::{ByteSize, Error, Result};
use crate::memory::{PolicyKind, SpillCodec, SpillDirSpec, SpillMigration};
use crate::store::Durability;

/// How a session may use the machine: worker threads, the memory limit, where
/// and how to spill, and the cache's eviction policy.
///
/// ```
/// use tenrso_ooc::exec::ExecOptions;
/// let opts = ExecOptions::default().with_threads(2).with_memory_limit(64 << 20);
/// assert!(opts.check_fits(24 << 20, "one chunk").is_ok());
/// let err = opts.check_fits(100 << 20, "one chunk").unwrap_err();
/// assert!(err.to_string().contains("64.00 MiB is too small"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Memory limit in bytes.
    pub memory_limit: u64,
    /// Spill directories, tried in order (none: the system temporary directory).
    pub spill_dirs: Vec<SpillDirSpec>,
    /// Compression of spill files.
    pub spill_codec: SpillCodec,
    /// Whether spill files move between tiers by the schedule (down when
    /// the first fills, up ahead of use); off by default (see
    /// [`SpillMigration`]).
    pub spill_migration: SpillMigration,
    /// Eviction policy of the chunk cache.
    pub cache_policy: PolicyKind,
    /// Record the sequence of chunk requests of each run (see
    /// [`RunStats::trace`](crate::exec::RunStats::trace)), to compare
    /// eviction policies on real access patterns.
    pub record_trace: bool,
    /// Tune the process's allocator when a session starts
    /// ([`tune_allocator`](crate::memory::tune_allocator): one arena, a
    /// lower mmap threshold, trimming), which the memory bound relies on;
    /// on by default. Process-global and idempotent.
    pub tune_allocator: bool,
    /// How the chunks of stored outputs reach the disk (see
    /// [`Durability`]; batched by default). Intermediates in the spill
    /// area are never synced.
    pub durability: Durability,
    /// Reader threads loading chunks ahead of the workers, in plan order
    /// (at least 1; 4 by default). They decode and check what they read,
    /// and wait in I/O, so more than the cores can pay on a cold disk.
    pub readers: usize,
}
/// Reader threads of a session unless told otherwise.
pub const DEFAULT_READERS: usize = 4;

impl Default for ExecOptions {
    /// All cores, a quarter of physical memory, spill to the temporary
    /// directory with lz4, Belady MIN eviction.
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_limit: default_memory_limit(),
            spill_dirs: Vec::new(),
            spill_codec: SpillCodec::default(),
            spill_migration: SpillMigration::default(),
            cache_policy: PolicyKind::default(),
            record_trace: false,
            tune_allocator: true,
            durability: Durability::default(),
            readers: DEFAULT_READERS,
        }
    }
}

impl ExecOptions {
    /// Sets whether sessions tune the process's allocator (see
    /// [`ExecOptions::tune_allocator`]).
    pub fn with_tune_allocator(mut self, tune: bool) -> Self {
        self.tune_allocator = tune;
        self
    }

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

    /// Sets the spill directories.
    pub fn with_spill_dirs(mut self, dirs: Vec<SpillDirSpec>) -> Self {
        self.spill_dirs = dirs;
        self
    }

    /// Puts this process's scratch — its intermediates (einsum steps,
    /// operands rechunked first, Gram matrices) and, first, its spill — on
    /// `dir`, a node-local disk under several ranks: ahead of the spill
    /// directories set so far.
    ///
    /// ```
    /// use tenrso_ooc::exec::ExecOptions;
    /// let opts = ExecOptions::default().with_local_dir("/scratch/local");
    /// assert_eq!(opts.spill_dirs[0].path, std::path::Path::new("/scratch/local"));
    /// ```
    pub fn with_local_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spill_dirs.insert(
            0,
            SpillDirSpec {
                path: dir.into(),
                cap: None,
            },
        );
        self
    }

    /// Sets whether spill files move between tiers (see
    /// [`ExecOptions::spill_migration`]).
    pub fn with_spill_migration(mut self, migration: SpillMigration) -> Self {
        self.spill_migration = migration;
        self
    }

    /// Sets the reader threads (see [`ExecOptions::readers`]; 0 means the
    /// default).
    pub fn with_readers(mut self, readers: usize) -> Self {
        self.readers = if readers == 0 {
            DEFAULT_READERS
        } else {
            readers
        };
        self
    }

    /// Sets how output chunks reach the disk (see [`ExecOptions::durability`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the spill codec.
    pub fn with_spill_codec(mut self, codec: SpillCodec) -> Self {
        self.spill_codec = codec;
        self
    }

    /// Sets the cache's eviction policy.
    pub fn with_cache_policy(mut self, policy: PolicyKind) -> Self {
        self.cache_policy = policy;
        self
    }
    /// Records each run's chunk requests.
    pub fn with_trace(mut self, on: bool) -> Self {
        self.record_trace = on;
        self
    }

    /// The size of chunks to create when none is given: about 8 MiB, and at
    /// most a sixteenth of the memory limit so that several chunks (each
    /// needing a few times its size while encoded) fit in flight.
    pub fn default_chunk_bytes(&self) -> u64 {
        (8u64 << 20).min(self.memory_limit / 16)
    }

    /// Checks that one task needing `bytes` fits under the limit.
    ///
    /// # Errors
    /// [`Error::MemoryLimit`] naming `what`, the need and the limit.
    pub fn check_fits(&self, bytes: u64, what: &str) -> Result<()> {
        if bytes > self.memory_limit {
            return Err(Error::MemoryLimit {
                remedy: crate::core::Remedy::SmallerChunks,
                limit: self.memory_limit,
                required: bytes,
                what: what.to_string(),
            });
        }
        Ok(())
    }
}

/// A quarter of physical memory (1 GiB when it cannot be read).
pub fn default_memory_limit() -> u64 {
    crate::core::physical_memory().map_or(1 << 30, |m| m / 4)
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
