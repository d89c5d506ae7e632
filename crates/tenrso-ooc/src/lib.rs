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
//! - [`ops`] runs work over stored arrays: deterministic generators
//!   ([`ops::generate`]), verification ([`ops::verify`]), and streaming
//!   `.npy`/raw [`ops::import`] and [`ops::export`].
//! - [`exec::Session`] holds the memory pool every buffer is reserved from,
//!   the spill area and the metrics; [`exec::ExecOptions`] sets threads and
//!   the memory limit. Work that cannot run under the limit is refused before
//!   it starts.
//!
//! ## Example
//!
//! ```
//! use tenrso_ooc::exec::{ExecOptions, NoProgress, Session};
//! use tenrso_ooc::ops::{self, Fill};
//! use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
//! use tenrso_ooc::{DType, Region};
//!
//! # let dir = tempfile::tempdir()?;
//! let spec = ArraySpec::new(vec![1000, 800], vec![256, 256], DType::F64)
//!     .with_compression(Compression::Zstd { level: 1 });
//! let mut x = ZarrArray::create(dir.path().join("x.zarr"), &spec)?;
//! let exec = Session::new(ExecOptions::default().with_memory_limit(64 << 20));
//! ops::generate(&mut x, Fill::Normal, 42, false, &exec, &NoProgress)?;
//! assert!(ops::verify(&x, &exec, &NoProgress)?.is_ok());
//!
//! // Read any region; only the chunks it touches are decoded.
//! let corner = x.read_region::<f64>(&Region::new(vec![250, 250], vec![10, 10]))?;
//! assert_eq!(corner.shape(), &[10, 10]);
//!
//! // Stream it out to NumPy's format and back.
//! let npy = dir.path().join("x.npy");
//! ops::export(x.path(), &npy, &exec, &NoProgress)?;
//! ops::import(&npy, &dir.path().join("y.zarr"), &Default::default(), &exec, &NoProgress)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod core;
pub mod exec;
pub mod io;
pub mod memory;
pub mod ops;
pub mod plan;
pub mod store;
pub mod telemetry;

pub use crate::core::{
    Block, ByteSize, ChunkGrid, ContiguousRuns, DType, Element, Error, Region, Result, Shape,
    copy_region,
};
