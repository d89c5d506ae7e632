//! [`open_array`]: the one place that decides how a path is read — a Zarr
//! store, or a file read in place.

use std::path::Path;
use std::sync::Arc;

use crate::core::{Error, Result};
use crate::io::{ArrayRef, SourceFormat, SourceOptions, open_source};
use crate::store::ZarrArray;

/// Opens `path` for reading: a Zarr v3 store (a directory with `zarr.json`),
/// or a `.npy`, Arrow IPC, Parquet or (with [`SourceOptions::raw`]) raw file
/// read in place.
///
/// # Errors
/// [`Error::NotAnArray`] for a missing path or a directory that is not a
/// store; for a file, [`open_source`]'s errors (a file of no known format
/// without a raw layout, a damaged file, [`Error::Io`] for a missing one);
/// [`Error::InvalidArgument`] for file options given for a directory.
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
    if path.is_dir() {
        if options != &SourceOptions::default() {
            return Err(Error::invalid(format!(
                "{} is a directory (a Zarr store): column names and raw layouts (SourceOptions) apply to files",
                path.display()
            )));
        }
        return Ok(Arc::new(ZarrArray::open(path)?));
    }
    // Anything else that exists, or is named as a file, is read as one (a
    // missing `x.npy` is a missing file, not a missing store).
    if path.exists() || SourceFormat::of(path).is_some() || options.raw.is_some() {
        return open_source(path, options);
    }
    Ok(Arc::new(ZarrArray::open(path)?))
}
