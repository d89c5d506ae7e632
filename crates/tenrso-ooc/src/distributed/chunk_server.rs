//! Serving a rank's node-local chunks to the other ranks of its job: which
//! stores this process serves ([`serve`]), the request a rank sends for
//! one chunk ([`chunk_request`]) and the answer its owner gives
//! ([`answer`]): the chunk's stored bytes, as written (encoded, with their
//! checksum), read from the owner's own copy of the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::core::{Error, Result};
use crate::telemetry::Metrics;

/// What one process serves: by (rank, the name every rank knows a store
/// by), the directory of that rank's copy and its session's metrics.
type Served = HashMap<(usize, String), (PathBuf, Arc<Metrics>)>;

static SERVED: Mutex<Option<Served>> = Mutex::new(None);

fn served() -> std::sync::MutexGuard<'static, Option<Served>> {
    SERVED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves the store at `dir` as rank `rank`'s copy of `name` until dropped.
#[derive(Debug)]
pub(crate) struct Serving {
    rank: usize,
    name: String,
}

/// Starts serving `dir` as `rank`'s copy of the store called `name`; what
/// it sends is counted in `metrics`.
pub(crate) fn serve(rank: usize, name: &str, dir: &Path, metrics: Arc<Metrics>) -> Serving {
    served()
        .get_or_insert_with(HashMap::new)
        .insert((rank, name.to_string()), (dir.to_path_buf(), metrics));
    Serving {
        rank,
        name: name.to_string(),
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(map) = served().as_mut() {
            map.remove(&(self.rank, std::mem::take(&mut self.name)));
        }
    }
}

/// The request for chunk `key` (`c/0/3`) of the store called `name`.
pub(crate) fn chunk_request(name: &str, key: &str) -> Vec<u8> {
    let mut bytes = (name.len() as u32).to_le_bytes().to_vec();
    bytes.extend(name.as_bytes());
    bytes.extend(key.as_bytes());
    bytes
}

const ABSENT: u8 = 0;
const FOUND: u8 = 1;
const FAILED: u8 = 2;

/// Rank `rank`'s answer to `request`: `[1]` and the chunk file's bytes,
/// `[0]` when the chunk was never written, `[2]` and a message when the
/// request cannot be answered.
/// The request and the answer are counted in the serving session's
/// metrics (received, sent).
pub(crate) fn answer(rank: usize, request: &[u8]) -> Vec<u8> {
    let mut metrics = None;
    let answer = match find(rank, request, &mut metrics) {
        Ok(Some(bytes)) => std::iter::once(FOUND).chain(bytes).collect(),
        Ok(None) => vec![ABSENT],
        Err(message) => std::iter::once(FAILED)
            .chain(message.into_bytes())
            .collect(),
    };
    if let Some(metrics) = metrics {
        metrics.bytes_received.add(request.len() as u64);
        metrics.bytes_sent.add(answer.len() as u64);
    }
    answer
}

fn find(
    rank: usize,
    request: &[u8],
    metrics: &mut Option<Arc<Metrics>>,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let (len, rest) = request
        .split_first_chunk::<4>()
        .ok_or("a malformed chunk request")?;
    let (name, key) = rest
        .split_at_checked(u32::from_le_bytes(*len) as usize)
        .ok_or("a malformed chunk request")?;
    let (name, key) = (String::from_utf8_lossy(name), String::from_utf8_lossy(key));
    // A store key: `c` and chunk coordinates, nothing that leaves the store.
    if key.is_empty()
        || key.split('/').any(|part| part.is_empty() || part == "..")
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '.')
    {
        return Err(format!("rank {rank} refuses the chunk key {key:?}"));
    }
    let (dir, served_by) = served()
        .as_ref()
        .and_then(|m| m.get(&(rank, name.to_string())).cloned())
        .ok_or_else(|| format!("rank {rank} serves no store called {name}"))?;
    *metrics = Some(served_by);
    let path = dir.join(&*key);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("rank {rank} cannot read {}: {e}", path.display())),
    }
}

/// The chunk bytes in an answer from rank `from`; `None` for a chunk never
/// written.
///
/// # Errors
/// [`Error::Internal`] with the owner's message.
pub(crate) fn parse_answer(from: usize, mut answer: Vec<u8>) -> Result<Option<Vec<u8>>> {
    match answer.first().copied() {
        Some(FOUND) => {
            answer.remove(0);
            Ok(Some(answer))
        }
        Some(ABSENT) => Ok(None),
        _ => Err(Error::internal(format!(
            "fetching a chunk from rank {from}: {}",
            String::from_utf8_lossy(answer.get(1..).unwrap_or_default())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_its_chunks_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c/1")).unwrap();
        std::fs::write(dir.path().join("c/1/2"), b"chunk").unwrap();
        let metrics = Arc::new(Metrics::default());
        let serving = serve(7, "step", dir.path(), metrics.clone());
        let ask = |key: &str| parse_answer(7, answer(7, &chunk_request("step", key)));
        assert_eq!(ask("c/1/2").unwrap(), Some(b"chunk".to_vec()));
        assert_eq!(metrics.bytes_sent.get(), 6, "the status byte and the chunk");
        assert_eq!(metrics.bytes_received.get(), 4 + 4 + 5, "the request");
        assert_eq!(ask("c/0/0").unwrap(), None);
        for hostile in ["../secret", "c/../../x", "/etc/passwd", "c//1", ""] {
            let err = ask(hostile).unwrap_err().to_string();
            assert!(err.contains("refuses"), "{hostile}: {err}");
        }
        assert!(answer(6, &chunk_request("step", "c/1/2"))[0] == FAILED);
        drop(serving);
        let err = ask("c/1/2").unwrap_err().to_string();
        assert!(err.contains("serves no store"), "{err}");
        assert!(parse_answer(7, answer(7, &[1, 2])).is_err());
    }
}
