//! [`ScalarOutput`]: a scalar result written as a 0-d array.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::core::{Block, DType, Element, Error, Result};
use crate::dispatch_dtype;
use crate::ops::planned::OPERATION_ATTRIBUTE;
use crate::store::{ArraySpec, Compression, ZarrArray};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Where a scalar result (a full reduction, a scalar einsum) goes: a 0-d
/// array, NumPy's and zarr-python's shape `()`, carrying the job's record.
///
/// It is written whole — into a temporary directory beside the target,
/// renamed into place — so a killed run leaves no array that reads as the
/// fill value.
#[derive(Debug, Clone)]
pub(crate) struct ScalarOutput {
    path: PathBuf,
    compression: Compression,
}

impl ScalarOutput {
    /// Checks, reading only, that the result can go to `path`: a new path,
    /// or with `resume` a 0-d array an earlier run of the same job
    /// (`record`) wrote, which the result replaces.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] without `resume`; [`Error::InvalidArgument`]
    /// for an array that is not 0-d or that another job wrote.
    pub(crate) fn check(
        path: &Path,
        compression: Compression,
        resume: bool,
        record: &Value,
    ) -> Result<Self> {
        if resume && path.join("zarr.json").exists() {
            let existing = ZarrArray::open(path)?;
            if !existing.shape().is_empty() {
                return Err(Error::invalid(format!(
                    "cannot resume into {}: it holds an array of shape {:?}, not a scalar",
                    path.display(),
                    existing.shape()
                )));
            }
            existing.check_job(OPERATION_ATTRIBUTE, record)?;
        } else {
            ZarrArray::check_creatable(path)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            compression,
        })
    }

    /// Writes `value` as a 0-d `dtype` array recording `record`.
    ///
    /// # Errors
    /// Store errors; the target is left as it was.
    pub(crate) fn write(&self, dtype: DType, value: f64, record: &Value) -> Result<()> {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "scalar".into(), |n| n.to_string_lossy().into_owned());
        let temp = self.path.with_file_name(format!(
            ".{name}.tenrso-tmp.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let spec =
                ArraySpec::new(Vec::new(), Vec::new(), dtype).with_compression(self.compression);
            let mut array = ZarrArray::create(&temp, &spec)?;
            array.record_job(OPERATION_ATTRIBUTE, record.clone(), false)?;
            dispatch_dtype!(dtype, T => array.write_chunk(&[], &Block::<T>::from_vec(Vec::new(), vec![T::from_f64(value)])?))?;
            if self.path.join("zarr.json").exists() {
                // Resuming: the old result is the same job's.
                std::fs::remove_dir_all(&self.path).map_err(|e| Error::io(&self.path, e))?;
            }
            std::fs::rename(&temp, &self.path).map_err(|e| Error::io(&self.path, e))?;
            crate::store::sync_dir(crate::store::parent_dir(&self.path))
                .map_err(|e| Error::io(&self.path, e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        written
    }
}
