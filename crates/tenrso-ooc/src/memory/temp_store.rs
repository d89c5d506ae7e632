//! [`TempStore`]: an intermediate array's directory in the spill area.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::memory::SpillManager;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The directory of a temporary stored array (an einsum intermediate, an
/// operand rechunked first, a Gram matrix) in the first spill directory,
/// removed with everything in it when dropped — after use, on error and on
/// cancellation alike. The spill area itself is removed when its session
/// ends (or on a signal), so nothing outlives the process.
#[derive(Debug)]
pub struct TempStore {
    path: PathBuf,
}

impl TempStore {
    /// A fresh path for a temporary store named after `what`.
    pub fn new(spill: &SpillManager, what: &str) -> Self {
        let dir = spill
            .dirs()
            .into_iter()
            .next()
            .unwrap_or_else(std::env::temp_dir);
        Self {
            path: dir.join(format!(
                "temp-{}-{what}.zarr",
                NEXT.fetch_add(1, Ordering::Relaxed)
            )),
        }
    }

    /// Where the store goes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
