//! [`BatchCommitter`]: the background thread that makes a store's chunk
//! writes durable in batches ([`Durability::Batch`](crate::store::Durability)).
//!
//! A writer puts the chunk in a temporary in its directory (as an
//! [`AtomicFile`]) and queues it here instead of syncing it. The committer
//! takes everything queued since its last batch, syncs the file system once
//! (`syncfs`: the temporaries' data), renames the temporaries over their
//! chunks, and syncs once more (the renames). A killed process therefore
//! leaves each chunk old or new — a queued temporary is not a chunk — and a
//! power cut loses at most the batches not yet committed.

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::store::AtomicFile;
use crate::store::atomic_write::parent_dir;

/// Bytes queued at most: a writer waits for the committer beyond this.
const MAX_QUEUED_BYTES: u64 = 128 << 20;

/// Temporaries queued at most (each costs a little bookkeeping).
const MAX_QUEUED_FILES: usize = 1024;

/// Queues written temporaries and commits them in batches on its own thread.
#[derive(Debug, Default)]
pub(crate) struct BatchCommitter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    queued: Vec<Pending>,
    queued_bytes: u64,
    /// The temporary holding the newest value of each chunk queued or being
    /// committed: reads of the store see it.
    newest: HashMap<PathBuf, PathBuf>,
    /// A batch is being committed.
    committing: bool,
    /// The first failure (kind and message); every later write and flush
    /// reports it.
    failure: Option<(ErrorKind, String)>,
    closing: bool,
}

#[derive(Debug)]
struct Pending {
    temp: PathBuf,
    target: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn failed(&self) -> Option<std::io::Error> {
        self.failure.as_ref().map(|(kind, message)| {
            std::io::Error::new(
                *kind,
                format!("a batch of chunk writes failed to commit: {message}"),
            )
        })
    }
}

impl BatchCommitter {
    /// Queues `file`, written and holding `bytes`, to be committed by the
    /// next batch. Waits while the queue is full.
    ///
    /// # Errors
    /// The failure of an earlier batch (the temporary is then removed).
    pub(crate) fn queue(&self, file: AtomicFile, bytes: u64) -> std::io::Result<()> {
        let mut state = self.shared.lock();
        loop {
            if let Some(err) = state.failed() {
                // Dropping the guard removes the temporary.
                drop(file);
                return Err(err);
            }
            let full = state.queued_bytes + bytes > MAX_QUEUED_BYTES
                || state.queued.len() >= MAX_QUEUED_FILES;
            if !full || state.queued.is_empty() {
                break;
            }
            state = self.shared.wait(state);
        }
        let (temp, target) = file.into_uncommitted();
        state.newest.insert(target.clone(), temp.clone());
        state.queued.push(Pending { temp, target });
        state.queued_bytes += bytes;
        drop(state);
        self.shared.changed.notify_all();
        self.start_thread()
    }

    fn start_thread(&self) -> std::io::Result<()> {
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            *thread = Some(
                std::thread::Builder::new()
                    .name("tenrso-commit".into())
                    .spawn(move || commit_batches(&shared))?,
            );
        }
        Ok(())
    }

    /// Waits until every queued write is committed.
    ///
    /// # Errors
    /// The failure of any batch so far.
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        let mut state = self.shared.lock();
        while !state.queued.is_empty() || state.committing {
            state = self.shared.wait(state);
        }
        state.failed().map_or(Ok(()), Err)
    }

    /// Opens the newest value of the chunk file `target`: its queued
    /// temporary while there is one, else the file itself.
    ///
    /// # Errors
    /// As [`File::open`].
    pub(crate) fn open(&self, target: &Path) -> std::io::Result<File> {
        // Held while opening, so the committer cannot rename the temporary
        // between the lookup and the open.
        let state = self.shared.lock();
        File::open(state.newest.get(target).map_or(target, PathBuf::as_path))
    }
}

impl Drop for BatchCommitter {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        if let Some(err) = self.shared.lock().failed() {
            tracing::warn!(error = %err, "chunk writes were lost");
        }
    }
}

/// The committer thread: commits whatever was queued meanwhile, batch after
/// batch, until the store closes with nothing queued.
fn commit_batches(shared: &Shared) {
    loop {
        let batch = {
            let mut state = shared.lock();
            while state.queued.is_empty() && !state.closing {
                state = shared.wait(state);
            }
            if state.queued.is_empty() {
                return;
            }
            state.committing = true;
            state.queued_bytes = 0;
            std::mem::take(&mut state.queued)
        };
        // Writers waiting for room go on while the batch commits.
        shared.changed.notify_all();
        let result = commit(shared, &batch);
        let mut state = shared.lock();
        state.committing = false;
        if let Err(err) = result
            && state.failure.is_none()
        {
            state.failure = Some((err.kind(), err.to_string()));
        }
        drop(state);
        shared.changed.notify_all();
    }
}

/// Syncs the batch's temporaries, renames them over their chunks and syncs
/// the renames. On failure the batch's remaining temporaries are removed.
fn commit(shared: &Shared, batch: &[Pending]) -> std::io::Result<()> {
    let forget = |state: &mut State, p: &Pending| {
        if state.newest.get(&p.target) == Some(&p.temp) {
            state.newest.remove(&p.target);
        }
    };
    let remove_all = |from: usize| {
        let mut state = shared.lock();
        for p in &batch[from..] {
            let _ = std::fs::remove_file(&p.temp);
            forget(&mut state, p);
        }
    };
    let Some(first) = batch.first() else {
        return Ok(());
    };
    // Any open file of the file system syncs all of it.
    let dir = match File::open(parent_dir(&first.target)) {
        Ok(dir) => dir,
        Err(err) => {
            remove_all(0);
            return Err(err);
        }
    };
    if let Err(err) = sync_file_system(&dir) {
        remove_all(0);
        return Err(err);
    }
    {
        let mut state = shared.lock();
        for (k, p) in batch.iter().enumerate() {
            if let Err(err) = std::fs::rename(&p.temp, &p.target) {
                drop(state);
                remove_all(k);
                return Err(std::io::Error::new(
                    err.kind(),
                    format!("renaming {} failed: {err}", p.target.display()),
                ));
            }
            forget(&mut state, p);
        }
    }
    sync_file_system(&dir)
}

/// `syncfs` on the file system holding `file`.
fn sync_file_system(file: &File) -> std::io::Result<()> {
    // SAFETY: `file` is an open descriptor for the duration of the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn queue(committer: &BatchCommitter, target: &Path, bytes: &[u8]) {
        let mut file = AtomicFile::create(target).unwrap();
        file.file().write_all(bytes).unwrap();
        committer.queue(file, bytes.len() as u64).unwrap();
    }

    #[test]
    fn queued_writes_are_read_back_then_committed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let committer = BatchCommitter::default();
        let target = dir.path().join("c0");
        for round in 0..50u8 {
            queue(&committer, &target, &[round; 100]);
            // The newest value is visible at once, committed or not.
            let mut read = Vec::new();
            std::io::Read::read_to_end(&mut committer.open(&target).unwrap(), &mut read).unwrap();
            assert_eq!(read, vec![round; 100]);
        }
        committer.flush().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), vec![49u8; 100]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporaries left: {names:?}");
    }

    #[test]
    fn a_failed_rename_fails_the_flush_and_every_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let committer = BatchCommitter::default();
        // A non-empty directory where the chunk goes: the rename fails.
        let target = dir.path().join("busy");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        queue(&committer, &target, b"data");
        let err = committer.flush().unwrap_err();
        assert!(err.to_string().contains("busy"), "{err}");
        let mut file = AtomicFile::create(dir.path().join("other")).unwrap();
        file.file().write_all(b"more").unwrap();
        assert!(committer.queue(file, 4).is_err());
        drop(committer);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["busy".to_string()], "temporaries removed");
    }

    #[test]
    fn dropping_the_committer_commits_what_was_queued() {
        let dir = tempfile::tempdir().unwrap();
        let committer = BatchCommitter::default();
        for k in 0..20u8 {
            queue(&committer, &dir.path().join(format!("c{k}")), &[k; 10]);
        }
        drop(committer);
        for k in 0..20u8 {
            assert_eq!(
                std::fs::read(dir.path().join(format!("c{k}"))).unwrap(),
                vec![k; 10]
            );
        }
    }
}
