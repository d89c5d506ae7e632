//! Streaming large input chunks a slab of rows at a time (Dask-sized
//! chunks): which chunks, in what slabs, and the slabs as elements. A task
//! that streams its input holds its output chunk and one slab, not two
//! chunks (see [`TaskIo::stream_rows`](crate::exec::TaskIo::stream_rows)).

use crate::core::{Element, Error, Result};
use crate::io::{ReadableArray, chunk_row_bytes};

/// Input chunks of at least this many bytes are streamed instead of held
/// whole beside the output chunk.
pub(crate) const STREAM_CHUNK_BYTES: u64 = 32 << 20;

/// The size of one streamed slab.
const SLAB_BYTES: u64 = 4 << 20;

/// Whether tasks stream `input`'s chunks rather than read them whole.
pub(crate) fn streams(input: &dyn ReadableArray) -> bool {
    input.chunk_nbytes() >= STREAM_CHUNK_BYTES && !input.shape().is_empty()
}

/// Rows of the first axis per slab of about 4 MiB of `input`'s chunks.
pub(crate) fn slab_rows(input: &dyn ReadableArray) -> u64 {
    (SLAB_BYTES / chunk_row_bytes(input).max(1)).max(1)
}

/// Bytes of one slab of `input`'s chunks (at most a chunk).
pub(crate) fn slab_bytes(input: &dyn ReadableArray) -> u64 {
    (slab_rows(input) * chunk_row_bytes(input)).min(input.chunk_nbytes())
}

/// A streamed slab's bytes as elements.
pub(crate) fn elements<T: Element>(bytes: &[u8]) -> Result<&[T]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| Error::internal(format!("a streamed slab is not a slice of elements: {e}")))
}
