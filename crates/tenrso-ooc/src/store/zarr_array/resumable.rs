//! What makes a [`ZarrArray`] resumable: the record of the job that fills
//! it, and the temporary files a killed writer leaves.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::core::{Error, Result};
use crate::store::ZarrArray;
use crate::store::atomic_fs_store::is_temp_key;

impl ZarrArray {
    /// Records which job fills this array, as user attribute `attribute`,
    /// so that a resumed job can prove it is the same job.
    ///
    /// Without `resume` the record is written. With `resume`, the array must
    /// already carry the same record (or be empty, see
    /// [`check_job`](Self::check_job)); then leftover temporary files of the
    /// interrupted run are removed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when resuming an array that another job
    /// (other parameters, another source) has been filling.
    pub fn record_job(&mut self, attribute: &str, record: Value, resume: bool) -> Result<()> {
        if resume && self.check_job(attribute, &record)? {
            self.remove_stale_temporaries()?;
            return Ok(());
        }
        self.set_attribute(attribute, record)
    }

    /// Whether a job identified by `record` may resume filling this array,
    /// without changing anything: `true` when the array carries the same
    /// record under `attribute`, `false` when it carries none and holds no
    /// chunks yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when another job (another record, or
    /// chunks without a record) has been filling it.
    pub fn check_job(&self, attribute: &str, record: &Value) -> Result<bool> {
        match self.attributes().get(attribute) {
            Some(existing) if existing == record => Ok(true),
            Some(existing) => Err(Error::invalid(format!(
                "cannot resume {}: it was filled by another job ({attribute} = {existing}), not this one ({record})",
                self.path.display()
            ))),
            None if !self.stored_chunks()?.is_empty() => Err(Error::invalid(format!(
                "cannot resume {}: it holds chunks but no {attribute} record, so they may come from another job",
                self.path.display()
            ))),
            None => Ok(false),
        }
    }

    /// Temporary files left in the directory by writers that were killed
    /// mid-write (harmless: never read; removed by [`ZarrArray::remove_stale_temporaries`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be walked.
    pub fn stale_temporaries(&self) -> Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let mut stack = vec![self.path.clone()];
        while let Some(dir) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_temp_key) {
                    found.push(entry.path());
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Deletes the temporary files of killed writers; returns how many.
    ///
    /// # Errors
    /// [`Error::Io`] when one cannot be removed.
    pub fn remove_stale_temporaries(&self) -> Result<usize> {
        let stale = self.stale_temporaries()?;
        for path in &stale {
            fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        }
        Ok(stale.len())
    }
}
