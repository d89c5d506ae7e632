//! Running work: sessions (memory pool, spill area, metrics), the executor
//! of chunk graphs (workers, prefetch, cache), simpler independent chunk
//! tasks, and progress.
//!
//! The executor runs the plans of [`crate::plan`]; planning itself depends
//! only on the layers below (memory, store, core).

mod cancel;
mod chunk_tasks;
mod executor;
mod options;
mod progress;
mod rank_run;
mod session;
mod task_batch;

pub use crate::core::physical_memory;
pub use cancel::CancelToken;
pub use chunk_tasks::{TaskSet, for_each_owned_task, for_each_task};
pub use executor::{RunStats, TaskBody, TaskIo, execute, execute_planned};
pub use options::{DEFAULT_READERS, ExecOptions, default_memory_limit};
pub use progress::{NoProgress, Progress};
pub use rank_run::{RankFigures, RankRun};
pub use session::Session;
