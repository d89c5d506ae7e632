//! Running work: worker threads bounded by the memory limit, and progress.
//!
//! For now this layer runs independent chunk tasks ([`for_each_task`]); the
//! full executor (memory pool, chunk graph, prefetch) grows here.

mod chunk_tasks;
mod options;
mod progress;

pub use chunk_tasks::for_each_task;
pub use options::{ExecOptions, default_memory_limit, physical_memory};
pub use progress::{NoProgress, Progress};
