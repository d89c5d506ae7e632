//! [`TempStore`]: an intermediate array's directory in the spill area.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::{Error, Result};
use crate::memory::spill::is_no_room;
use crate::memory::{SpillManager, TierReservation};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The directory of a temporary stored array (an einsum intermediate, an
/// operand rechunked first, a Gram matrix) in the first tier of the spill
/// area with room for it, which holds that room until the store is
/// dropped; removed with everything in it when dropped — after use, on
/// error and on cancellation alike. The spill area itself is removed when
/// its session ends (or on a signal), so nothing outlives the process.
#[derive(Debug)]
pub struct TempStore {
    path: PathBuf,
    what: String,
    room: TierReservation,
}

impl TempStore {
    /// A fresh path for a temporary store named after `what`, taking at
    /// most `bytes` as stored, in the first tier that can hold them.
    ///
    /// # Errors
    /// [`crate::Error::TierFull`] when no tier can.
    pub fn new(spill: &SpillManager, what: &str, bytes: u64) -> Result<Self> {
        let room = spill.reserve(bytes, what)?;
        let path = room.dir().join(format!(
            "temp-{}-{}.zarr",
            NEXT.fetch_add(1, Ordering::Relaxed),
            what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ));
        Ok(Self {
            path,
            what: what.to_string(),
            room,
        })
    }

    /// Where the store goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of the tier it is in, 0 for the first.
    pub fn tier(&self) -> usize {
        self.room.tier()
    }

    /// `err` from writing the store, as [`Error::TierFull`] when its file
    /// system ran out of space (something else filled it meanwhile).
    pub fn no_space_as_tier_full(&self, err: Error, spill: &SpillManager) -> Error {
        match &err {
            Error::Io { path, source } if path.starts_with(&self.path) && is_no_room(source) => {
                Error::TierFull {
                    what: format!(
                        "{} (its file system filled up while writing {})",
                        self.what,
                        path.display()
                    ),
                    bytes: self.room.bytes(),
                    tiers: spill.describe_tiers(),
                }
            }
            _ => err,
        }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        // Removed before the room is given back (fields drop after this).
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
