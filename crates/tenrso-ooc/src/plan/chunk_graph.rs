//! [`ChunkGraph`]: an operation as a deterministic graph of chunk tasks.

use std::sync::Arc;

use crate::core::{ChunkGrid, DType, Region};
use crate::memory::ChunkKey;
use crate::store::ZarrArray;

/// Number of an array within a [`ChunkGraph`].
pub type ArrayId = u32;

/// What an array is to a run.
#[derive(Debug, Clone)]
pub enum ArrayRole {
    /// A stored array the run reads.
    Input(Arc<ZarrArray>),
    /// A stored array the run writes, one whole stored chunk per task.
    Output(Arc<ZarrArray>),
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
    /// Chunks read, in order.
    pub reads: Vec<ChunkKey>,
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
    /// Tasks in execution order (stages ascending).
    pub tasks: Vec<TaskNode>,
}

impl ChunkGraph {
    /// An empty graph.
    pub fn new(operation: impl Into<String>, dtype: DType) -> Self {
        Self {
            operation: operation.into(),
            dtype,
            arrays: Vec::new(),
            tasks: Vec::new(),
        }
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
            ArrayRole::Input(a) | ArrayRole::Output(a) => a.chunk_working_set(),
            ArrayRole::Temporary => self.chunk_bytes(key),
        }
    }

    /// The sequence of every chunk read, in task order: the future the
    /// executor prefetches along and Belady's MIN evicts by.
    pub fn schedule(&self) -> Vec<ChunkKey> {
        self.tasks
            .iter()
            .flat_map(|t| t.reads.iter().copied())
            .collect()
    }

    /// Number of stages.
    pub fn stages(&self) -> u32 {
        self.tasks.iter().map(|t| t.stage + 1).max().unwrap_or(0)
    }

    /// The memory one task needs at least: its scratch, its pinned inputs and
    /// one chunk being loaded.
    pub fn task_need(&self, task: &TaskNode) -> u64 {
        let load = task
            .reads
            .iter()
            .map(|k| self.load_bytes(*k))
            .max()
            .unwrap_or(0);
        task.scratch_bytes + task.pinned_bytes + load
    }
}
