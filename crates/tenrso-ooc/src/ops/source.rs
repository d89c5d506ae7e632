//! [`open_input`]: an operation's input from a Zarr store or a `.npy` file.

use std::path::Path;
use std::sync::Arc;

use crate::core::Result;
use crate::exec::{Progress, Session};
use crate::ops::einsum::{TempStore, temp_store_path};
use crate::ops::{ImportOptions, import, is_npy};
use crate::store::ZarrArray;

/// An input array, and the temporary store it was imported into (removed
/// when dropped) when it came from a `.npy` file.
pub struct Input {
    /// The array to read.
    pub array: Arc<ZarrArray>,
    _temp: Option<TempStore>,
}

/// Opens `path` as an input: a Zarr store as it is; a `.npy` file (small
/// cores of a tensor network, factor matrices, whole tensors) streamed into
/// an uncompressed temporary store in the session's spill area, chunked
/// automatically, which is removed when the returned [`Input`] is dropped.
///
/// # Errors
/// Store, file and import errors, naming the file.
pub fn open_input(session: &Session, path: &Path, progress: &dyn Progress) -> Result<Input> {
    if !is_npy(path) {
        return Ok(Input {
            array: Arc::new(ZarrArray::open(path)?),
            _temp: None,
        });
    }
    let stem = path
        .file_stem()
        .map_or("input".into(), |s| s.to_string_lossy().into_owned());
    let dir = temp_store_path(session, &format!("npy-{stem}"))?;
    let temp = TempStore(dir.clone());
    import(path, &dir, &ImportOptions::default(), session, progress)?;
    Ok(Input {
        array: Arc::new(ZarrArray::open(&dir)?),
        _temp: Some(temp),
    })
}
