//! The library's one error type.

use std::path::PathBuf;

use crate::core::{ByteSize, DType};

/// Every failure the library reports.
///
/// Variants name what is at fault — the file, the array and the chunk — so the
/// message alone tells a user where to look. Bad input gives one of these, never
/// a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a file or directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The path holds no readable Zarr v3 array.
    #[error("{}: not a Zarr v3 array: {reason}", path.display())]
    NotAnArray {
        /// The directory that was opened.
        path: PathBuf,
        /// Why it could not be opened.
        reason: String,
    },

    /// Creating an array where one already exists.
    #[error("{}: an array already exists here (remove it or choose another path)", path.display())]
    AlreadyExists {
        /// The directory that already holds an array.
        path: PathBuf,
    },

    /// A stored chunk failed to decode or its checksum did not match.
    #[error("array {}: chunk {chunk:?} (key `{key}`) is corrupt: {reason}", array.display())]
    Corrupt {
        /// The array directory.
        array: PathBuf,
        /// Coordinates of the chunk in the chunk grid.
        chunk: Vec<u64>,
        /// The chunk's store key, relative to the array directory.
        key: String,
        /// What the decoder reported.
        reason: String,
    },

    /// The array holds another element type than the one requested.
    #[error("array {}: stores {stored} elements, but {requested} was requested", array.display())]
    DtypeMismatch {
        /// The array directory.
        array: PathBuf,
        /// The element type on disk.
        stored: DType,
        /// The element type the caller asked for.
        requested: DType,
    },

    /// A chunk coordinate outside the chunk grid.
    #[error("array {}: chunk {chunk:?} is outside the chunk grid {grid:?}", array.display())]
    ChunkOutOfBounds {
        /// The array directory.
        array: PathBuf,
        /// The requested chunk coordinates.
        chunk: Vec<u64>,
        /// The number of chunks along each axis.
        grid: Vec<u64>,
    },

    /// Any other failure reported by the Zarr store for an array.
    #[error("array {}: {message}", array.display())]
    Store {
        /// The array directory.
        array: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A file whose content does not match its declared format (a bad `.npy`
    /// header, a raw file of the wrong size, …).
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument that cannot be used: a malformed shape, a chunk shape with
    /// a zero, a block of the wrong size, an unknown codec name, …
    #[error("{0}")]
    InvalidArgument(String),

    /// The work cannot run within the memory limit, refused before starting.
    #[error(
        "memory limit {limit} is too small: {what} needs at least {required}; raise the limit (ExecOptions::memory_limit) or {remedy}",
        limit = ByteSize(*limit),
        required = ByteSize(*required)
    )]
    MemoryLimit {
        /// The configured limit in bytes.
        limit: u64,
        /// The smallest amount the work needs, in bytes.
        required: u64,
        /// What needs it.
        what: String,
        /// What else would make it fit.
        remedy: Remedy,
    },

    /// Every spill directory is at its cap or out of space.
    #[error(
        "cannot spill {requested}: every spill directory is full ({detail}); add spill directories or raise their caps (ExecOptions::spill_dirs)",
        requested = ByteSize(*requested)
    )]
    SpillFull {
        /// Bytes that needed spilling.
        requested: u64,
        /// What each directory reported: what it holds, its cap and the room
        /// left, or the error that stopped the write.
        detail: String,
    },

    /// No tier of the spill area can hold an intermediate array: refused
    /// when planning, before any I/O, or when placing it at run time.
    #[error(
        "no spill tier can hold {what} ({bytes}): {tiers}; add a spill directory with room or raise a cap (ExecOptions::spill_dirs)",
        bytes = ByteSize(*bytes)
    )]
    TierFull {
        /// The intermediate (`einsum step 0 intermediate`).
        what: String,
        /// The most bytes it takes as stored.
        bytes: u64,
        /// Each tier: what it holds, its cap and the room left.
        tiers: String,
    },

    /// A spill file read back does not match what was written.
    #[error("spill file {} is corrupt: {reason}", path.display())]
    SpillCorrupt {
        /// The spill file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The memory pool could not grant a request.
    /// Built by the pool, with its figures.
    #[error(
        "memory limit {limit} reached: `{consumer}` asked for {requested} more while holding {held}, and {available} is available ({reason}); largest consumers: {largest}; raise the limit (ExecOptions::memory_limit) or use smaller chunks",
        limit = ByteSize(*limit),
        requested = ByteSize(*requested),
        held = ByteSize(*held),
        available = ByteSize(*available),
        largest = describe_consumers(largest)
    )]
    MemoryExhausted {
        /// The pool's limit in bytes.
        limit: u64,
        /// Bytes asked for.
        requested: u64,
        /// Bytes the asking consumer already held.
        held: u64,
        /// Bytes free in the pool at the time.
        available: u64,
        /// Name of the consumer that asked.
        consumer: String,
        /// The largest consumers and their bytes.
        largest: Vec<(String, u64)>,
        /// Why the request could not wait for memory.
        reason: String,
    },

    /// The run was cancelled through its session's
    /// [`CancelToken`](crate::exec::CancelToken) (or an interrupt mapped onto
    /// it). Reservations, spill files and temporaries are released; output
    /// chunks already written are kept for a resumed run.
    #[error("cancelled: the run was stopped before it finished; chunks already written are kept")]
    Cancelled,

    /// A broken invariant of the library itself (a bug, not bad input): the
    /// run stops with this instead of a panic.
    #[error("internal error (a bug in tenrso-ooc, please report it): {0}")]
    Internal(String),
}

/// `text` as an error message quotes it: whole when short, else its start
/// and end around an elision that says how long it is, so that one line
/// stays readable whatever the input.
pub(crate) fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const HEAD: usize = 60;
    const TAIL: usize = 40;
    let chars = text.chars().count();
    if chars <= HEAD + TAIL + 20 {
        return text.into();
    }
    let head: String = text.chars().take(HEAD).collect();
    let tail: String = text.chars().skip(chars - TAIL).collect();
    format!("{head}…({chars} characters)…{tail}").into()
}

/// Besides a higher limit, what makes work refused by
/// [`Error::MemoryLimit`] fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Smaller chunks (or tiles) make each task hold less.
    SmallerChunks,
    /// Larger chunks make fewer tasks: the plan's own list is what does not fit.
    LargerChunks,
    /// A lower rank makes a decomposition's model smaller.
    LowerRank,
}

impl std::fmt::Display for Remedy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Remedy::SmallerChunks => "use smaller chunks",
            Remedy::LargerChunks => "store the array in larger chunks (fewer tasks)",
            Remedy::LowerRank => "lower the rank",
        })
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::InvalidFile`]: `path` holds something malformed.
    pub fn invalid_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::InvalidFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidArgument`] from anything printable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// An [`Error::Internal`]: a broken invariant of the library.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The out-of-memory error of a pool of `limit` bytes (the one place it
    /// is built): `consumer`, holding `held` bytes, asked for `requested`
    /// more while `available` were free, and could not have them for
    /// `reason`; `largest` are the largest consumers, largest first.
    pub(crate) fn memory_exhausted(
        limit: u64,
        consumer: impl Into<String>,
        requested: u64,
        held: u64,
        available: u64,
        largest: Vec<(String, u64)>,
        reason: impl Into<String>,
    ) -> Self {
        Self::MemoryExhausted {
            limit,
            requested,
            held,
            available,
            consumer: consumer.into(),
            largest,
            reason: reason.into(),
        }
    }
}

/// Formats `(name, bytes)` pairs as `cache 96.00 MiB, worker 16.00 MiB`.
fn describe_consumers(list: &[(String, u64)]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|(n, b)| format!("{n} {}", ByteSize(*b)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text of a caught panic's payload (`panic!` with a message gives a
/// `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
