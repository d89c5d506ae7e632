//! Planning: operations become [`ChunkGraph`]s whose cost [`explain`] reports
//! before anything runs.

mod chunk_graph;
mod contraction_path;
mod contraction_step;
mod cost_model;
mod einsum_spec;
mod explain;
mod output_chunks;
mod rechunk_plan;
mod task_stream;
mod tile_search;
mod tiling_params;

pub use chunk_graph::{
    ArrayId, ArrayNode, ArrayRole, ChunkGraph, OutputArray, TaskNode, WrittenChunks,
};
pub use contraction_path::{ContractionPath, PathStep, PathStrategy};
pub use contraction_step::{ContractionStep, OperandLayout, StepCost, StepOperand, natural_output};
pub use cost_model::rechunk_seconds;
pub use einsum_spec::{EinsumProblem, EinsumSpec, Label, labels_text};
pub use explain::{PlanReport, explain, prefetch_window};
pub use rechunk_plan::rechunking_plan;
pub use task_stream::{GridWalk, StreamTotals, TaskStream};
pub use tiling_params::TilingParams;
