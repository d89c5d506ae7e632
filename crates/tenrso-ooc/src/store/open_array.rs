//! [`open_array`]: the one place that decides how a path is read — a Zarr
//! store, or a file read in place.

use std::path::Path;
use std::sync::Arc;

use crate::core::Result;
use crate::io::{ArrayRef, SourceFormat, SourceOptions, open_source};
use crate::store::ZarrArray;

/// Opens `path` for reading: a Zarr v3 store (a directory with `zarr.json`),
/// or a `.npy`, Arrow IPC, Parquet or (with [`SourceOptions::raw`]) raw file
/// read in place.
///
/// # Errors
/// [`Error::NotAnArray`](crate::Error::NotAnArray) for a path that is
/// neither; the reader's errors for a damaged file.
///
/// ```
/// use tenrso_ooc::DType;
/// use tenrso_ooc::io::SourceOptions;
/// use tenrso_ooc::store::{ArraySpec, ZarrArray, open_array};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.zarr");
/// ZarrArray::create(&path, &ArraySpec::new(vec![6, 4], vec![3, 4], DType::F32))?;
/// let x = open_array(&path, &SourceOptions::default())?;
/// assert_eq!(x.chunk_grid().num_chunks(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_array(path: impl AsRef<Path>, options: &SourceOptions) -> Result<ArrayRef> {
    let path = path.as_ref();
    let is_file = path.is_file();
    if is_file && (SourceFormat::of(path).is_some() || options.raw.is_some()) {
        return open_source(path, options);
    }
    if options != &SourceOptions::default() {
        // Columns or a raw layout given for a store: refuse rather than ignore.
        return open_source(path, options);
    }
    Ok(Arc::new(ZarrArray::open(path)?))
}
