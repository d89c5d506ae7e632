//! Atomic file replacement: the one way the library puts a file in place.
//!
//! Every file the library writes for keeps — chunks and metadata of stored
//! arrays, exported `.npy`/raw/Arrow/Parquet files, decomposition outputs and
//! checkpoints — goes through [`AtomicFile`] (or [`write_atomically`], its
//! one-shot form):
//!
//! 1. a temporary file is created in the target's directory, under a name
//!    unique to this process and this call (`.NAME.tenrso-tmp.PID.N`, created
//!    with `O_EXCL`, so two writers never share one);
//! 2. the caller writes it (through [`AtomicFile::file`] or by opening
//!    [`AtomicFile::path`]);
//! 3. [`AtomicFile::commit`] flushes it with `fsync`, renames it over the
//!    target and `fsync`s the directory, so the new entry survives a crash.
//!
//! A reader, a crash or a killed writer therefore sees the old file or the new
//! one, never a torn mix. On any error, and when the guard is dropped without
//! a commit, the temporary is removed. Temporaries a killed process left
//! behind carry [`TEMP_MARKER`] in their names, so store listings skip them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::{Error, Result};

/// Marker in the names of temporary files, so listings can skip them.
pub(crate) const TEMP_MARKER: &str = ".tenrso-tmp.";

/// Distinguishes the temporaries of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many names [`AtomicFile::create`] tries when one is taken (a leftover
/// of a killed process that had the same pid).
const NAME_ATTEMPTS: u32 = 16;

/// A temporary file that replaces `target` atomically when committed, and is
/// removed when dropped uncommitted (see the module docs of `store::atomic_write`).
///
/// ```
/// use std::io::Write;
/// use tenrso_ooc::store::AtomicFile;
/// # let dir = tempfile::tempdir()?;
/// let target = dir.path().join("out.bin");
/// let mut file = AtomicFile::create(&target)?;
/// file.file().write_all(b"all or nothing")?;
/// assert!(!target.exists());
/// file.commit()?;
/// assert_eq!(std::fs::read(&target)?, b"all or nothing");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: File,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary for `target`, empty, in `target`'s directory
    /// (which must exist).
    ///
    /// # Errors
    /// [`Error::Io`] naming `target` when the temporary cannot be created.
    pub fn create(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref();
        Self::create_io(target).map_err(|e| Error::io(target, e))
    }

    /// [`create`](Self::create) with the bare I/O error (for the store, which
    /// reports through zarrs' error type).
    pub(crate) fn create_io(target: &Path) -> std::io::Result<Self> {
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let mut last = None;
        for _ in 0..NAME_ATTEMPTS {
            let temp = target.with_file_name(format!(
                ".{name}{TEMP_MARKER}{}.{}",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(file) => {
                    return Ok(Self {
                        target: target.to_path_buf(),
                        temp,
                        file,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
    }

    /// The temporary file, open for reading and writing.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary's path, for writers that open the file themselves.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The file this one replaces on commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the temporary to disk, renames it over the target and syncs
    /// the directory. Writes through other handles of the temporary are
    /// flushed too (`fsync` works on the file, not the handle).
    ///
    /// # Errors
    /// [`Error::Io`] naming the target; the temporary is removed and the
    /// target keeps its old content unless the rename itself was done (then
    /// only the directory sync failed).
    pub fn commit(self) -> Result<()> {
        let target = self.target.clone();
        self.commit_io().map_err(|e| Error::io(target, e))
    }

    /// Gives up the guard without committing: the temporary stays, for a
    /// [`BatchCommitter`](crate::store::batch_commit::BatchCommitter) to
    /// commit later. Returns the temporary's path and the target's.
    pub(crate) fn into_uncommitted(mut self) -> (PathBuf, PathBuf) {
        self.committed = true;
        (
            std::mem::take(&mut self.temp),
            std::mem::take(&mut self.target),
        )
    }

    /// [`commit`](Self::commit) with the bare I/O error.
    pub(crate) fn commit_io(mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        sync_dir(parent_dir(&self.target))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` as the new content of `path`, atomically (see the
/// module docs of `store::atomic_write`).
///
/// # Errors
/// [`Error::Io`] naming `path`; the file keeps its old content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_parts_atomically(path, &[bytes]).map_err(|e| Error::io(path, e))
}

/// Writes the concatenation of `parts` as the new content of `path`,
/// atomically, without joining them in memory.
pub(crate) fn write_parts_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut file = AtomicFile::create_io(path)?;
    for part in parts {
        file.file().write_all(part)?;
    }
    file.commit_io()
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs a directory's entries (new, renamed and removed files) to disk.
///
/// Filesystems that cannot sync a directory, and directories that cannot be
/// opened for reading, are passed over: the entries are then as durable as
/// that filesystem makes them.
///
/// # Errors
/// The I/O error of a sync the filesystem attempted and failed (`EIO`).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let handle = match File::open(dir) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(e),
    };
    match handle.sync_all() {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOTSUP | libc::EBADF)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.npy");
        std::fs::write(&target, b"old").unwrap();
        write_atomically(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        write_parts_atomically(&target, &[b"pa", b"rts"]).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"parts");
        assert_eq!(names(dir.path()), vec!["a.npy".to_string()]);
    }

    #[test]
    fn an_error_leaves_no_temporary_and_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails after the
        // temporary was written and synced.
        let target = dir.path().join("busy");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        let err = write_atomically(&target, b"data").unwrap_err();
        assert!(
            matches!(err, Error::Io { ref path, .. } if path == &target),
            "{err}"
        );
        assert_eq!(names(dir.path()), vec!["busy".to_string()]);
        assert_eq!(names(&target), vec!["inside".to_string()]);
        // A missing directory fails at creation, naming the target.
        let missing = dir.path().join("no/such/file");
        let err = AtomicFile::create(&missing).unwrap_err();
        assert!(
            matches!(err, Error::Io { ref path, .. } if path == &missing),
            "{err}"
        );
    }

    #[test]
    fn a_guard_dropped_without_commit_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("export.arrow");
        std::fs::write(&target, b"previous").unwrap();
        {
            let mut file = AtomicFile::create(&target).unwrap();
            file.file().write_all(b"half an expo").unwrap();
            assert!(file.path().exists());
            assert_eq!(file.target(), target);
            assert!(
                file.path()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(TEMP_MARKER)
            );
        }
        assert_eq!(names(dir.path()), vec!["export.arrow".to_string()]);
        assert_eq!(std::fs::read(&target).unwrap(), b"previous");
        // Written through another handle of the temporary, then committed.
        let file = AtomicFile::create(&target).unwrap();
        std::fs::write(file.path(), b"complete").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"complete");
        assert_eq!(names(dir.path()), vec!["export.arrow".to_string()]);
    }

    #[test]
    fn concurrent_writers_of_one_target_use_distinct_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shared");
        let guards: Vec<AtomicFile> = (0..8)
            .map(|_| AtomicFile::create(&target).unwrap())
            .collect();
        let mut temps: Vec<&Path> = guards.iter().map(AtomicFile::path).collect();
        temps.sort();
        temps.dedup();
        assert_eq!(temps.len(), 8);
        drop(guards);
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let target = &target;
                s.spawn(move || write_atomically(target, &[i; 4096]).unwrap());
            }
        });
        let content = std::fs::read(&target).unwrap();
        assert_eq!(content.len(), 4096);
        assert!(content.iter().all(|&b| b == content[0]));
        assert_eq!(names(dir.path()), vec!["shared".to_string()]);
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("x.npy")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/x.npy")), Path::new("d"));
        sync_dir(Path::new(".")).unwrap();
    }
}
