//! Planning: operations become [`ChunkGraph`]s whose cost [`explain`] reports
//! before anything runs.

mod chunk_graph;
mod explain;

pub use chunk_graph::{ArrayId, ArrayNode, ArrayRole, ChunkGraph, TaskNode};
pub use explain::{PlanReport, explain};
