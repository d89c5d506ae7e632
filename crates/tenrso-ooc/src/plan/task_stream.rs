//! [`TaskStream`]: the tasks of a grid walk, made on demand from the chunk
//! grid's arithmetic instead of listed.

use std::fmt;

use crate::core::ChunkSet;
use crate::plan::TaskNode;

/// The tasks of an operation that walks a chunk grid (map, reduce,
/// transpose, a decomposition's pass), generated one at a time in grid
/// order: the plan holds O(1) memory whatever the number of chunks.
///
/// A stream's tasks form one stage and read each chunk at most once, so the
/// executor drops a chunk after its task, and [`explain`](crate::plan::explain)
/// counts bytes and memory from [`StreamTotals`] and the
/// [`largest`](Self::largest) task without visiting the others.
pub trait TaskStream: Send + Sync + fmt::Debug {
    /// Number of tasks.
    fn len(&self) -> u64;

    /// True when there are no tasks.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Task `index` (below [`len`](Self::len)).
    fn task(&self, index: u64) -> TaskNode;

    /// A task needing at least as much memory as any task of the stream
    /// (largest scratch, pinned bytes and chunk loaded), for the plan's
    /// checks; it need not be one of the tasks.
    fn largest(&self) -> TaskNode;

    /// What the whole stream reads, writes and accounts for.
    fn totals(&self) -> StreamTotals;

    /// Bytes the stream itself holds (e.g. the set of stored chunks it
    /// walks), reserved from the pool with the plan.
    fn heap_bytes(&self) -> u64 {
        0
    }
}

/// The sums over a [`TaskStream`]'s tasks, known from the grid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Progress units of all tasks.
    pub work_bytes: u64,
    /// Bytes of chunks read (through the cache or streamed).
    pub bytes_read: u64,
    /// Bytes of output chunks written (at most).
    pub bytes_written: u64,
    /// Chunks of the inputs that were never written: the fill value,
    /// accounted for without reading them.
    pub absent_chunks: u64,
}

/// The usual [`TaskStream`]: one task per chunk of a [`ChunkSet`] (every
/// chunk of a grid, or only those stored), made by a function of the
/// chunk's linear index.
pub struct GridWalk {
    chunks: ChunkSet,
    make: Box<dyn Fn(u64) -> TaskNode + Send + Sync>,
    largest: TaskNode,
    totals: StreamTotals,
}

impl GridWalk {
    /// A task per chunk of `chunks`, in grid order, made by `make`;
    /// `largest` needs at least what any of them needs, and `totals` sums
    /// them.
    pub fn new(
        chunks: ChunkSet,
        largest: TaskNode,
        totals: StreamTotals,
        make: impl Fn(u64) -> TaskNode + Send + Sync + 'static,
    ) -> Self {
        Self {
            chunks,
            make: Box::new(make),
            largest,
            totals,
        }
    }
}

impl fmt::Debug for GridWalk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GridWalk")
            .field("tasks", &self.chunks.len())
            .field("of", &self.chunks.universe())
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl TaskStream for GridWalk {
    fn len(&self) -> u64 {
        self.chunks.len()
    }

    fn task(&self, index: u64) -> TaskNode {
        (self.make)(self.chunks.nth(index).unwrap_or(u64::MAX))
    }

    fn largest(&self) -> TaskNode {
        self.largest.clone()
    }

    fn totals(&self) -> StreamTotals {
        self.totals
    }

    fn heap_bytes(&self) -> u64 {
        self.chunks.heap_bytes()
    }
}
