//! [`ChunkGraph`]: an operation as a deterministic graph of chunk tasks.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::core::{ChunkGrid, ChunkSet, DType, Error, Region, Result};
use crate::distributed::Ownership;
use crate::io::ArrayRef;
use crate::memory::ChunkKey;
use crate::plan::TaskStream;
use crate::plan::cost_model::CostModel;
use crate::store::{ArraySpec, Durability, ZarrArray};

/// An array a run will create and write: where, with which layout, and —
/// once created — the array itself. Plans are built (and explained) before
/// anything is created.
#[derive(Debug)]
pub struct OutputArray {
    /// Where the array goes.
    pub path: PathBuf,
    /// Its layout.
    pub spec: ArraySpec,
    /// Each rank of a job creates its own copy at its own `path` and writes
    /// its chunks there (an intermediate on node-local scratch), instead
    /// of rank 0 creating one array every rank writes.
    pub node_local: bool,
    /// An intermediate in the spill area, removed after the job: its chunks
    /// are written with [`Durability::None`] whatever the session's
    /// durability (a killed job throws it away).
    pub scratch: bool,
    array: OnceLock<Arc<ZarrArray>>,
}

impl OutputArray {
    /// An output to be created at `path` with `spec`.
    pub fn new(path: impl Into<PathBuf>, spec: ArraySpec) -> Self {
        Self {
            path: path.into(),
            spec,
            node_local: false,
            scratch: false,
            array: OnceLock::new(),
        }
    }

    /// Marks the output as scratch (see [`scratch`](Self::scratch)).
    pub fn into_scratch(mut self) -> Self {
        self.scratch = true;
        self
    }

    /// How this output's chunks reach the disk in a session whose option is
    /// `session`: never synced for scratch, else as the session says.
    pub fn durability(&self, session: Durability) -> Durability {
        if self.scratch {
            Durability::None
        } else {
            session
        }
    }

    /// An output each rank creates its own copy of, at its own `path` (see
    /// [`node_local`](Self::node_local)).
    pub fn node_local(path: impl Into<PathBuf>, spec: ArraySpec) -> Self {
        Self {
            node_local: true,
            ..Self::new(path, spec)
        }
    }

    /// Creates the array (refusing an existing one), or with `resume` opens
    /// the one an interrupted run left (same layout, same `record` under
    /// `attribute`), and records `record` under `attribute`.
    ///
    /// # Errors
    /// As [`ZarrArray::create`] and [`ZarrArray::record_job`].
    pub fn create(
        &self,
        resume: bool,
        attribute: &str,
        record: &serde_json::Value,
    ) -> Result<&Arc<ZarrArray>> {
        if let Some(a) = self.array.get() {
            return Ok(a);
        }
        let mut made = if resume {
            ZarrArray::create_or_resume(&self.path, &self.spec)?
        } else {
            ZarrArray::create(&self.path, &self.spec)?
        };
        if let Err(err) = made.record_job(attribute, record.clone(), resume) {
            if !resume {
                let _ = std::fs::remove_dir_all(&self.path);
            }
            return Err(err);
        }
        let made = Arc::new(made);
        Ok(self.array.get_or_init(|| made))
    }

    /// Opens the array another rank of the job created (with
    /// [`create`](Self::create)) for this rank to write its chunks into.
    ///
    /// # Errors
    /// As [`ZarrArray::open`].
    pub fn open_created(&self) -> Result<&Arc<ZarrArray>> {
        if let Some(a) = self.array.get() {
            return Ok(a);
        }
        let opened = Arc::new(ZarrArray::open(&self.path)?);
        Ok(self.array.get_or_init(|| opened))
    }

    /// The array, once created.
    ///
    /// # Errors
    /// [`Error::Internal`] when it has not been created yet.
    pub fn array(&self) -> Result<&Arc<ZarrArray>> {
        self.array.get().ok_or_else(|| {
            Error::internal(format!(
                "output {} written before it was created",
                self.path.display()
            ))
        })
    }

    /// Sets how the array's chunks reach the disk in a session whose
    /// option is `session` (see [`durability`](Self::durability)), once
    /// created.
    pub fn set_durability(&self, session: Durability) {
        if let Some(array) = self.array.get() {
            array.set_durability(self.durability(session));
        }
    }

    /// Whether the array's large chunks are written around the page cache
    /// (see [`ZarrArray::set_uncached_writes`]): never for scratch, which
    /// is read again soon. Nothing to do before the array is created.
    pub fn set_uncached_writes(&self, on: bool) {
        if let Some(array) = self.array.get() {
            array.set_uncached_writes(on && !self.scratch);
        }
    }

    /// Waits until the chunks written so far are durable (see
    /// [`ZarrArray::flush`]); nothing to do before the array is created.
    ///
    /// # Errors
    /// As [`ZarrArray::flush`].
    pub fn flush(&self) -> Result<()> {
        self.array.get().map_or(Ok(()), |a| a.flush())
    }

    /// Ends the run's writes (see [`ZarrArray::end_writes`]); nothing to do
    /// before the array is created.
    ///
    /// # Errors
    /// As [`ZarrArray::flush`].
    pub fn end_writes(&self) -> Result<()> {
        self.array.get().map_or(Ok(()), |a| a.end_writes())
    }

    /// Deletes the array if this run created it (after a failed run).
    pub fn remove_created(&self) {
        if self.array.get().is_some() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The stored chunks of an output that an interrupted run already wrote.
#[derive(Debug, Clone)]
pub struct WrittenChunks {
    /// The output.
    pub array: ArrayId,
    /// Its stored chunk grid.
    pub grid: ChunkGrid,
    /// The chunks written.
    pub stored: ChunkSet,
}

/// Number of an array within a [`ChunkGraph`].
pub type ArrayId = u32;

/// What an array is to a run.
#[derive(Debug, Clone)]
pub enum ArrayRole {
    /// An array the run reads: a store or a file read in place.
    Input(ArrayRef),
    /// A stored array the run creates and writes: one task writes one chunk
    /// of the graph's grid, which is whole stored chunks.
    Output(Arc<OutputArray>),
    /// An intermediate that exists only in the chunk cache: written by the
    /// tasks of one stage, read by later ones, spilled when it does not fit.
    Temporary,
}

/// An array of a graph: its role and chunk grid.
#[derive(Debug, Clone)]
pub struct ArrayNode {
    /// A name for explain output and errors.
    pub name: String,
    /// Input, output or temporary.
    pub role: ArrayRole,
    /// The chunk grid tasks address.
    pub grid: ChunkGrid,
}

/// One task: the chunks it reads (in the order it reads them), the chunk it
/// writes, and the memory it needs besides cached chunks.
#[derive(Debug, Clone, Default)]
pub struct TaskNode {
    /// Tasks of stage `k + 1` start after every task of stage `k` ended.
    pub stage: u32,
    /// Chunks read through the cache, in order.
    pub reads: Vec<ChunkKey>,
    /// Chunks the task streams itself a slab of rows at a time, outside the
    /// cache (chunks too large to hold beside its output; see
    /// [`TaskIo::stream_rows`](crate::exec::TaskIo::stream_rows)): their
    /// slab buffers and decoders are part of its scratch.
    pub streams: Vec<ChunkKey>,
    /// The chunk written, if any.
    pub write: Option<ChunkKey>,
    /// Bytes of scratch memory (output block, assembled regions,
    /// accumulators) held for the task's duration.
    pub scratch_bytes: u64,
    /// Bytes of input chunks the task holds pinned at the same time (the
    /// largest such set).
    pub pinned_bytes: u64,
    /// Progress units (bytes) the task accounts for.
    pub work_bytes: u64,
}

/// An operation as stages of independent chunk tasks over input, output and
/// temporary arrays.
///
/// The graph is deterministic: the same operation on the same arrays with the
/// same parameters always gives the same tasks in the same order, so the
/// executor knows every future chunk access (prefetch follows it, eviction
/// uses it) and results do not depend on thread count or I/O timing.
#[derive(Debug, Clone)]
pub struct ChunkGraph {
    /// What the graph computes, e.g. `reduce sum over axes [0]`.
    pub operation: String,
    /// Element type of every array.
    pub dtype: DType,
    /// Arrays by [`ArrayId`].
    pub arrays: Vec<ArrayNode>,
    /// Tasks in execution order (stages ascending), when listed.
    pub tasks: Vec<TaskNode>,
    /// The tasks, when generated from a grid walk instead of listed (then
    /// `tasks` is empty).
    pub stream: Option<Arc<dyn TaskStream>>,
    /// Output chunks an interrupted run already wrote: streamed tasks that
    /// write only such chunks are skipped.
    pub written: Vec<WrittenChunks>,
    /// Whether the executor loads the inputs of upcoming tasks ahead of
    /// them (on by default). Off for tasks that only read and combine their
    /// chunks: workers outrun the prefetcher there (measured: it served 11
    /// of 128 chunks of a sum), so it only made the memory held vary with
    /// timing.
    pub prefetch: bool,
    /// Whether the executor loads stored chunks in place where the array
    /// can ([`ReadableArray::read_chunk_in_place_f64`]: mapped from the page
    /// cache) instead of copying them (off by default). On for contractions,
    /// whose tiles are loaded ahead and held while they are multiplied:
    /// `ijk,jl->ilk` on 4 GiB ran 20–30 % faster. Off elsewhere: a copy
    /// into memory the process already holds (a recycled or heap buffer)
    /// costs no new resident pages, mapped pages come on top of that memory
    /// (rechunk of 1 GiB under 128 MiB peaked at 200 against 168–181 MiB
    /// resident, no faster), and a task that uses a chunk right after
    /// reading it finds the copy's pieces still in the CPU caches (CP-ALS
    /// was 15 % slower mapped).
    ///
    /// [`ReadableArray::read_chunk_in_place_f64`]: crate::io::ReadableArray::read_chunk_in_place_f64
    pub read_in_place: bool,
    /// Whether the executor writes the large chunks of outputs that are
    /// not scratch around the page cache
    /// ([`ZarrArray::set_uncached_writes`]; off by default). On for
    /// contractions, whose results are written once and not read again by
    /// the run: matmul 8192² spent 5 % of its CPU time copying its result
    /// into the page cache.
    pub write_uncached: bool,
    /// Which rank runs which task when several run the graph together
    /// (see [`crate::distributed`]).
    pub ownership: Ownership,
}

impl ChunkGraph {
    /// An empty graph.
    pub fn new(operation: impl Into<String>, dtype: DType) -> Self {
        Self {
            operation: operation.into(),
            dtype,
            arrays: Vec::new(),
            tasks: Vec::new(),
            stream: None,
            written: Vec::new(),
            prefetch: true,
            read_in_place: false,
            write_uncached: false,
            ownership: Ownership::Balanced,
        }
    }

    /// Number of tasks, listed or streamed.
    pub fn task_count(&self) -> u64 {
        match &self.stream {
            Some(stream) => stream.len(),
            None => self.tasks.len() as u64,
        }
    }

    /// Task `index`: borrowed when listed, made when streamed.
    pub fn task(&self, index: u64) -> Cow<'_, TaskNode> {
        match &self.stream {
            Some(stream) => Cow::Owned(stream.task(index)),
            None => Cow::Borrowed(&self.tasks[index as usize]),
        }
    }

    /// The most memory any task needs (see [`task_need`](Self::task_need)),
    /// and the most it holds outside the cache.
    pub fn largest_need(&self) -> (u64, u64) {
        let need = |t: &TaskNode| {
            let n = self.task_need(t);
            (n, n.saturating_sub(t.pinned_bytes))
        };
        match &self.stream {
            Some(stream) if !stream.is_empty() => need(&stream.largest()),
            Some(_) => (0, 0),
            None => self
                .tasks
                .iter()
                .map(need)
                .fold((0, 0), |(a, b), (n, w)| (a.max(n), b.max(w))),
        }
    }

    /// True when an interrupted run already wrote every stored chunk
    /// `task` writes (known for streamed graphs: a listed graph drops such
    /// tasks when it is planned, and its `written` is empty).
    pub fn already_written(&self, task: &TaskNode) -> bool {
        let Some(key) = task.write else {
            return false;
        };
        self.written.iter().any(|w| {
            w.array == key.array
                && ChunkGrid::iter_region(&w.grid.chunks_touching(&self.region(key)))
                    .all(|c| w.stored.contains(w.grid.chunk_linear_index(&c)))
        })
    }

    /// Checks, before any task is listed, that a graph of `tasks` tasks
    /// reading at least `reads` chunks can be held under `limit`: the plan
    /// counts itself.
    ///
    /// ```
    /// use tenrso_ooc::DType;
    /// use tenrso_ooc::plan::ChunkGraph;
    /// let graph = ChunkGraph::new("sum", DType::F32);
    /// assert!(graph.check_listing(1_000, 1_000, 64 << 20).is_ok());
    /// let err = graph.check_listing(83_333_500_000, 83_333_500_000, 8 << 20).unwrap_err();
    /// assert!(err.to_string().contains("83333500000 tasks"));
    /// ```
    ///
    /// # Errors
    /// [`Error::MemoryLimit`] with the bytes the listing needs.
    pub fn check_listing(&self, tasks: u64, reads: u64, limit: u64) -> Result<()> {
        let reads = reads.max(tasks);
        let required = CostModel::DEFAULT.plan_bytes(reads, tasks);
        if required <= limit {
            return Ok(());
        }
        Err(Error::MemoryLimit {
            remedy: crate::core::Remedy::LargerChunks,
            limit,
            required,
            what: format!(
                "the plan of `{}` itself ({tasks} tasks reading {reads} chunks or more)",
                self.operation
            ),
        })
    }

    /// Adds an array; returns its id.
    pub fn add_array(
        &mut self,
        name: impl Into<String>,
        role: ArrayRole,
        grid: ChunkGrid,
    ) -> ArrayId {
        self.arrays.push(ArrayNode {
            name: name.into(),
            role,
            grid,
        });
        (self.arrays.len() - 1) as ArrayId
    }

    /// The key of chunk `coords` of array `array`.
    pub fn key(&self, array: ArrayId, coords: &[u64]) -> ChunkKey {
        ChunkKey::new(
            array,
            self.arrays[array as usize].grid.chunk_linear_index(coords),
        )
    }

    /// The coordinates of a chunk.
    pub fn coords(&self, key: ChunkKey) -> Vec<u64> {
        self.arrays[key.array as usize].grid.chunk_coords(key.index)
    }

    /// The region of the array a chunk covers.
    pub fn region(&self, key: ChunkKey) -> Region {
        let grid = &self.arrays[key.array as usize].grid;
        grid.chunk_region(&grid.chunk_coords(key.index))
    }

    /// Bytes of a chunk's data (clipped at the array's edges).
    pub fn chunk_bytes(&self, key: ChunkKey) -> u64 {
        self.region(key).num_elements() * self.dtype.size() as u64
    }

    /// The keys of `array`'s chunks that `region` touches, in C order.
    pub fn chunks_touching(&self, array: ArrayId, region: &Region) -> Vec<ChunkKey> {
        let grid = &self.arrays[array as usize].grid;
        ChunkGrid::iter_region(&grid.chunks_touching(region))
            .map(|c| self.key(array, &c))
            .collect()
    }

    /// Memory needed to bring chunk `key` into the cache: decode buffers for
    /// a stored chunk, the chunk itself for a temporary read back from spill.
    pub fn load_bytes(&self, key: ChunkKey) -> u64 {
        match &self.arrays[key.array as usize].role {
            ArrayRole::Input(a) => a.chunk_working_set(),
            ArrayRole::Output(o) => o.spec.chunk_working_set(),
            ArrayRole::Temporary => self.chunk_bytes(key),
        }
    }

    /// The sequence of every chunk read, in task order: the future the
    /// executor prefetches along and Belady's MIN evicts by. Empty for a
    /// streamed graph, which reads each chunk once.
    pub fn schedule(&self) -> Vec<ChunkKey> {
        self.tasks
            .iter()
            .flat_map(|t| t.reads.iter().copied())
            .collect()
    }

    /// The outputs of the graph.
    pub fn outputs(&self) -> impl Iterator<Item = &Arc<OutputArray>> {
        self.arrays.iter().filter_map(|a| match &a.role {
            ArrayRole::Output(o) => Some(o),
            _ => None,
        })
    }

    /// Number of stages.
    pub fn stages(&self) -> u32 {
        if self.stream.is_some() {
            return u32::from(self.task_count() > 0);
        }
        self.tasks.iter().map(|t| t.stage + 1).max().unwrap_or(0)
    }

    /// Bytes the graph itself occupies in memory while it runs — the tasks,
    /// the schedule, and per chunk the executor's use count and the MIN
    /// policy's list of future uses — reserved from the pool for the run.
    ///
    /// A streamed graph holds what its stream holds, one task per worker
    /// and the chunk sets of a resumed output: nothing per chunk.
    pub fn footprint(&self) -> u64 {
        if let Some(stream) = &self.stream {
            let written: u64 = self.written.iter().map(|w| w.stored.heap_bytes()).sum();
            return stream.heap_bytes() + written + 64 * std::mem::size_of::<TaskNode>() as u64;
        }
        let reads: usize = self.tasks.iter().map(|t| t.reads.len()).sum();
        let mut keys: Vec<ChunkKey> = self
            .tasks
            .iter()
            .flat_map(|t| t.reads.iter().copied())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let key = std::mem::size_of::<ChunkKey>();
        // Per read: its entry in the task, in the schedule and in MIN's use
        // list; per distinct chunk: two hash map entries with their overhead.
        (self.tasks.len() * std::mem::size_of::<TaskNode>()
            + reads * (2 * key + 8)
            + keys.len() * 96) as u64
    }

    /// How many tasks may run at once under `limit` with `threads` threads:
    /// no more than fit with every one at its largest need, so that tasks
    /// that hold memory while waiting for more can never deadlock.
    pub fn concurrency(&self, threads: usize, limit: u64) -> usize {
        let need = self.largest_need().0.max(1);
        let fit = (limit.saturating_sub(self.footprint()) / need).max(1);
        (threads.max(1) as u64)
            .min(fit)
            .min(self.task_count().max(1)) as usize
    }

    /// The memory one task needs at least: its scratch, and one chunk being
    /// loaded while the task's other pinned inputs are held (the chunk being
    /// loaded becomes one of them: it is counted once, by its load).
    pub fn task_need(&self, task: &TaskNode) -> u64 {
        let load = task
            .reads
            .iter()
            .map(|k| self.load_bytes(*k))
            .max()
            .unwrap_or(0);
        let loading = task
            .reads
            .iter()
            .map(|k| self.chunk_bytes(*k))
            .min()
            .unwrap_or(0);
        self.task_reservation(task) + task.pinned_bytes.saturating_sub(loading) + load
    }

    /// What a worker reserves when it starts `task`: its scratch, plus the
    /// encode buffers of the stored chunk it writes (beyond the block itself,
    /// which is part of the scratch).
    pub fn task_reservation(&self, task: &TaskNode) -> u64 {
        let encode = match task.write.map(|k| &self.arrays[k.array as usize].role) {
            Some(ArrayRole::Output(o)) => {
                let chunk =
                    o.spec.storage_chunk_shape().iter().product::<u64>() * self.dtype.size() as u64;
                o.spec.chunk_working_set().saturating_sub(chunk)
            }
            _ => 0,
        };
        task.scratch_bytes + encode
    }
}
