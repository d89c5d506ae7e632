//! # tenrso-ooc
//!
//! Out-of-core dense tensors: compute on arrays far larger than memory, stored
//! as chunked Zarr v3 arrays on disk, under a memory limit that holds.
//!
//! ## Brief overview
//!
//! - [`ZarrArray`](store::ZarrArray) is a chunked `f32`/`f64` array in a Zarr v3
//!   directory (readable by zarr-python). Chunk writes are atomic, every chunk
//!   carries a checksum, and corrupt chunks give [`Error::Corrupt`].
//! - [`io::ReadableArray`] is what every operation reads: Zarr arrays and the
//!   files read in place implement it, [`store::open_array`] opens either as
//!   an [`io::ArrayRef`], and [`io::WritableArray`] is a store's write side.
//! - [`ChunkGrid`], [`Region`], [`Block`] describe how an array is cut into
//!   chunks and hold the data of one chunk or region.
//! - [`exec::Session`] owns the [`memory::MemoryPool`] every large buffer is
//!   reserved from, the spill area and the [`telemetry::Metrics`];
//!   [`exec::ExecOptions`] sets threads, the memory limit, spill directories
//!   and the cache policy.
//! - [`ops`] runs work over stored arrays. Every operation is a request
//!   value ([`ops::Map`], [`ops::Reduce`], [`ops::Transpose`],
//!   [`ops::Rechunk`], [`ops::Einsum`] with tensordot and matmul,
//!   [`ops::Generate`], [`ops::Verify`], [`ops::Compare`], [`ops::Import`],
//!   [`ops::Export`]) whose `plan(&session)` checks it and returns an
//!   [`ops::Planned`] operation: `explain()` is its plan (memory, bytes
//!   read/written/spilled, flops), `run()` executes it. Plans that cannot fit
//!   are refused before any I/O; runs stop with [`Error::Cancelled`] when
//!   the session's [`exec::CancelToken`] is cancelled.
//! - [`plan`] builds what the operations run: [`plan::ChunkGraph`]s of
//!   chunk tasks, explained by [`plan::explain`], and for einsum the
//!   [`plan::EinsumSpec`] and [`plan::ContractionPath`] of tiled GEMM steps.
//!   [`exec`] runs the graphs (it sits above `plan`; layers depend only
//!   downward: decomp → ops → exec → plan → memory → store → io →
//!   telemetry → core) through the
//!   [`memory::ChunkCache`] with prefetch and spill.
//! - [`io`] reads and writes files outside the store: `.npy`/raw
//!   ([`io::DenseFile`]), Arrow IPC and Parquet with the canonical
//!   `arrow.fixed_shape_tensor` column or numeric columns. Such files open
//!   as read-only arrays ([`io::DenseSource`], [`io::IpcSource`],
//!   [`io::ParquetSource`], through [`store::open_array`]), so every
//!   operation reads them in place; [`ops::Export`] writes them.
//! - [`decomp`] decomposes stored tensors out of core: streaming
//!   [`decomp::mttkrp`], [`decomp::cp_als`] and [`decomp::tucker`] (HOSVD
//!   and HOOI) with TensorLy's parameters, checkpointed every iteration,
//!   stoppable from their iteration callback, and
//!   [`decomp::Reconstruct`] to write a model back as a stored tensor.
//!
//! ## Example
//!
//! ```
//! use tenrso_ooc::exec::{ExecOptions, Session};
//! use tenrso_ooc::ops::{Einsum, Expr, Fill, Generate, Map, Reduce, ReduceOp, Transpose};
//! use tenrso_ooc::store::{ArraySpec, Compression};
//! use tenrso_ooc::{DType, Region};
//!
//! # let dir = tempfile::tempdir()?;
//! // One session: one memory pool, one spill area, one set of metrics.
//! let session = Session::new(ExecOptions::default().with_memory_limit(64 << 20));
//! let spec = ArraySpec::new(vec![1000, 800], vec![256, 256], DType::F64)
//!     .with_compression(Compression::Zstd { level: 1 });
//! let x = Generate::new(dir.path().join("x.zarr"), spec, Fill::Normal)
//!     .with_seed(42)
//!     .plan(&session)?
//!     .run()?
//!     .array;
//!
//! // Read any region; only the chunks it touches are decoded.
//! let corner = x.read_region::<f64>(&Region::new(vec![250, 250], vec![10, 10]))?;
//! assert_eq!(corner.shape(), &[10, 10]);
//!
//! // Plan, look at the plan, then run.
//! let sum = Reduce::new(ReduceOp::Sum, &x).plan(&session)?;
//! println!("{sum}"); // tasks, bytes to read, memory against the limit
//! assert!(sum.run()?.value.unwrap().is_finite());
//! let y = Map::new(Expr::parse("x*2+1")?, &x, dir.path().join("y.zarr")).plan(&session)?.run()?;
//! assert_eq!(y.plan.bytes_written, 1000 * 800 * 8);
//! let t = Transpose::new(&x, [1, 0], dir.path().join("t.zarr")).plan(&session)?.run()?;
//! assert!(t.run.pool_peak <= 64 << 20);
//!
//! // Out-of-core contractions: the Gram matrix X·Xᵀ, and a scalar.
//! let gram = Einsum::new("ij,kj->ik", [&x, &x]).with_out(dir.path().join("g.zarr"));
//! let report = gram.plan(&session)?.run()?;
//! assert_eq!(report.plan.output_shape, [1000, 1000]);
//! let sq = Einsum::new("ij,ij->", [&x, &x]).plan(&session)?.run()?.value.unwrap();
//! assert!(sq > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod core;
pub mod decomp;
pub mod distributed;
pub mod exec;
pub mod io;
pub mod memory;
pub mod ops;
pub mod plan;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod fuzz_config;

/// The README's code, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

pub use crate::core::{
    Block, ByteSize, ChunkGrid, ChunkSet, ContiguousRuns, DType, Element, Error, MatView, Region,
    Remedy, Result, Shape, gemm_gflops, gemm_kernel, matmul_add,
};
