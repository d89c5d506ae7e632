//! [`Session`]: the live resources of a run: memory pool, spill area, metrics.

use std::sync::{Arc, OnceLock};

use crate::core::Result;
use crate::distributed::{Ranks, SingleProcess};
use crate::exec::{CancelToken, ExecOptions};
use crate::memory::{MemoryPool, SpillManager, TierRoom, effective_spill_dirs};
use crate::telemetry::Metrics;

/// One session: its options, its one [`MemoryPool`] (the hard limit every
/// large buffer is reserved from), its spill area (created on first use,
/// removed when the session ends), its [`Metrics`] and its
/// [`CancelToken`]. Creating one tunes the process's allocator unless
/// [`ExecOptions::tune_allocator`] is off, so library users get the memory
/// bound the CLI has.
///
/// ```
/// use tenrso_ooc::exec::{ExecOptions, Session};
/// let session = Session::new(ExecOptions::default().with_memory_limit(256 << 20));
/// assert_eq!(session.pool().limit(), 256 << 20);
/// ```
#[derive(Debug)]
pub struct Session {
    options: ExecOptions,
    pool: MemoryPool,
    spill: OnceLock<Arc<SpillManager>>,
    metrics: Arc<Metrics>,
    cancel: CancelToken,
    ranks: Arc<dyn Ranks>,
}

impl Session {
    /// A session with `options`.
    pub fn new(options: ExecOptions) -> Self {
        if options.tune_allocator {
            crate::memory::tune_allocator();
        }
        let pool = MemoryPool::new(options.memory_limit);
        let metrics = Arc::new(Metrics::default());
        metrics.watch_pool(&pool);
        Self {
            options,
            pool,
            spill: OnceLock::new(),
            metrics,
            cancel: CancelToken::new(),
            ranks: Arc::new(SingleProcess),
        }
    }

    /// The same session run by `ranks` together, SPMD (see
    /// [`crate::distributed`]): each rank holds its own session, with its
    /// own memory limit, and runs the tasks it owns. The collectives of
    /// several ranks are counted in the session's metrics (bytes sent and
    /// received, time waiting).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tenrso_ooc::distributed::SingleProcess;
    /// use tenrso_ooc::exec::Session;
    /// let session = Session::default().with_ranks(Arc::new(SingleProcess));
    /// assert_eq!(session.ranks().size(), 1);
    /// ```
    pub fn with_ranks(mut self, ranks: Arc<dyn Ranks>) -> Self {
        // A job's collectives are counted in this session's metrics.
        self.ranks = if ranks.is_distributed() {
            Arc::new(crate::distributed::MeteredRanks::new(
                ranks,
                self.metrics.clone(),
            ))
        } else {
            ranks
        };
        self
    }

    /// The ranks, shared (for what outlives a call: a node-local array).
    pub(crate) fn shared_ranks(&self) -> Arc<dyn Ranks> {
        self.ranks.clone()
    }

    /// The ranks running this session's operations (one process unless
    /// [`with_ranks`](Self::with_ranks) says otherwise).
    pub fn ranks(&self) -> &dyn Ranks {
        &*self.ranks
    }

    /// The token that cancels this session's runs: clone it and call
    /// [`CancelToken::cancel`] from any thread while an operation runs.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The options.
    pub fn options(&self) -> &ExecOptions {
        &self.options
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.options.threads.max(1)
    }

    /// The memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.options.memory_limit
    }

    /// The memory pool.
    pub fn pool(&self) -> &MemoryPool {
        &self.pool
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The spill area, created on first use.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when a spill directory cannot be created.
    pub fn spill(&self) -> Result<Arc<SpillManager>> {
        if let Some(s) = self.spill.get() {
            return Ok(s.clone());
        }
        let made = Arc::new(
            SpillManager::new(&self.options.spill_dirs, self.options.spill_codec)?
                .with_migration(self.options.spill_migration),
        );
        let spill = self.spill.get_or_init(|| made).clone();
        let weak: std::sync::Weak<SpillManager> = Arc::downgrade(&spill);
        self.metrics.watch_spill(weak);
        Ok(spill)
    }

    /// What each tier of the spill area could take now, in tier order —
    /// without making the spill area when it does not exist yet (plans ask
    /// this before any I/O).
    pub fn tier_rooms(&self) -> Vec<TierRoom> {
        match self.spill.get() {
            Some(spill) => spill.rooms(),
            None => effective_spill_dirs(&self.options.spill_dirs)
                .iter()
                .map(TierRoom::of_spec)
                .collect(),
        }
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new(ExecOptions::default())
    }
}
