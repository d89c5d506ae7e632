//! [`Verify`]: decode every stored chunk and check its checksum.

use std::sync::Mutex;

use crate::core::{ChunkSet, Element, Error, Result};
use crate::dispatch_dtype;
use serde_json::{Value, json};

use crate::distributed::Ranks;
use crate::exec::{Progress, Session, TaskSet, for_each_owned_task};
use crate::io::{ArrayRef, IntoArrayRef, ReadableArray};
use crate::ops::{ChunkPlan, Planned};

/// A chunk that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadChunk {
    /// Coordinates in the stored-chunk grid.
    pub chunk: Vec<u64>,
    /// Store key relative to the array directory (e.g. `c/0/3`).
    pub key: String,
    /// What the decoder reported.
    pub reason: String,
}

/// What a [`Verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Chunks in the grid.
    pub chunks_total: u64,
    /// Chunks written to disk (all were decoded).
    pub chunks_stored: u64,
    /// Decoded bytes checked.
    pub bytes_checked: u64,
    /// Chunks that failed, in C order.
    pub bad_chunks: Vec<BadChunk>,
    /// Whether the codec chain has a checksum (without one, only decoding
    /// errors can be detected).
    pub has_checksum: bool,
    /// Temporary files of killed writers found in the directory.
    pub stale_temporaries: usize,
}

impl VerifyReport {
    /// True when no chunk failed.
    pub fn is_ok(&self) -> bool {
        self.bad_chunks.is_empty()
    }
}

/// Decodes every stored chunk of an array, checking checksums, and lists
/// every chunk that fails. Chunks never written are not errors (they read as
/// the fill value).
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::{DType, exec::Session, ops::Verify};
/// use tenrso_ooc::store::{ArraySpec, ZarrArray};
/// # let dir = tempfile::tempdir()?;
/// let array = ZarrArray::create(dir.path().join("a"), &ArraySpec::new(vec![8], vec![4], DType::F32))?;
/// array.write_chunk(&[1], &tenrso_ooc::Block::from_vec(vec![4], vec![1.0f32; 4])?)?;
/// let report = Verify::new(&Arc::new(array)).plan(&Session::default())?.run()?;
/// assert!(report.is_ok());
/// assert_eq!((report.chunks_stored, report.chunks_total), (1, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verify {
    array: ArrayRef,
}

impl Verify {
    /// Verifies `array`.
    pub fn new(array: &impl IntoArrayRef) -> Self {
        Self {
            array: array.array_ref(),
        }
    }

    /// Plans the verification: lists the stored chunks.
    ///
    /// # Errors
    /// [`Error::Io`] when the store cannot be listed.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, ChunkPlan, VerifyReport>> {
        let array = self.array.clone();
        // Chunks never written are counted, not read.
        let stored = array.stored_chunk_set()?;
        let total_bytes = array.stored_nbytes(&stored);
        let plan = ChunkPlan {
            operation: format!("verify {}", array.path().display()),
            tasks: stored.len(),
            bytes_read: total_bytes,
            bytes_written: 0,
            task_bytes: array.chunk_working_set(),
            memory_limit: session.memory_limit(),
        };
        Ok(Planned::new(plan, move |_: &ChunkPlan, progress| {
            let bad = Mutex::new(Vec::new());
            progress.start("verify", total_bytes / session.ranks().size() as u64);
            let result = dispatch_dtype!(array.dtype(), T => check_chunks::<T>(&*array, &stored, &bad, session, progress));
            progress.finish();
            result?;
            let bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
            let mut bad_chunks = gather_bad_chunks(session.ranks(), bad);
            bad_chunks.sort_by(|a: &BadChunk, b| a.chunk.cmp(&b.chunk));
            Ok(VerifyReport {
                chunks_total: array.chunk_grid().num_chunks(),
                chunks_stored: stored.len(),
                bytes_checked: total_bytes,
                bad_chunks,
                has_checksum: array.has_checksum(),
                stale_temporaries: array.stale_temporaries()?.len(),
            })
        }))
    }
}

/// Every rank's bad chunks, on every rank (as JSON between ranks).
fn gather_bad_chunks(ranks: &dyn Ranks, mine: Vec<BadChunk>) -> Vec<BadChunk> {
    if !ranks.is_distributed() {
        return mine;
    }
    let as_json: Vec<Value> = mine
        .iter()
        .map(|b| json!({ "chunk": b.chunk, "key": b.key, "reason": b.reason }))
        .collect();
    let bytes = serde_json::to_vec(&as_json).unwrap_or_default();
    ranks
        .all_gather(&bytes)
        .iter()
        .filter_map(|b| serde_json::from_slice::<Vec<Value>>(b).ok())
        .flatten()
        .map(|v| BadChunk {
            chunk: v["chunk"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
            key: v["key"].as_str().unwrap_or_default().to_string(),
            reason: v["reason"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

fn check_chunks<T: Element>(
    array: &dyn ReadableArray,
    stored: &ChunkSet,
    bad: &Mutex<Vec<BadChunk>>,
    session: &Session,
    progress: &dyn Progress,
) -> Result<()> {
    let grid = array.chunk_grid();
    for_each_owned_task(
        session,
        TaskSet {
            count: stored.len() as usize,
            bytes_each: array.chunk_working_set(),
            what: "decoding one chunk",
        },
        progress,
        |i| match array.read_chunk::<T>(&grid.chunk_coords(stored.nth(i as u64).unwrap_or(0))) {
            Ok(block) => {
                let bytes = block.byte_len() as u64;
                session.metrics().bytes_read.add(bytes);
                Ok(bytes)
            }
            Err(Error::Corrupt {
                chunk, key, reason, ..
            }) => {
                bad.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(BadChunk { chunk, key, reason });
                Ok(0)
            }
            Err(other) => Err(other),
        },
    )
    .map(|_| ())
}
