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
//! - [`ChunkGrid`], [`Region`], [`Block`] describe how an array is cut into
//!   chunks and hold the data of one chunk or region.
//! - [`exec::Session`] owns the [`memory::MemoryPool`] every large buffer is
//!   reserved from, the spill area and the [`telemetry::Metrics`];
//!   [`exec::ExecOptions`] sets threads, the memory limit, spill directories
//!   and the cache policy.
//! - [`ops`] runs work over stored arrays. Planned operations ([`ops::map`],
//!   [`ops::reduce`], [`ops::transpose`], [`ops::rechunk`]) build a
//!   [`plan::ChunkGraph`], [`plan::explain`] it (refusing what cannot fit),
//!   and [`exec::execute`] it through the [`memory::ChunkCache`] with
//!   prefetch and spill. Simpler chunk-parallel work: generators
//!   ([`ops::generate`]), [`ops::verify`], [`ops::compare`], streaming
//!   `.npy`/raw [`ops::import`] and [`ops::export`].
//! - [`ops::einsum`] (with [`ops::tensordot`] and [`ops::matmul`]) contracts
//!   stored arrays out of core: [`plan::EinsumSpec`] parses NumPy's
//!   subscripts, [`plan::ContractionPath`] orders the pairwise
//!   [`plan::ContractionStep`]s, and each step runs as a tiled GEMM through
//!   the executor.
//! - [`io`] reads and writes files outside the store: `.npy`/raw
//!   ([`io::DenseFile`]), Arrow IPC and Parquet with the canonical
//!   `arrow.fixed_shape_tensor` column or numeric columns. Such files open
//!   as read-only arrays ([`io::ChunkSource`], through
//!   [`ZarrArray::open`](store::ZarrArray::open)), so every operation reads
//!   them in place; [`ops::export_with`] writes them.
//! - [`decomp`] decomposes stored tensors out of core: streaming
//!   [`decomp::mttkrp`], [`decomp::cp_als`] and [`decomp::tucker`] (HOSVD
//!   and HOOI) with TensorLy's parameters, checkpointed every iteration, and
//!   [`decomp::reconstruct_cp`]/[`decomp::reconstruct_tucker`] to write a
//!   model back as a stored tensor.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use tenrso_ooc::exec::{ExecOptions, NoProgress, Session};
//! use tenrso_ooc::ops::{self, Expr, Fill, OutputOptions, ReduceOp};
//! use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
//! use tenrso_ooc::{DType, Region};
//!
//! # let dir = tempfile::tempdir()?;
//! // One session: one memory pool, one spill area, one set of metrics.
//! let session = Session::new(ExecOptions::default().with_memory_limit(64 << 20));
//! let spec = ArraySpec::new(vec![1000, 800], vec![256, 256], DType::F64)
//!     .with_compression(Compression::Zstd { level: 1 });
//! let mut x = ZarrArray::create(dir.path().join("x.zarr"), &spec)?;
//! ops::generate(&mut x, Fill::Normal, 42, false, &session, &NoProgress)?;
//! assert!(ops::verify(&x, &session, &NoProgress)?.is_ok());
//!
//! // Read any region; only the chunks it touches are decoded.
//! let corner = x.read_region::<f64>(&Region::new(vec![250, 250], vec![10, 10]))?;
//! assert_eq!(corner.shape(), &[10, 10]);
//!
//! // Planned operations: explained before they run, refused if they cannot fit.
//! let x = Arc::new(x);
//! let opts = OutputOptions::default();
//! let sum = ops::reduce(&session, ReduceOp::Sum, x.clone(), None, None, &opts, false, &NoProgress)?;
//! assert!(sum.value.unwrap().is_finite());
//! let y = ops::map(&session, &Expr::parse("x*2+1")?, x.clone(), None, &dir.path().join("y.zarr"), &opts, false, &NoProgress)?;
//! assert_eq!(y.plan.bytes_written, 1000 * 800 * 8);
//! let t = ops::transpose(&session, x.clone(), &[1, 0], &dir.path().join("t.zarr"), &opts, false, &NoProgress)?;
//! assert!(t.run.unwrap().pool_peak <= 64 << 20);
//!
//! // Stream it out to NumPy's format and back.
//! let npy = dir.path().join("x.npy");
//! ops::export(x.path(), &npy, &session, &NoProgress)?;
//! ops::import(&npy, &dir.path().join("z.zarr"), &Default::default(), &session, &NoProgress)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod core;
pub mod decomp;
pub mod exec;
pub mod io;
pub mod memory;
pub mod ops;
pub mod plan;
pub mod store;
pub mod telemetry;

pub use crate::core::{
    Block, ByteSize, ChunkGrid, ContiguousRuns, DType, Element, Error, MatView, Region, Result,
    Shape, copy_region, matmul_add,
};
