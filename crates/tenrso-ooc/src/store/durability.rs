//! [`Durability`]: how chunk writes reach the disk.

use std::fmt;
use std::str::FromStr;

use crate::core::{Error, Result};

/// How a store's chunk writes reach the disk, and what a killed writer or a
/// power cut leaves behind. Array metadata (`zarr.json`) is always written
/// as with [`Chunk`](Self::Chunk).
///
/// | mode | a killed writer leaves | after a power cut | cost on the compute threads |
/// |---|---|---|---|
/// | `chunk` | every chunk old or new | every chunk old or new | one `fsync` + a directory `fsync` per chunk |
/// | `batch` (default) | every chunk old or new | every chunk old or new; the last batch's chunks may be missing (recomputed by `--resume`) | none: a background committer syncs batches |
/// | `none` | chunks being written may be torn (`verify` names them) | anything the kernel had not written | none, no sync at all |
///
/// `batch` writes each chunk to a temporary in its directory, as `chunk`
/// does, but instead of syncing it there it hands it to the store's
/// committer thread, which syncs every temporary written meanwhile with one
/// `syncfs`, renames them over their chunks, and syncs again so the renames
/// last. A write returns as soon as its temporary is written (waiting only
/// when 128 MiB are already queued); reads of the same store see the queued
/// chunks; [`ZarrArray::flush`](crate::store::ZarrArray::flush) waits for
/// the queue and reports a failed sync. Operations flush their outputs
/// before they return (and at each stage boundary), so a finished
/// operation's result is as durable as with `chunk`.
///
/// `none` writes chunks in place, without temporaries or syncs: for scratch
/// that is thrown away on failure. A chunk being written when the writer is
/// killed can be torn; its checksum (crc32c, on by default) then fails and
/// `verify` names it. Remove the chunks `verify` names before `--resume`, which
/// skips every chunk present.
///
/// ```
/// use tenrso_ooc::store::Durability;
/// assert_eq!("batch".parse::<Durability>()?, Durability::Batch);
/// assert_eq!(Durability::default(), Durability::Batch);
/// assert_eq!(Durability::Chunk.to_string(), "chunk");
/// assert!("fast".parse::<Durability>().is_err());
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Durability {
    /// Each chunk synced and renamed in place before the write returns.
    Chunk,
    /// Chunks synced and renamed in batches by a background committer.
    #[default]
    Batch,
    /// Chunks written in place, never synced (scratch).
    None,
}

impl Durability {
    /// Every mode, in the order of the table above.
    pub const ALL: [Durability; 3] = [Self::Chunk, Self::Batch, Self::None];

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chunk => "chunk",
            Self::Batch => "batch",
            Self::None => "none",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Chunk,
            1 => Self::Batch,
            _ => Self::None,
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown durability `{s}` (expected chunk, batch or none)"
                ))
            })
    }
}
