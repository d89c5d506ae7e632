//! One module per command.

pub mod create;
pub mod decompose;
pub mod demo;
pub mod einsum;
pub mod info;
pub mod map;
pub mod operation;
pub mod reduce;
pub mod reorganize;
pub mod replay;
pub mod report;
pub mod transfer;
pub mod verify;

use std::path::Path;
use std::time::Duration;

use tenrso_ooc::exec::ExecOptions;
use tenrso_ooc::io::{ArrayRef, SourceOptions};
use tenrso_ooc::store::{ArraySpec, open_array};
use tenrso_ooc::{ByteSize, ChunkGrid, DType, Result};

use crate::cli::LayoutArgs;

/// Opens an input array: a Zarr store, or a `.npy`, Arrow IPC or Parquet
/// file read in place.
pub fn open_input(path: &Path) -> Result<ArrayRef> {
    open_array(path, &SourceOptions::default())
}

/// The chunk shape to use: the one given, or chunks of
/// [`ExecOptions::default_chunk_bytes`].
pub fn chunk_shape_or_auto(
    given: Option<&[u64]>,
    shape: &[u64],
    dtype: DType,
    exec: &ExecOptions,
) -> Vec<u64> {
    given.map_or_else(
        || ChunkGrid::auto_chunk_shape(shape, dtype.size() as u64, exec.default_chunk_bytes()),
        <[u64]>::to_vec,
    )
}

/// The spec of a new array at `path` from the layout options. When resuming
/// without `--chunks`, the existing array's chunking is kept (the automatic
/// choice depends on the memory limit, which may have changed).
pub fn spec_from_layout(
    path: &std::path::Path,
    shape: &[u64],
    dtype: DType,
    layout: &LayoutArgs,
    exec: &ExecOptions,
) -> ArraySpec {
    let existing = (layout.resume && layout.chunks.is_none())
        .then(|| tenrso_ooc::store::ZarrArray::open(path).ok())
        .flatten();
    let chunks = match &existing {
        Some(a) => a
            .inner_chunk_shape()
            .unwrap_or(a.chunk_grid().chunk_shape())
            .to_vec(),
        None => chunk_shape_or_auto(layout.chunks.as_ref().map(|s| s.dims()), shape, dtype, exec),
    };
    // `auto` is resolved by the request, on samples of the data.
    let compression = match layout.codec {
        tenrso_ooc::store::CodecChoice::Fixed(c) => c,
        tenrso_ooc::store::CodecChoice::Auto(_) => tenrso_ooc::store::Compression::None,
    };
    let mut spec = ArraySpec::new(shape.to_vec(), chunks, dtype).with_compression(compression);
    spec.shard_shape = layout.shard.as_ref().map(|s| s.dims().to_vec());
    spec
}

/// `text` with every line indented by two spaces.
pub fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `1.23 GiB/s`.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!("{}/s", ByteSize((bytes as f64 / secs) as u64))
}

/// `x` joined: `4096x4096`.
pub fn dims(d: &[u64]) -> String {
    tenrso_ooc::Shape::new(d.to_vec()).to_string()
}
