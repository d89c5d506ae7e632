//! [`ChunkPlan`]: the plan of an operation whose chunks are independent
//! (generate, verify, compare, import, export).

use std::fmt;

use serde_json::{Value, json};

use crate::core::ByteSize;

/// What an operation over independent chunks will do: how many chunk tasks,
/// the bytes it reads and writes, and the memory one task holds.
///
/// Such operations need no chunk graph: each worker takes the next chunk,
/// holding `task_bytes` from the pool while it works on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    /// What the operation does, e.g. `generate normal (seed 42) into x.zarr`.
    pub operation: String,
    /// Chunk tasks.
    pub tasks: u64,
    /// Bytes read (uncompressed).
    pub bytes_read: u64,
    /// Bytes written (uncompressed).
    pub bytes_written: u64,
    /// Memory one task holds while it runs.
    pub task_bytes: u64,
    /// The memory limit.
    pub memory_limit: u64,
}

impl ChunkPlan {
    /// True when one task fits under the limit.
    pub fn fits(&self) -> bool {
        self.task_bytes <= self.memory_limit
    }

    /// The plan as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "operation": self.operation,
            "tasks": self.tasks,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "task_bytes": self.task_bytes,
            "memory_limit_bytes": self.memory_limit,
            "fits": self.fits(),
        })
    }
}

impl fmt::Display for ChunkPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan: {}", self.operation)?;
        writeln!(
            f,
            "  {} chunk tasks; read {}, write {}",
            self.tasks,
            ByteSize(self.bytes_read),
            ByteSize(self.bytes_written)
        )?;
        writeln!(
            f,
            "  memory: {} per task, limit {}{}",
            ByteSize(self.task_bytes),
            ByteSize(self.memory_limit),
            if self.fits() { "" } else { "  (DOES NOT FIT)" }
        )
    }
}
