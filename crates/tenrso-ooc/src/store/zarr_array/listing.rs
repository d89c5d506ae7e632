//! Which chunks a [`ZarrArray`] stores: its directory walked once, one
//! directory handle per level, into a [`ChunkSet`].

use std::fs;
use std::path::Path;

use crate::core::{ChunkSet, Error, Result};
use crate::store::ZarrArray;
use crate::store::atomic_fs_store::is_temp_key;
use crate::store::zarr_metadata::ChunkKeyDecoder;

impl ZarrArray {
    /// The stored chunks (shards when sharded) that have been written.
    ///
    /// The directory is walked depth first, never listed whole, and each
    /// chunk becomes one entry of a [`ChunkSet`]: memory grows with the
    /// chunks that exist and is bounded by a bit per chunk of the grid,
    /// whatever the grid declares.
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be read.
    pub fn stored_chunk_set(&self) -> Result<ChunkSet> {
        let decoder = ChunkKeyDecoder::of(&self.metadata, self.grid.ndim());
        let mut set = ChunkSet::builder(self.grid.num_chunks());
        walk(&self.path, &mut String::new(), &mut |key, _| {
            if let Some(chunk) = decoder.decode(key)
                && self.grid.contains_chunk(&chunk)
            {
                set.insert(self.grid.chunk_linear_index(&chunk));
            }
            Ok(())
        })?;
        Ok(set.finish())
    }

    /// Bytes the array occupies on disk: its chunks and `zarr.json`
    /// (walked as [`stored_chunk_set`](Self::stored_chunk_set) walks).
    ///
    /// # Errors
    /// [`Error::Io`] when a directory or file cannot be read.
    pub fn bytes_on_disk(&self) -> Result<u64> {
        let metadata = self.path.join("zarr.json");
        let mut bytes = fs::metadata(&metadata)
            .map_err(|e| Error::io(&metadata, e))?
            .len();
        walk(&self.path, &mut String::new(), &mut |_, entry| {
            bytes += entry
                .metadata()
                .map_err(|e| Error::io(entry.path(), e))?
                .len();
            Ok(())
        })?;
        Ok(bytes)
    }

    /// Coordinates of every stored chunk that has been written, in C order
    /// (see [`stored_chunk_set`](Self::stored_chunk_set)).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be listed.
    pub fn stored_chunks(&self) -> Result<Vec<Vec<u64>>> {
        let set = self.stored_chunk_set()?;
        Ok(set.iter().map(|i| self.grid.chunk_coords(i)).collect())
    }
}

/// Calls `each` with the store key (`c/0/3`) and entry of every file under
/// `dir`, skipping metadata and writers' temporaries.
fn walk(
    dir: &Path,
    key: &mut String,
    each: &mut dyn FnMut(&str, &fs::DirEntry) -> Result<()>,
) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        let len = key.len();
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(&name);
        if kind.is_dir() {
            walk(&entry.path(), key, each)?;
        } else if kind.is_file() && !is_temp_key(&name) && name != "zarr.json" {
            each(key, &entry)?;
        }
        key.truncate(len);
    }
    Ok(())
}
