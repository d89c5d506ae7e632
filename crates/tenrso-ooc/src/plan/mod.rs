//! Planning: operations become [`ChunkGraph`]s whose cost [`explain`] reports
//! before anything runs.

mod chunk_graph;
mod explain;
mod rechunk_plan;

pub use chunk_graph::{ArrayId, ArrayNode, ArrayRole, ChunkGraph, OutputArray, TaskNode};
pub use explain::{PlanReport, explain};
pub use rechunk_plan::rechunking_plan;
