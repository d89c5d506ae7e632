//! Core types every layer shares: element types, shapes and regions, the chunk
//! grid, owned blocks, byte sizes, the error type, the machine's memory and
//! the naps of polling threads.

mod block;
mod chunk_grid;
mod chunk_set;
mod element;
mod elements;
pub(crate) mod error;
mod float;
mod gemm;
#[cfg(feature = "blas")]
mod gemm_blas;
mod layout;
mod machine;
mod nap;
pub(crate) mod shape;
mod size;

pub use block::Block;
pub use chunk_grid::{ChunkGrid, MAX_AXES};
pub use chunk_set::{ChunkSet, ChunkSetBuilder};
pub use element::{DType, Element};
pub(crate) use elements::{Elements, MappedElements};
pub use error::{Error, Remedy, Result};
pub use float::{max_nan, min_nan};
pub(crate) use gemm::matmul_add_block;
pub use gemm::{MatView, gemm_gflops, gemm_kernel, matmul_add};
pub use layout::ContiguousRuns;
pub(crate) use layout::{compact_corner, copy_region};
pub use machine::physical_memory;
pub(crate) use machine::physical_memory_cached;
pub(crate) use nap::Nap;
pub use shape::{Region, Shape};
pub use size::ByteSize;
