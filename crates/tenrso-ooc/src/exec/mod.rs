//! Running work: sessions (memory pool, spill area, metrics), worker threads
//! whose tasks reserve memory from the pool, and progress.

mod chunk_tasks;
mod options;
mod progress;
mod session;

pub use chunk_tasks::for_each_task;
pub use options::{ExecOptions, default_memory_limit, physical_memory};
pub use progress::{NoProgress, Progress};
pub use session::Session;
