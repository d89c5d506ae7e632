//! [`execute`]: run a [`ChunkGraph`] on worker threads with a prefetcher,
//! every buffer reserved from the session's memory pool.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::core::error::panic_message;
use crate::core::{Block, Element, Error, Nap, Region, Result};
use crate::distributed::{OwnedTasks, stage_ranges};
use crate::exec::RankRun;
use crate::exec::task_batch::TaskBatch;
use crate::exec::{Progress, Session};
use crate::io::ReadableArray;
use crate::memory::{
    CacheStats, ChunkCache, ChunkKey, ChunkMap, Loader, Pinned, Reservation, SpilledPrefetch,
};
use crate::plan::{ArrayId, ArrayRole, ChunkGraph, PlanReport, TaskNode};
use crate::telemetry::span_int;

/// The computation of an operation's tasks. The executor calls `run` for
/// each task with a [`TaskIo`] through which the task pulls its inputs; the
/// block returned is the chunk the task writes (if its node names one).
pub trait TaskBody<T: Element>: Sync {
    /// Runs task `index` of the graph.
    ///
    /// # Errors
    /// Whatever the computation or its inputs fail with.
    fn run(&self, index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>>;
}

/// A task's access to its inputs: chunks come through the session's chunk
/// cache (hits, prefetched chunks, or loads reserved from the pool) and stay
/// pinned while the returned [`Pinned`] lives.
pub struct TaskIo<'a, T: Element> {
    graph: &'a ChunkGraph,
    cache: &'a ChunkCache<T>,
    session: &'a Session,
    task: &'a TaskNode,
    reservation: &'a mut Reservation,
    threads: usize,
}

impl<'a, T: Element> TaskIo<'a, T> {
    /// The task being run.
    pub fn task(&self) -> &'a TaskNode {
        self.task
    }

    /// The graph being run.
    pub fn graph(&self) -> &'a ChunkGraph {
        self.graph
    }

    /// Threads the task may use inside its body (e.g. for a GEMM): the
    /// session's threads shared by the tasks that can still run at once, so
    /// a stage with fewer tasks than threads keeps every core busy.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The `k`-th chunk the task declared it reads.
    ///
    /// # Errors
    /// Load failures (corrupt chunk, I/O, spill) and memory exhaustion.
    pub fn input(&mut self, k: usize) -> Result<Pinned<'a, T>> {
        self.chunk(self.task.reads[k])
    }

    /// Chunk `key` of any array of the graph.
    ///
    /// # Errors
    /// As [`TaskIo::input`].
    pub fn chunk(&mut self, key: ChunkKey) -> Result<Pinned<'a, T>> {
        // Chunk loads are where long tasks (contraction tiles) can stop.
        self.session.cancel_token().check()?;
        let graph = self.graph;
        let session = self.session;
        let load = move || load_chunk::<T>(graph, session, key);
        let loader = Loader {
            working_set: graph.load_bytes(key),
            load: &load,
        };
        let asked = Instant::now();
        let pinned = self.cache.get(key, &loader, self.reservation)?;
        self.session
            .metrics()
            .read_wait_seconds
            .observe(asked.elapsed());
        // A streamed graph reads each chunk once: it leaves the cache as
        // soon as the task drops it, not after the task.
        if graph.stream.is_some() {
            self.cache.remove_after_use(key);
        }
        Ok(pinned)
    }

    /// Streams the `k`-th chunk the task declared it streams, a slab of at
    /// most `slab_rows` rows at a time (see
    /// [`ReadableArray::stream_chunk_rows`]): outside the cache, into
    /// buffers the task's scratch accounts for. Checksums are checked when
    /// it returns.
    ///
    /// # Errors
    /// Load failures (corrupt chunk, I/O), cancellation, and whatever `each`
    /// returns.
    pub fn stream_rows(
        &mut self,
        k: usize,
        slab_rows: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.session.cancel_token().check()?;
        let key = self.task.streams[k];
        stored_array(self.graph, key)?.stream_chunk_rows(
            &self.graph.coords(key),
            slab_rows,
            each,
        )?;
        self.session
            .metrics()
            .bytes_read
            .add(self.graph.chunk_bytes(key));
        Ok(())
    }

    /// The values of `region` of array `array`, copied out of the chunks it
    /// touches (each pinned only while copied).
    ///
    /// # Errors
    /// As [`TaskIo::input`].
    pub fn assemble(&mut self, array: ArrayId, region: &Region) -> Result<Block<T>> {
        let mut out = Block::<T>::zeros(region.shape().to_vec());
        for key in self.graph.chunks_touching(array, region) {
            let chunk_region = self.graph.region(key);
            let overlap = chunk_region
                .intersect(region)
                .expect("touching chunks overlap");
            let data = self.chunk(key)?;
            let part = data.extract(&overlap.relative_to(chunk_region.start()));
            out.insert(overlap.relative_to(region.start()).start(), &part);
        }
        Ok(out)
    }
}

/// Loads chunk `key` from its stored array. A panic while loading (a bug,
/// or a decoder's assertion) becomes an error: the chunk's cache entry then
/// fails instead of staying "loading" for its waiters forever.
fn load_chunk<T: Element>(
    graph: &ChunkGraph,
    session: &Session,
    key: ChunkKey,
) -> Result<Block<T>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        load_chunk_unguarded(graph, session, key)
    }))
    .unwrap_or_else(|payload| {
        Err(Error::internal(format!(
            "loading chunk {:?} of `{}` panicked: {}",
            graph.coords(key),
            graph.arrays[key.array as usize].name,
            panic_message(payload.as_ref())
        )))
    })
}

fn load_chunk_unguarded<T: Element>(
    graph: &ChunkGraph,
    session: &Session,
    key: ChunkKey,
) -> Result<Block<T>> {
    let started = Instant::now();
    let array = stored_array(graph, key)?;
    let coords = graph.coords(key);
    let block = if graph.read_in_place {
        array.read_chunk_in_place::<T>(&coords)?
    } else {
        array.read_chunk::<T>(&coords)?
    };
    session
        .metrics()
        .chunk_read(block.byte_len() as u64, started.elapsed());
    Ok(block)
}

/// The stored array chunk `key` is read from: an input, or an output being
/// read back (a temporary is read from the cache or its spill, never here).
fn stored_array(graph: &ChunkGraph, key: ChunkKey) -> Result<&dyn ReadableArray> {
    match &graph.arrays[key.array as usize].role {
        ArrayRole::Input(array) => Ok(&**array),
        ArrayRole::Output(output) => Ok(&**output.array()?),
        ArrayRole::Temporary => Err(Error::internal(format!(
            "chunk {:?} of temporary `{}` was read before it was produced",
            graph.coords(key),
            graph.arrays[key.array as usize].name
        ))),
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// The plan, as explained before running.
    pub plan: PlanReport,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The chunk cache's counters.
    pub cache: CacheStats,
    /// Bytes read from stored arrays during the run.
    pub bytes_read: u64,
    /// Bytes written to stored arrays during the run.
    pub bytes_written: u64,
    /// Bytes written to spill files during the run (as stored).
    pub bytes_spilled: u64,
    /// Spill files moved down a tier to make room for chunks needed sooner.
    pub spill_demotions: u64,
    /// Spill files moved up a tier ahead of their use.
    pub spill_promotions: u64,
    /// The most memory reserved in the pool at once.
    pub pool_peak: u64,
    /// The chunk requests in the order the cache saw them, when the session
    /// records traces.
    pub trace: Option<Vec<ChunkKey>>,
    /// Tasks run (tasks of a resumed run whose output was on disk excluded).
    pub tasks_run: u64,
    /// Microseconds per task that workers spent outside the tasks' own
    /// I/O and compute: taking the next task, making it, reserving its
    /// memory, cache bookkeeping, and waiting (for memory, at the end of a
    /// stage). Worker time (workers × wall time) less the time inside task
    /// bodies and output writes, divided by the tasks run.
    pub overhead_per_task_us: f64,
    /// Seconds the workers spent in tasks (bodies and output writes),
    /// summed over the workers.
    pub task_seconds: f64,
    /// Of which waiting for input chunks: their loads, or readers' loads
    /// under way (see [`ExecOptions::readers`](crate::exec::ExecOptions::readers)).
    pub read_wait_seconds: f64,
    /// Of which writing output chunks.
    pub write_seconds: f64,
    /// Each rank's own figures when several ranks ran the graph (then the
    /// counters above are their totals, `seconds` and `pool_peak` their
    /// maxima); empty in one process.
    pub ranks: Vec<RankRun>,
}

impl RunStats {
    /// Seconds the workers spent in tasks neither waiting for inputs nor
    /// writing outputs: computing (and streaming large chunks in slabs).
    pub fn compute_seconds(&self) -> f64 {
        (self.task_seconds - self.read_wait_seconds - self.write_seconds).max(0.0)
    }

    /// The run's figures as JSON (without the plan).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seconds": self.seconds,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_spilled": self.bytes_spilled,
            "spill_demotions": self.spill_demotions,
            "spill_promotions": self.spill_promotions,
            "pool_peak_bytes": self.pool_peak,
            "tasks_run": self.tasks_run,
            "overhead_per_task_us": self.overhead_per_task_us,
            "task_seconds": self.task_seconds,
            "read_wait_seconds": self.read_wait_seconds,
            "write_seconds": self.write_seconds,
            "compute_seconds": self.compute_seconds(),
            "ranks": self.ranks.iter().map(RankRun::to_json).collect::<Vec<_>>(),
        })
    }
}
/// Runs `graph` with `body` in `session`: refuses a plan that cannot fit the
/// memory limit before any work; then runs each stage's tasks in plan order
/// on the session's threads, each reserving its scratch memory from the pool
/// (back-pressure), while a prefetcher loads the chunks of upcoming tasks
/// into free memory. Chunks are dropped from the cache after their last
/// planned use; outputs are written atomically chunk by chunk.
///
/// The first failing task (lowest index) stops the run; its error is
/// returned — or, when the run starved because spilling failed, the spill
/// error, which is the cause.
///
/// # Errors
/// [`Error::MemoryLimit`] before any work; task, I/O and spill errors.
pub fn execute<T: Element>(
    session: &Session,
    graph: &ChunkGraph,
    body: &dyn TaskBody<T>,
    progress: &dyn Progress,
) -> Result<RunStats> {
    let plan = crate::plan::explain(
        graph,
        session.threads(),
        session.memory_limit(),
        session.options().cache_policy,
    );
    execute_planned(session, graph, plan, body, progress)
}

/// [`execute`] with the plan already explained (by [`crate::plan::explain`]
/// with the session's threads, limit and policy).
///
/// # Errors
/// As [`execute`].
pub fn execute_planned<T: Element>(
    session: &Session,
    graph: &ChunkGraph,
    plan: PlanReport,
    body: &dyn TaskBody<T>,
    progress: &dyn Progress,
) -> Result<RunStats> {
    plan.check()?;
    // For the run report: what ran, as `--explain` would have shown it.
    session.metrics().record_plan(plan.to_string());
    if T::DTYPE != graph.dtype {
        return Err(Error::internal(format!(
            "graph of {} run as {}",
            graph.dtype,
            T::DTYPE
        )));
    }
    let mut plan_reservation = session.pool().reservation("plan");
    plan_reservation.grow(graph.footprint())?;
    let metrics = session.metrics();
    let (read0, written0, spilled0) = (
        metrics.bytes_read.get(),
        metrics.bytes_written.get(),
        metrics.bytes_spilled.get(),
    );
    let (demoted0, promoted0) = (
        metrics.spill_demotions.get(),
        metrics.spill_promotions.get(),
    );
    let (read_wait0, write0) = (
        metrics.read_wait_seconds.sum_seconds(),
        metrics.chunk_write_seconds.sum_seconds(),
    );
    let start = Instant::now();
    let has_temporaries = graph
        .arrays
        .iter()
        .any(|a| matches!(a.role, ArrayRole::Temporary));
    let ranks = session.ranks();
    if has_temporaries && ranks.is_distributed() {
        // Intermediates live in one rank's cache: a later stage on another
        // rank could not read them (the operation must store them).
        return Err(Error::internal(format!(
            "`{}` keeps intermediates in memory and cannot be shared among {} ranks",
            graph.operation,
            ranks.size()
        )));
    }
    // The tasks this rank owns, stage by stage (all of them in one process).
    let stages: Vec<OwnedTasks> = stage_ranges(graph)
        .into_iter()
        .map(|s| graph.ownership.owned(graph, s, ranks.rank(), ranks.size()))
        .collect();
    let spill = if has_temporaries {
        Some(session.spill()?)
    } else {
        None
    };
    let schedule: Vec<ChunkKey> = if graph.stream.is_some() {
        Vec::new()
    } else {
        stages
            .iter()
            .flat_map(OwnedTasks::iter)
            .flat_map(|i| graph.tasks[i as usize].reads.iter().copied())
            .collect()
    };
    let cache = ChunkCache::<T>::new(
        session.pool(),
        session.options().cache_policy.build(&schedule),
        spill,
        metrics.clone(),
    );
    let mut remaining: ChunkMap<AtomicU32> = ChunkMap::default();
    for key in &schedule {
        remaining
            .entry(*key)
            .or_insert_with(|| AtomicU32::new(0))
            .fetch_add(1, Ordering::Relaxed);
    }
    cache.record_trace(session.options().record_trace);
    let owned_count: u64 = stages.iter().map(OwnedTasks::len).sum();
    metrics.tasks_total.add(owned_count);
    progress.start(
        &graph.operation,
        match &graph.stream {
            // A stream's tasks are alike: this rank's share of the work.
            Some(stream) => {
                let totals = stream.totals().work_bytes as u128;
                (totals * owned_count as u128 / stream.len().max(1) as u128) as u64
            }
            None => stages
                .iter()
                .flat_map(OwnedTasks::iter)
                .map(|i| graph.tasks[i as usize].work_bytes)
                .sum(),
        },
    );
    for output in graph.outputs() {
        output.set_durability(session.options().durability);
        output.set_uncached_writes(graph.write_uncached);
    }
    let mut outcome = Ok(());
    let (task_nanos, tasks_run) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut worker_seconds = 0.0;
    for (k, owned) in stages.iter().enumerate() {
        if k > 0 && ranks.is_distributed() {
            // A stage reads what earlier stages wrote, on every rank.
            ranks.barrier();
        }
        if owned.is_empty() {
            continue;
        }
        let stage = graph.task(owned.get(0)).stage;
        let span = tracing::info_span!(
            "stage",
            stage = span_int(stage),
            tasks = span_int(owned.len()),
            workers = tracing::field::Empty,
            readers = span_int(if graph.prefetch {
                session.options().readers
            } else {
                0
            }),
        );
        let _entered = span.enter();
        let stage_started = Instant::now();
        let run = StageRun {
            span: span.clone(),
            graph,
            session,
            cache: &cache,
            body,
            progress,
            remaining: &remaining,
            tasks: owned,
            next: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            first_error: Mutex::new(None),
            task_nanos: &task_nanos,
            tasks_run: &tasks_run,
        };
        let workers = run.workers();
        span.record("workers", span_int(workers));
        outcome = run.run();
        // A later stage, another rank, or the caller reads what this stage
        // wrote: its batched writes are committed first (also when it
        // failed, so what was written is kept for `--resume`).
        let flushed = graph.outputs().try_for_each(|o| o.flush());
        outcome = outcome.and(flushed);
        worker_seconds += workers as f64 * stage_started.elapsed().as_secs_f64();
        if outcome.is_err() {
            break;
        }
    }
    progress.finish();
    // Later writes through the outputs (by whoever holds them) are synced
    // per chunk again.
    let ended = graph.outputs().try_for_each(|o| o.end_writes());
    let outcome = outcome.and(ended);
    if let Err(err) = outcome {
        // A cancelled run reports the cancellation, not whatever a worker
        // stopping meanwhile ran into (a wait for memory cut short).
        session.cancel_token().check()?;
        return Err(cache.take_spill_error().unwrap_or(err));
    }
    Ok(RunStats {
        plan,
        seconds: start.elapsed().as_secs_f64(),
        cache: cache.stats(),
        bytes_read: metrics.bytes_read.get() - read0,
        bytes_written: metrics.bytes_written.get() - written0,
        bytes_spilled: metrics.bytes_spilled.get() - spilled0,
        spill_demotions: metrics.spill_demotions.get() - demoted0,
        spill_promotions: metrics.spill_promotions.get() - promoted0,
        pool_peak: session.pool().peak(),
        trace: session.options().record_trace.then(|| cache.take_trace()),
        tasks_run: tasks_run.load(Ordering::Relaxed),
        overhead_per_task_us: {
            let busy = task_nanos.load(Ordering::Relaxed) as f64 * 1e-9;
            let run = tasks_run.load(Ordering::Relaxed).max(1) as f64;
            (worker_seconds - busy).max(0.0) / run * 1e6
        },
        task_seconds: task_nanos.load(Ordering::Relaxed) as f64 * 1e-9,
        read_wait_seconds: metrics.read_wait_seconds.sum_seconds() - read_wait0,
        write_seconds: metrics.chunk_write_seconds.sum_seconds() - write0,
        ranks: Vec::new(),
    })
}

/// One stage in progress: the owned tasks from position `next` on still to
/// start.
struct StageRun<'a, T: Element> {
    /// The stage's span, the parent of its workers' task batches.
    span: tracing::Span,
    graph: &'a ChunkGraph,
    session: &'a Session,
    cache: &'a ChunkCache<T>,
    body: &'a dyn TaskBody<T>,
    progress: &'a dyn Progress,
    remaining: &'a ChunkMap<AtomicU32>,
    /// The stage's tasks this rank runs.
    tasks: &'a OwnedTasks,
    /// Position in `tasks` of the next task to start.
    next: AtomicU64,
    stop: AtomicBool,
    first_error: Mutex<Option<(u64, Error)>>,
    /// Nanoseconds spent inside task bodies and output writes.
    task_nanos: &'a AtomicU64,
    /// Tasks run.
    tasks_run: &'a AtomicU64,
}

impl<T: Element> StageRun<'_, T> {
    /// Worker threads for the stage.
    fn workers(&self) -> usize {
        self.graph
            .concurrency(self.session.threads(), self.session.memory_limit())
            .min(
                (self.tasks.len() - self.next.load(Ordering::Relaxed)).min(usize::MAX as u64)
                    as usize,
            )
            .max(1)
    }

    fn run(self) -> Result<()> {
        let workers = self.workers();
        let cursor = Mutex::new((self.next.load(Ordering::Relaxed), 0));
        std::thread::scope(|scope| {
            if self.graph.prefetch {
                for reader in 0..self.session.options().readers {
                    let (this, cursor) = (&self, &cursor);
                    scope.spawn(move || this.read_ahead(reader, cursor));
                }
            }
            for w in 0..workers {
                let this = &self;
                scope.spawn(move || this.work(w, workers));
            }
        });
        match self
            .first_error
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some((_, err)) => Err(err),
            None => Ok(()),
        }
    }

    fn fail(&self, index: u64, err: Error) {
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|(i, _)| index < *i) {
            *slot = Some((index, err));
        }
    }

    fn work(&self, worker: usize, workers: usize) {
        let mut reservation = self.session.pool().reservation(format!("worker {worker}"));
        let mut batch: Option<TaskBatch> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let position = self.next.fetch_add(1, Ordering::Relaxed);
            if position >= self.tasks.len() {
                break;
            }
            let index = self.tasks.get(position);
            if batch.is_none() {
                batch = TaskBatch::open(&self.span, worker, index);
            }
            if let Err(err) = self.session.cancel_token().check() {
                self.fail(index, err);
                break;
            }
            // A panicking task stops the run with an error (its pins are
            // released by unwinding) rather than leaving the others waiting.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let threads = self.task_threads(position, workers);
                self.run_task(index, threads, &mut reservation)
            }))
            .unwrap_or_else(|payload| {
                Err(Error::internal(format!(
                    "task {index} panicked: {}",
                    panic_message(payload.as_ref())
                )))
            });
            let work_bytes = outcome.unwrap_or_else(|err| {
                self.fail(index, err);
                0
            });
            reservation.free();
            if let Some(open) = &mut batch
                && open.add(work_bytes)
            {
                batch = None;
            }
        }
    }

    /// Threads for the task started at `position` of the stage: the
    /// session's threads over the tasks that can run beside it (fewer than
    /// the workers once the stage's last tasks have started).
    fn task_threads(&self, position: u64, workers: usize) -> usize {
        let remaining = self.tasks.len() - position;
        let running = (workers as u64).min(remaining).max(1);
        (self.session.threads() as u64 / running).max(1) as usize
    }

    /// Runs task `index`: its work bytes.
    fn run_task(&self, index: u64, threads: usize, reservation: &mut Reservation) -> Result<u64> {
        let task = self.graph.task(index);
        let task = &*task;
        if self.graph.already_written(task) {
            self.progress.advance(task.work_bytes);
            self.session.metrics().tasks_done.add(1);
            return Ok(task.work_bytes);
        }
        reservation.grow(self.graph.task_reservation(task))?;
        let started = Instant::now();
        let output = {
            let mut io = TaskIo {
                graph: self.graph,
                cache: self.cache,
                session: self.session,
                task,
                reservation,
                threads,
            };
            self.body.run(index as usize, &mut io)?
        };
        match (task.write, output) {
            (Some(key), Some(block)) => {
                let node = &self.graph.arrays[key.array as usize];
                if block.shape() != self.graph.region(key).shape() {
                    return Err(Error::internal(format!(
                        "task {index} produced a block of shape {:?} for chunk {:?} of `{}`",
                        block.shape(),
                        self.graph.coords(key),
                        node.name
                    )));
                }
                match &node.role {
                    ArrayRole::Output(output) => {
                        let writing = Instant::now();
                        let array = output.array()?;
                        // A task may write a tile of several stored chunks.
                        if node.grid.chunk_shape() == array.chunk_grid().chunk_shape() {
                            array.write_chunk(&self.graph.coords(key), &block)?;
                        } else {
                            array.write_region(&self.graph.region(key), &block)?;
                        }
                        let metrics = self.session.metrics();
                        metrics.bytes_written.add(block.byte_len() as u64);
                        metrics.chunk_write_seconds.observe(writing.elapsed());
                    }
                    ArrayRole::Temporary => self.cache.insert(key, block, true, reservation),
                    ArrayRole::Input(_) => {
                        return Err(Error::internal(format!(
                            "task {index} writes input `{}`",
                            node.name
                        )));
                    }
                }
            }
            (None, None) => {}
            // A chunk left unwritten is the output's fill value: a task
            // whose inputs were all absent writes nothing when the fill is
            // its result.
            (Some(key), None)
                if matches!(
                    self.graph.arrays[key.array as usize].role,
                    ArrayRole::Output(_)
                ) => {}
            (Some(key), None) => {
                return Err(Error::internal(format!(
                    "task {index} produced nothing for {key:?}"
                )));
            }
            (None, Some(_)) => {
                return Err(Error::internal(format!("task {index} has no output chunk")));
            }
        }
        let took = started.elapsed();
        self.session.metrics().task_seconds.observe(took);
        self.task_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.tasks_run.fetch_add(1, Ordering::Relaxed);
        // Chunks whose last planned use this was leave the cache (every
        // read of a streamed graph is its chunk's only one).
        for key in &task.reads {
            if self.graph.stream.is_some()
                || self.remaining[key].fetch_sub(1, Ordering::AcqRel) == 1
            {
                self.cache.remove(*key);
            }
        }
        self.progress.advance(task.work_bytes);
        self.session.metrics().tasks_done.add(1);
        Ok(task.work_bytes)
    }

    /// One of the stage's readers: loads the input chunks of the next tasks
    /// into free memory, in plan order, never evicting anything (see
    /// [`ChunkCache::prefetch`]), decoding and checking them on its own
    /// thread. The readers share `cursor`, the first read not yet handed
    /// to one of them, so each chunk is claimed by one reader and a pass
    /// resumes there instead of rescanning tasks with thousands of reads;
    /// a chunk evicted after its prefetch is loaded by the worker that
    /// needs it.
    fn read_ahead(&self, reader: usize, cursor: &Mutex<ReadCursor>) {
        // Passive: a reader never waits for memory, so the pool must not
        // count it as a consumer that could release memory to waiters.
        let mut reservation = self
            .session
            .pool()
            .reclaimable_reservation(format!("reader {reader}"));
        // Idle readers (window all read, or no room) look again after
        // 1 to 16 ms (see `Nap`): looking every millisecond, they took
        // the cores from the workers.
        let mut nap = Nap::new(Duration::from_millis(1), Duration::from_millis(16));
        while !self.stop.load(Ordering::Relaxed) {
            let base = self.next.load(Ordering::Relaxed);
            if base >= self.tasks.len() {
                break;
            }
            if reader == 0 {
                // Spill files needed soonest move up to the fast tier as
                // it gets room (a failed copy leaves the file where it was).
                if let Err(err) = self.cache.promote_soonest() {
                    tracing::warn!(error = %err, "promoting a spill file failed");
                }
            }
            let Some(read) = self.claim_read(cursor, base) else {
                // Everything within the window is loaded or loading.
                nap.sleep();
                continue;
            };
            if self.load_ahead(read, &mut reservation) {
                nap.reset();
            } else {
                // No free memory: the read is tried again once there is.
                let mut at = cursor.lock().unwrap_or_else(|p| p.into_inner());
                *at = (*at).min((read.task, read.index));
                drop(at);
                nap.sleep();
            }
        }
        if reader == 0 {
            self.session.metrics().prefetch_depth.set(0);
        }
    }

    /// Hands the next read within the read-ahead window that may need a
    /// load to the calling reader, moving the shared cursor past it.
    fn claim_read(&self, cursor: &Mutex<ReadCursor>, base: u64) -> Option<ClaimedRead> {
        let window = crate::plan::prefetch_window(self.session.threads());
        let last = (base + window as u64).min(self.tasks.len());
        // Tasks that read many chunks: load ahead of the running tasks'
        // own reads too (the oldest running task is at most `threads`
        // behind `base`), so their I/O overlaps their compute. (A streamed
        // graph's chunks leave with their only task: only tasks not
        // started yet are loaded for.)
        let oldest_running = if self.graph.stream.is_some() {
            base
        } else {
            base.saturating_sub(self.session.threads() as u64)
        };
        let mut at = cursor.lock().unwrap_or_else(|p| p.into_inner());
        if at.0 < oldest_running {
            *at = (oldest_running, 0);
        }
        self.session
            .metrics()
            .prefetch_depth
            .set(at.0.saturating_sub(base));
        while at.0 < last {
            let (t, r) = *at;
            let task = self.graph.task(self.tasks.get(t));
            // A resumed task whose output is on disk will not run.
            let reads: &[ChunkKey] = if self.graph.already_written(&task) {
                &[]
            } else {
                &task.reads
            };
            let Some(&key) = reads.get(r) else {
                *at = (t + 1, 0);
                continue;
            };
            *at = (t, r + 1);
            let needed =
                self.graph.stream.is_some() || self.remaining[&key].load(Ordering::Acquire) > 0;
            let temporary = match &self.graph.arrays[key.array as usize].role {
                ArrayRole::Input(_) if !self.cache.contains(key) => false,
                ArrayRole::Temporary => true,
                _ => continue,
            };
            if needed {
                return Some(ClaimedRead {
                    task: t,
                    index: r,
                    key,
                    temporary,
                });
            }
        }
        None
    }

    /// Loads a claimed read into free memory (an input chunk from its
    /// array, a spilled intermediate chunk from its spill file). False
    /// when there was no free memory for it.
    fn load_ahead(&self, read: ClaimedRead, reservation: &mut Reservation) -> bool {
        let key = read.key;
        // A streamed chunk is wanted until its only task starts (a worker
        // then loads it, or waits for this load): never read twice.
        let wanted =
            || self.graph.stream.is_none() || self.next.load(Ordering::Acquire) <= read.task;
        if read.temporary {
            // Not spilled, or promoted, is not a failure; a damaged file is
            // reported by the worker reading it.
            return !matches!(
                self.cache.prefetch_spilled(key, reservation, &wanted),
                Ok(SpilledPrefetch::NoMemory)
            );
        }
        let load = || load_chunk::<T>(self.graph, self.session, key);
        let loader = Loader {
            working_set: self.graph.load_bytes(key),
            load: &load,
        };
        match self.cache.prefetch(key, &loader, reservation, &wanted) {
            Ok(true) => {
                // Its last user may have finished meanwhile.
                if self.graph.stream.is_none() && self.remaining[&key].load(Ordering::Acquire) == 0
                {
                    self.cache.remove(key);
                }
                true
            }
            Ok(false) => self.cache.contains(key),
            // It failed: the worker that needs it will load it again and
            // report the error.
            Err(_) => true,
        }
    }
}

/// The readers' shared position in a stage's reads: (task position, read
/// index) of the first read not yet handed to a reader.
type ReadCursor = (u64, usize);

/// A read a reader claimed.
#[derive(Debug, Clone, Copy)]
struct ClaimedRead {
    /// Position of the reading task in the stage.
    task: u64,
    /// Index of the read in the task's reads.
    index: usize,
    key: ChunkKey,
    /// A chunk of an intermediate (maybe spilled), not of a stored input.
    temporary: bool,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::DType;
    use crate::exec::{ExecOptions, NoProgress};
    use crate::plan::ChunkGraph;
    use crate::store::{ArraySpec, ZarrArray};

    /// A graph of one task per chunk of `array`, each reading its chunk.
    fn one_task_per_chunk(name: &str, array: Arc<ZarrArray>) -> ChunkGraph {
        let grid = array.chunk_grid().clone();
        let mut graph = ChunkGraph::new(name, DType::F64);
        let id = graph.add_array("x", ArrayRole::Input(array), grid.clone());
        for chunk in grid.iter() {
            let key = graph.key(id, &chunk);
            graph.tasks.push(TaskNode {
                stage: 0,
                reads: vec![key],
                streams: Vec::new(),
                write: None,
                scratch_bytes: 0,
                pinned_bytes: graph.chunk_bytes(key),
                work_bytes: 1,
            });
        }
        graph
    }

    /// Reads its chunk, then panics on task 5.
    struct PanicsOnFive;

    impl TaskBody<f64> for PanicsOnFive {
        fn run(&self, index: usize, io: &mut TaskIo<'_, f64>) -> Result<Option<Block<f64>>> {
            let _chunk = io.input(0)?;
            assert!(index != 5, "task {index} broke");
            Ok(None)
        }
    }

    #[test]
    fn a_panicking_task_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ArraySpec::new(vec![64, 8], vec![4, 8], DType::F64);
        let array = Arc::new(ZarrArray::create(dir.path().join("x.zarr"), &spec).unwrap());
        let graph = one_task_per_chunk("panics", array);
        let session = Session::new(ExecOptions::default().with_threads(2));
        let err = execute(&session, &graph, &PanicsOnFive, &NoProgress).unwrap_err();
        assert!(
            err.to_string().contains("task 5 panicked: task 5 broke"),
            "{err}"
        );
    }

    /// Records whether each task's chunk was read in place.
    struct SeesMapped(std::sync::Mutex<Vec<bool>>);

    impl TaskBody<f64> for SeesMapped {
        fn run(&self, _: usize, io: &mut TaskIo<'_, f64>) -> Result<Option<Block<f64>>> {
            let chunk = io.input(0)?;
            self.0.lock().unwrap().push(chunk.is_mapped());
            Ok(None)
        }
    }

    #[test]
    fn chunks_are_read_in_place_only_where_the_graph_asks() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ArraySpec::new(vec![4096, 512], vec![1024, 512], DType::F64);
        let array = Arc::new(ZarrArray::create(dir.path().join("x.zarr"), &spec).unwrap());
        let grid = array.chunk_grid().clone();
        assert!(array.chunk_nbytes() >= crate::io::MAP_MIN_BYTES);
        for chunk in grid.iter() {
            let block = Block::filled(grid.chunk_region(&chunk).shape().to_vec(), 1.5);
            array.write_chunk(&chunk, &block).unwrap();
        }
        let mut graph = one_task_per_chunk("maps", array);
        let session = Session::new(ExecOptions::default().with_threads(2));
        for in_place in [true, false] {
            graph.read_in_place = in_place;
            let body = SeesMapped(std::sync::Mutex::new(Vec::new()));
            execute(&session, &graph, &body, &NoProgress).unwrap();
            let seen = body.0.into_inner().unwrap();
            let mapped = in_place && crate::io::chunk_maps_enabled();
            assert_eq!(seen, vec![mapped; 4], "read in place: {in_place}");
        }
    }
}
