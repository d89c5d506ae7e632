//! `tenrso-ooc info`.

use serde_json::{Value, json};
use tenrso_ooc::store::ZarrArray;
use tenrso_ooc::{ByteSize, Result};

use super::{dims, open_input};
use crate::Outcome;
use crate::cli::InfoArgs;

/// Describes the array.
pub fn run(args: &InfoArgs) -> Result<Outcome> {
    let array = open_input(&args.path)?;
    // Shards and attributes are a store's; a file read in place has neither.
    let store = array.as_any().downcast_ref::<ZarrArray>();
    let grid = array.chunk_grid();
    let stored = array.stored_chunk_set()?;
    let stored_bytes = array.stored_nbytes(&stored);
    let on_disk = array.bytes_on_disk()?;
    let ratio = if on_disk > 0 {
        stored_bytes as f64 / on_disk as f64
    } else {
        0.0
    };
    let (chunk_shape, shard_shape) = match store.and_then(ZarrArray::inner_chunk_shape) {
        Some(inner) => (inner.to_vec(), Some(grid.chunk_shape().to_vec())),
        None => (grid.chunk_shape().to_vec(), None),
    };
    let attributes = store.map(ZarrArray::attributes).unwrap_or_default();
    let unit = if shard_shape.is_some() {
        "shards"
    } else {
        "chunks"
    };
    let mut text = format!(
        "path:        {}\nshape:       {} ({}, {})\nchunks:      {}{} ({} grid, {} {unit})\ncodecs:      {}{}\nstored:      {} / {} {unit}\nsize:        {} uncompressed, {} on disk (compression ratio {:.2})\n",
        array.path().display(),
        dims(array.shape()),
        array.dtype(),
        ByteSize(array.nbytes()),
        dims(&chunk_shape),
        shard_shape
            .as_ref()
            .map_or(String::new(), |s| format!(", in shards of {}", dims(s))),
        dims(grid.grid_shape()),
        grid.num_chunks(),
        array.describe(),
        if array.has_checksum() {
            ""
        } else {
            "  (no checksum: corruption may go undetected)"
        },
        stored.len(),
        grid.num_chunks(),
        ByteSize(stored_bytes),
        ByteSize(on_disk),
        ratio,
    );
    if !attributes.is_empty() {
        text.push_str(&format!(
            "attributes:  {}\n",
            Value::Object(attributes.clone())
        ));
    }
    let json = json!({
        "path": array.path().display().to_string(),
        "shape": array.shape(),
        "dtype": array.dtype().short_name(),
        "chunk_shape": chunk_shape,
        "shard_shape": shard_shape,
        "grid_shape": grid.grid_shape(),
        "chunks_total": grid.num_chunks(),
        "chunks_stored": stored.len(),
        "codecs": array.describe(),
        "has_checksum": array.has_checksum(),
        "bytes": array.nbytes(),
        "bytes_stored": stored_bytes,
        "bytes_on_disk": on_disk,
        "compression_ratio": ratio,
        "attributes": attributes,
    });
    Ok(Outcome {
        text,
        json,
        failure: None,
    })
}
