//! [`explain`]: what a [`ChunkGraph`] will cost, known before it runs.

use std::fmt;

use serde_json::{Value, json};

use crate::core::{ByteSize, Error, Result};
use crate::distributed::RankShare;
use crate::memory::{ChunkKey, ChunkMap, EvictionPolicy, PolicyKind, TierRoom};
use crate::plan::{ArrayRole, ChunkGraph};
use crate::store::Durability;

/// The cost of a plan, computed before any work: memory needs against the
/// limit, and the bytes it will read, write and spill.
///
/// Bytes read and spilled come from replaying the plan's known chunk
/// accesses through a model of the cache (the session's eviction policy,
/// with the memory the workers leave free), so they account for chunks read
/// more than once and intermediates that do not fit.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanReport {
    /// What the plan computes.
    pub operation: String,
    /// Barrier-separated stages.
    pub stages: u32,
    /// Tasks.
    pub tasks: u64,
    /// Tasks run at once (the threads, fewer when the limit holds fewer
    /// tasks at their largest need).
    pub threads: usize,
    /// The memory limit.
    pub memory_limit: u64,
    /// The least memory the plan can run in: the plan itself, plus the
    /// largest task's scratch, pinned inputs and one chunk being loaded.
    pub min_working_set: u64,
    /// The most memory the plan will reserve.
    pub planned_peak: u64,
    /// Bytes read from stored arrays (uncompressed).
    pub bytes_read: u64,
    /// Bytes written to stored arrays (uncompressed).
    pub bytes_written: u64,
    /// Bytes of intermediates written to spill files (uncompressed).
    pub bytes_spilled: u64,
    /// Input chunks never written, counted as the fill value without being
    /// read.
    pub absent_chunks: u64,
    /// The eviction policy modelled.
    pub cache_policy: PolicyKind,
    /// Each rank's share when several ranks run the plan (each under its
    /// own memory limit); empty in one process.
    pub ranks: Vec<RankShare>,
    /// The spill area's tiers when the plan spills (what each holds, its
    /// cap and its file system's room when planned); empty otherwise.
    pub spill_tiers: Vec<TierRoom>,
    /// Reader threads loading inputs ahead of the workers (0 when each task
    /// reads its own, or when not known: set by the session running it).
    pub readers: usize,
    /// How the stored outputs' chunks reach the disk; `None` without
    /// stored outputs, or when not known.
    pub durability: Option<Durability>,
}

impl PlanReport {
    /// True when the plan can run under the limit.
    pub fn fits(&self) -> bool {
        self.min_working_set <= self.memory_limit
    }

    /// The bytes the plan spills into each of [`PlanReport::spill_tiers`]
    /// as they are filled in order (before any migration moves them).
    pub fn spill_by_tier(&self) -> Vec<u64> {
        let mut left = self.bytes_spilled;
        self.spill_tiers
            .iter()
            .map(|t| {
                let takes = left.min(t.room());
                left -= takes;
                takes
            })
            .collect()
    }

    /// Refuses a plan that cannot run under the limit.
    ///
    /// # Errors
    /// [`Error::MemoryLimit`] with the numbers.
    pub fn check(&self) -> Result<()> {
        if self.fits() {
            Ok(())
        } else {
            Err(Error::MemoryLimit {
                remedy: crate::core::Remedy::SmallerChunks,
                limit: self.memory_limit,
                required: self.min_working_set,
                what: format!("the smallest task of `{}`", self.operation),
            })
        }
    }

    /// Who reads and how outputs are written, when known.
    fn io_line(&self) -> Option<String> {
        let reads = (self.readers > 0).then(|| {
            format!(
                "{} reader(s) load inputs ahead of the workers (up to {} tasks ahead)",
                self.readers,
                prefetch_window(self.threads)
            )
        });
        let writes = self.durability.map(|d| match d {
            Durability::Chunk => "output chunks synced one by one",
            Durability::Batch => "output chunks synced in batches off the workers",
            Durability::None => "output chunks never synced",
        });
        match (reads, writes) {
            (Some(r), Some(w)) => Some(format!("{r}; {w}")),
            (r, w) => r.or(w.map(str::to_string)),
        }
    }

    /// The report as a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "operation": self.operation,
            "stages": self.stages,
            "tasks": self.tasks,
            "threads": self.threads,
            "memory_limit_bytes": self.memory_limit,
            "min_working_set_bytes": self.min_working_set,
            "planned_peak_bytes": self.planned_peak,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_spilled": self.bytes_spilled,
            "absent_chunks": self.absent_chunks,
            "cache_policy": self.cache_policy.to_string(),
            "fits": self.fits(),
            "ranks": self.ranks.iter().map(|r| json!({
                "rank": r.rank,
                "tasks": r.tasks,
                "bytes_read": r.bytes_read,
            })).collect::<Vec<_>>(),
            "readers": self.readers,
            "durability": self.durability.map(|d| d.to_string()),
            "spill_tiers": self.spill_tiers.iter().zip(self.spill_by_tier()).map(|(t, takes)| json!({
                "dir": t.dir.display().to_string(),
                "bytes": t.used,
                "cap": t.cap,
                "disk_free_bytes": t.disk_free,
                "planned_spill_bytes": takes,
            })).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for PlanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan: {}", self.operation)?;
        writeln!(
            f,
            "  tasks            {} in {} stage(s), {} threads",
            self.tasks, self.stages, self.threads
        )?;
        writeln!(
            f,
            "  memory           min working set {}, planned peak {}, limit {}{}",
            ByteSize(self.min_working_set),
            ByteSize(self.planned_peak),
            ByteSize(self.memory_limit),
            if self.fits() { "" } else { "  (DOES NOT FIT)" }
        )?;
        if self.absent_chunks > 0 {
            writeln!(
                f,
                "  read             {} ({} chunks absent: the fill value, not read)",
                ByteSize(self.bytes_read),
                self.absent_chunks
            )?;
        } else {
            writeln!(f, "  read             {}", ByteSize(self.bytes_read))?;
        }
        writeln!(f, "  write            {}", ByteSize(self.bytes_written))?;
        if let Some(io) = self.io_line() {
            writeln!(f, "  I/O              {io}")?;
        }
        writeln!(
            f,
            "  spill            {} (cache policy {})",
            ByteSize(self.bytes_spilled),
            self.cache_policy
        )?;
        for (k, (tier, takes)) in self
            .spill_tiers
            .iter()
            .zip(self.spill_by_tier())
            .enumerate()
        {
            writeln!(
                f,
                "  spill tier {k}     {}: about {} of the spill",
                tier.describe(),
                ByteSize(takes)
            )?;
        }
        if self.spill_tiers.len() > 1 {
            writeln!(
                f,
                "                   (chunks needed later move down a tier when one fills, and up again ahead of use)"
            )?;
        }
        if !self.ranks.is_empty() {
            writeln!(
                f,
                "  ranks            {} ranks, each under its own limit of {}",
                self.ranks.len(),
                ByteSize(self.memory_limit)
            )?;
            for r in &self.ranks {
                writeln!(
                    f,
                    "    rank {:<3}       {} tasks, reads {}",
                    r.rank,
                    r.tasks,
                    ByteSize(r.bytes_read)
                )?;
            }
        }
        Ok(())
    }
}

/// Computes the [`PlanReport`] of `graph` run by `threads` workers under a
/// `limit` of bytes, with a cache evicting by `policy`.
pub fn explain(graph: &ChunkGraph, threads: usize, limit: u64, policy: PolicyKind) -> PlanReport {
    let threads = threads.max(1);
    let footprint = graph.footprint();
    // The largest task's need, and what workers hold outside the cache:
    // scratch and one load each.
    let (largest, per_worker) = graph.largest_need();
    let min_working_set = footprint + largest;
    let workers = graph.concurrency(threads, limit) as u64;
    let ahead = if graph.prefetch {
        prefetch_window(threads)
    } else {
        0
    };
    if let Some(stream) = &graph.stream {
        // Every chunk is read once, by one task: the cache holds the
        // running tasks' inputs and the prefetcher's, nothing else.
        let mut totals = stream.totals();
        let mut tasks = stream.len();
        if !graph.written.is_empty() {
            // A resumed run: count what the tasks left to run read and
            // write (one pass over the tasks, holding one at a time).
            let (mut left, mut read, mut written) = (0, 0, 0);
            for index in 0..stream.len() {
                let task = stream.task(index);
                if graph.already_written(&task) {
                    continue;
                }
                left += 1;
                read += task
                    .reads
                    .iter()
                    .chain(&task.streams)
                    .map(|k| graph.chunk_bytes(*k))
                    .sum::<u64>();
                written += task.write.map_or(0, |k| graph.chunk_bytes(k));
            }
            (tasks, totals.bytes_read, totals.bytes_written) = (left, read, written);
        }
        let pinned = if !stream.is_empty() {
            stream.largest().pinned_bytes
        } else {
            0
        };
        let span = (workers + ahead as u64).min(stream.len());
        return PlanReport {
            operation: graph.operation.clone(),
            stages: graph.stages(),
            tasks,
            threads: workers as usize,
            memory_limit: limit,
            min_working_set,
            planned_peak: limit.min(footprint + workers * per_worker + span * pinned),
            bytes_read: totals.bytes_read,
            bytes_written: totals.bytes_written,
            bytes_spilled: 0,
            absent_chunks: totals.absent_chunks,
            cache_policy: policy,
            ranks: Vec::new(),
            spill_tiers: Vec::new(),
            readers: 0,
            durability: None,
        };
    }
    let cache_capacity = limit.saturating_sub(footprint + workers * per_worker);
    let sim = simulate_cache(graph, cache_capacity, policy);
    let streamed: u64 = graph
        .tasks
        .iter()
        .flat_map(|t| &t.streams)
        .map(|k| graph.chunk_bytes(*k))
        .sum();
    // The cache holds what the plan reuses, and what the prefetcher loads
    // ahead of the running tasks, whichever is more.
    let cached = sim
        .peak_cached
        .max(read_ahead_bytes(graph, workers as usize + ahead));
    let bytes_written = graph
        .tasks
        .iter()
        .filter_map(|t| t.write)
        .filter(|k| matches!(graph.arrays[k.array as usize].role, ArrayRole::Output(_)))
        .map(|k| graph.chunk_bytes(k))
        .sum();
    PlanReport {
        operation: graph.operation.clone(),
        stages: graph.stages(),
        tasks: graph.tasks.len() as u64,
        threads: workers as usize,
        memory_limit: limit,
        min_working_set,
        planned_peak: limit.min(footprint + workers * per_worker + cached),
        bytes_read: sim.bytes_read + streamed,
        bytes_written,
        bytes_spilled: sim.bytes_spilled,
        absent_chunks: 0,
        cache_policy: policy,
        ranks: Vec::new(),
        spill_tiers: Vec::new(),
        readers: 0,
        durability: None,
    }
}

/// How many tasks beyond the running ones the executor's prefetcher loads
/// the inputs of, with `threads` workers (as far as free memory allows).
pub fn prefetch_window(threads: usize) -> usize {
    2 * threads.max(1) + 2
}

/// The most bytes of distinct chunks read by any `span` consecutive tasks:
/// what the running tasks and the prefetcher hold in the cache at once.
fn read_ahead_bytes(graph: &ChunkGraph, span: usize) -> u64 {
    let mut held: ChunkMap<u32> = ChunkMap::default();
    let (mut bytes, mut most) = (0u64, 0u64);
    for (t, task) in graph.tasks.iter().enumerate() {
        for &key in &task.reads {
            let n = held.entry(key).or_default();
            if *n == 0 {
                bytes += graph.chunk_bytes(key);
            }
            *n += 1;
        }
        if t >= span {
            for &key in &graph.tasks[t - span].reads {
                let n = held.get_mut(&key).expect("added when its task entered");
                *n -= 1;
                if *n == 0 {
                    held.remove(&key);
                    bytes -= graph.chunk_bytes(key);
                }
            }
        }
        most = most.max(bytes);
    }
    most
}

/// What the cache model counted.
#[derive(Debug, Default)]
struct CacheModel {
    bytes_read: u64,
    bytes_spilled: u64,
    peak_cached: u64,
}

/// The cache as the model sees it: chunks with their bytes and dirtiness.
struct ModelCache {
    capacity: u64,
    used: u64,
    cached: ChunkMap<(u64, bool)>,
    policy: Box<dyn EvictionPolicy>,
    counts: CacheModel,
}

impl ModelCache {
    /// Inserts `key`, evicting (never `pinned` chunks) until it fits;
    /// evicting a dirty chunk spills it.
    fn insert(&mut self, key: ChunkKey, bytes: u64, dirty: bool, pinned: &[ChunkKey]) {
        while self.used + bytes > self.capacity {
            let candidates: Vec<ChunkKey> = self
                .cached
                .keys()
                .filter(|k| !pinned.contains(k))
                .copied()
                .collect();
            let Some(victim) = self.policy.victim(&candidates) else {
                break;
            };
            if let Some((b, true)) = self.remove(victim) {
                self.counts.bytes_spilled += b;
            }
        }
        self.cached.insert(key, (bytes, dirty));
        self.used += bytes;
        self.counts.peak_cached = self.counts.peak_cached.max(self.used);
        self.policy.on_insert(key);
    }

    fn remove(&mut self, key: ChunkKey) -> Option<(u64, bool)> {
        let removed = self.cached.remove(&key)?;
        self.used -= removed.0;
        self.policy.on_remove(key);
        Some(removed)
    }
}

/// Replays the graph's accesses through a byte-capacity model of the cache:
/// reads load missing chunks (inputs from their store, spilled temporaries
/// from spill), chunks leave after their last use, produced temporaries
/// enter dirty, and evicting a dirty chunk spills it.
fn simulate_cache(graph: &ChunkGraph, capacity: u64, policy: PolicyKind) -> CacheModel {
    let schedule = graph.schedule();
    let mut uses: ChunkMap<u64> = ChunkMap::default();
    for k in &schedule {
        *uses.entry(*k).or_default() += 1;
    }
    let mut cache = ModelCache {
        capacity,
        used: 0,
        cached: ChunkMap::default(),
        policy: policy.build(&schedule),
        counts: CacheModel::default(),
    };
    for task in &graph.tasks {
        for &key in &task.reads {
            if !cache.cached.contains_key(&key) {
                let bytes = graph.chunk_bytes(key);
                if !matches!(graph.arrays[key.array as usize].role, ArrayRole::Temporary) {
                    cache.counts.bytes_read += bytes;
                }
                // A temporary missing here was spilled; its spill was counted
                // when it was evicted. Tasks pin the chunk they are reading.
                cache.insert(key, bytes, false, &[key]);
            }
            cache.policy.on_access(key);
        }
        for &key in &task.reads {
            let left = uses.get_mut(&key).expect("every read is counted");
            *left -= 1;
            if *left == 0 {
                cache.remove(key);
            }
        }
        if let Some(key) = task.write
            && matches!(graph.arrays[key.array as usize].role, ArrayRole::Temporary)
            && uses.get(&key).is_some_and(|n| *n > 0)
        {
            cache.insert(key, graph.chunk_bytes(key), true, &[]);
        }
    }
    cache.counts
}
