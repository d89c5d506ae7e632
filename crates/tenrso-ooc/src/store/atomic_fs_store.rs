//! [`AtomicFsStore`]: a Zarr filesystem store whose writes are atomic.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator, InvalidByteRangeError};
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, StorePrefixes,
    WritableStorageTraits, store_set_partial_many,
};

use crate::store::AtomicFile;
use crate::store::Durability;
use crate::store::atomic_write::{TEMP_MARKER, parent_dir, sync_dir};
use crate::store::batch_commit::BatchCommitter;
use crate::store::uncached_write::{
    UNCACHED_WRITE_MIN_BYTES, uncached_writes_enabled, write_uncached,
};

/// A Zarr v3 filesystem store (the layout of zarr-python's `LocalStore`)
/// whose every write is atomic: the value goes through
/// [`AtomicFile`](crate::store::AtomicFile) (a temporary file in the same
/// directory, flushed with `fsync`, renamed over the key, the directory
/// synced), and new directories are synced into their parents.
///
/// A reader, or a resumed job, therefore sees each key either with its old
/// value or its new one, never a torn mix, even if the writer is killed.
/// Listings skip leftover temporary files of killed writers. Reads are
/// positioned reads of the key's file; the store keeps no per-key state
/// beyond the writes queued for its committer, so its memory does not grow
/// with the number of chunks touched.
///
/// Chunk writes follow the store's [`Durability`] (`chunk`, as above, until
/// [`set_durability`](Self::set_durability) says otherwise); `zarr.json`
/// documents are always written as with `chunk`.
#[derive(Debug)]
pub struct AtomicFsStore {
    base: PathBuf,
    durability: AtomicU8,
    /// Chunk files of [`UNCACHED_WRITE_MIN_BYTES`] or more are written
    /// around the page cache (see [`set_uncached_writes`](Self::set_uncached_writes)).
    uncached_writes: AtomicBool,
    /// Commits the writes of [`Durability::Batch`]; started on first use.
    committer: OnceLock<BatchCommitter>,
}

impl AtomicFsStore {
    /// A store rooted at the directory `base` (created on first write).
    pub fn new(base: impl AsRef<Path>) -> Self {
        Self {
            base: base.as_ref().to_path_buf(),
            durability: AtomicU8::new(Durability::Chunk.to_u8()),
            uncached_writes: AtomicBool::new(false),
            committer: OnceLock::new(),
        }
    }

    /// How chunk writes from now on reach the disk.
    pub fn set_durability(&self, durability: Durability) {
        self.durability.store(durability.to_u8(), Ordering::Relaxed);
    }

    /// How chunk writes reach the disk.
    pub fn durability(&self) -> Durability {
        Durability::from_u8(self.durability.load(Ordering::Relaxed))
    }

    /// Whether chunk files of [`UNCACHED_WRITE_MIN_BYTES`] or more are from
    /// now on written around the page cache (`O_DIRECT`, where the
    /// filesystem takes it and [`NO_UNCACHED_WRITES_VAR`] is unset): for
    /// results written once and not read again soon. Off for a new store.
    ///
    /// [`NO_UNCACHED_WRITES_VAR`]: crate::store::NO_UNCACHED_WRITES_VAR
    pub fn set_uncached_writes(&self, on: bool) {
        self.uncached_writes.store(on, Ordering::Relaxed);
    }

    /// Waits until every chunk written so far is durable (commits the
    /// queue of [`Durability::Batch`]; nothing to do for the others).
    ///
    /// # Errors
    /// The failure of any batch committed since the store was opened.
    pub fn flush(&self) -> std::io::Result<()> {
        self.committer.get().map_or(Ok(()), BatchCommitter::flush)
    }

    /// Opens the file holding the newest value of `key` (a queued
    /// temporary, while its batch is not committed).
    ///
    /// # Errors
    /// As [`File::open`] (`NotFound` for a key never written).
    pub fn open_key(&self, key: &StoreKey) -> std::io::Result<File> {
        let path = self.key_path(key);
        match self.committer.get() {
            Some(committer) => committer.open(&path),
            None => File::open(path),
        }
    }

    /// The directory the store lives in.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The file that holds `key`.
    pub fn key_path(&self, key: &StoreKey) -> PathBuf {
        self.base.join(key.as_str())
    }

    fn prefix_path(&self, prefix: &StorePrefix) -> PathBuf {
        self.base.join(prefix.as_str())
    }

    /// Writes the concatenation of `parts` as the value of `key`, atomically
    /// (temporary file, fsync, rename), without joining them in memory.
    ///
    /// # Errors
    /// The I/O error; the key keeps its old value.
    pub fn set_parts(&self, key: &StoreKey, parts: &[&[u8]]) -> std::io::Result<()> {
        self.write_atomically_parts(key, parts)
    }

    fn write_atomically(&self, key: &StoreKey, value: &[u8]) -> std::io::Result<()> {
        self.write_atomically_parts(key, &[value])
    }

    fn write_atomically_parts(&self, key: &StoreKey, parts: &[&[u8]]) -> std::io::Result<()> {
        let path = self.key_path(key);
        let dir = path.parent().unwrap_or(&self.base);
        let metadata = key.as_str().rsplit('/').next() == Some(METADATA_NAME);
        let durability = if metadata {
            Durability::Chunk
        } else {
            self.durability()
        };
        let bytes: usize = parts.iter().map(|p| p.len()).sum();
        let uncached = !metadata
            && bytes >= UNCACHED_WRITE_MIN_BYTES
            && self.uncached_writes.load(Ordering::Relaxed)
            && uncached_writes_enabled();
        match durability {
            Durability::Chunk => {
                create_dirs(dir, true)?;
                let mut file = AtomicFile::create_io(&path)?;
                let temp = file.path().to_path_buf();
                fill(file.file(), parts, uncached.then_some(temp.as_path()))?;
                file.commit_io()
            }
            Durability::Batch => {
                // The committer's syncs make the new directories last too.
                create_dirs(dir, false)?;
                let mut file = AtomicFile::create_io(&path)?;
                let temp = file.path().to_path_buf();
                fill(file.file(), parts, uncached.then_some(temp.as_path()))?;
                self.committer
                    .get_or_init(BatchCommitter::default)
                    .queue(file, bytes as u64)
            }
            Durability::None => {
                create_dirs(dir, false)?;
                let mut file = File::create(&path)?;
                fill(&mut file, parts, uncached.then_some(path.as_path()))
            }
        }
    }

    /// Every key under `dir` (a path inside the store), skipping temporaries.
    fn walk(&self, dir: &Path, keys: &mut StoreKeys) -> Result<(), StorageError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.walk(&entry.path(), keys)?;
            } else if kind.is_file()
                && let Some(key) = self.key_of(&entry.path())
            {
                keys.push(key);
            }
        }
        Ok(())
    }

    fn key_of(&self, path: &Path) -> Option<StoreKey> {
        let rel = path.strip_prefix(&self.base).ok()?.to_str()?;
        if is_temp_key(rel) {
            return None;
        }
        StoreKey::new(rel).ok()
    }
}

/// Writes `parts` into the empty `file`: around the page cache when
/// `uncached` names the file's path and its filesystem takes that, else
/// through `file`.
fn fill(file: &mut File, parts: &[&[u8]], uncached: Option<&Path>) -> std::io::Result<()> {
    if let Some(path) = uncached
        && write_uncached(path, parts)?
    {
        return Ok(());
    }
    for part in parts {
        file.write_all(part)?;
    }
    Ok(())
}

/// The name of a Zarr v3 metadata document.
const METADATA_NAME: &str = "zarr.json";

/// Creates `dir` and any missing parents; with `durably`, syncs each new
/// directory into its parent so the directory entries survive a crash.
fn create_dirs(dir: &Path, durably: bool) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, durably)?;
    }
    match fs::create_dir(dir) {
        Ok(()) if durably => sync_dir(parent_dir(dir)),
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// True for the name of a temporary file left by a killed writer.
pub(crate) fn is_temp_key(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.contains(TEMP_MARKER))
}

impl ReadableStorageTraits for AtomicFsStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let file = match self.open_key(key) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata()?.len();
        let mut out = Vec::new();
        for range in byte_ranges {
            let (start, end) = match range {
                ByteRange::FromStart(offset, None) => (Some(offset), Some(size)),
                ByteRange::FromStart(offset, Some(len)) => (Some(offset), offset.checked_add(len)),
                ByteRange::Suffix(len) => (size.checked_sub(len), Some(size)),
            };
            let (Some(start), Some(end)) = (start, end) else {
                return Err(InvalidByteRangeError::new(range, size).into());
            };
            if end > size || start > end {
                return Err(InvalidByteRangeError::new(range, size).into());
            }
            let mut buffer = vec![0u8; (end - start) as usize];
            file.read_exact_at(&mut buffer, start)?;
            out.push(Ok(Bytes::from(buffer)));
        }
        Ok(Some(Box::new(out.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        match self.open_key(key).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl ListableStorageTraits for AtomicFsStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        let mut keys = Vec::new();
        self.walk(&self.base, &mut keys)?;
        keys.sort();
        Ok(keys)
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        let mut keys = Vec::new();
        self.walk(&self.prefix_path(prefix), &mut keys)?;
        keys.sort();
        Ok(keys)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let (mut keys, mut prefixes): (StoreKeys, StorePrefixes) = (Vec::new(), Vec::new());
        let dir = self.prefix_path(prefix);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StoreKeysPrefixes::new(keys, prefixes));
            }
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if let Some(key) = self.key_of(&entry.path()) {
                    prefixes.push(
                        StorePrefix::new(format!("{}/", key.as_str()))
                            .map_err(|e| StorageError::Other(e.to_string()))?,
                    );
                }
            } else if kind.is_file()
                && let Some(key) = self.key_of(&entry.path())
            {
                keys.push(key);
            }
        }
        keys.sort();
        prefixes.sort();
        Ok(StoreKeysPrefixes::new(keys, prefixes))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let mut total = 0;
        for key in self.list_prefix(prefix)? {
            total += self.size_key(&key)?.unwrap_or(0);
        }
        Ok(total)
    }
}

impl WritableStorageTraits for AtomicFsStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        Ok(self.write_atomically(key, &value)?)
    }

    /// Rewrites the whole value (read, patch, atomic replace): a partial
    /// in-place write could be torn.
    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        store_set_partial_many(self, key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        // A queued write of the key would come back after the erase.
        self.flush()?;
        match fs::remove_file(self.key_path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.flush()?;
        match fs::remove_dir_all(self.prefix_path(prefix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn set_replaces_the_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path());
        let key = StoreKey::new("c/0/1").unwrap();
        store.set(&key, Bytes::from_static(b"old value")).unwrap();
        let inode_before = fs::metadata(store.key_path(&key)).unwrap().ino();
        store.set(&key, Bytes::from_static(b"new")).unwrap();
        // A rename puts a new inode in place; an in-place rewrite would keep it.
        assert_ne!(
            fs::metadata(store.key_path(&key)).unwrap().ino(),
            inode_before
        );
        assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path().join("c/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("1")]);
    }

    #[test]
    fn each_durability_puts_chunks_in_place_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path());
        let key = StoreKey::new("c/0/1").unwrap();
        let ino = |store: &AtomicFsStore| fs::metadata(store.key_path(&key)).unwrap().ino();
        // Batch: the write is queued as a temporary, read back at once,
        // and in place (by rename: a new inode) after a flush.
        store.set_durability(Durability::Batch);
        assert_eq!(store.durability(), Durability::Batch);
        for round in 0..20u8 {
            store.set(&key, Bytes::from(vec![round; 64])).unwrap();
            assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), &[round; 64]);
            assert_eq!(store.size_key(&key).unwrap(), Some(64));
        }
        store.flush().unwrap();
        assert_eq!(fs::read(store.key_path(&key)).unwrap(), vec![19u8; 64]);
        assert_eq!(fs::read_dir(dir.path().join("c/0")).unwrap().count(), 1);
        // None: rewritten in place (the same inode), no temporary.
        store.set_durability(Durability::None);
        let before = ino(&store);
        store.set(&key, Bytes::from_static(b"scratch")).unwrap();
        assert_eq!(ino(&store), before);
        assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), b"scratch");
        // Documents are always replaced atomically.
        let document = StoreKey::new("zarr.json").unwrap();
        store.set(&document, Bytes::from_static(b"{}")).unwrap();
        let first = fs::metadata(dir.path().join("zarr.json")).unwrap().ino();
        store.set(&document, Bytes::from_static(b"{ }")).unwrap();
        assert_ne!(
            fs::metadata(dir.path().join("zarr.json")).unwrap().ino(),
            first
        );
        // Chunk: renamed into place before `set` returns.
        store.set_durability(Durability::Chunk);
        store.set(&key, Bytes::from_static(b"durable")).unwrap();
        assert_ne!(ino(&store), before);
    }

    #[test]
    fn large_chunks_go_around_the_page_cache_only_when_asked() {
        use crate::store::uncached_write::tests::cached_bytes;
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path());
        let large = StoreKey::new("c/0/0").unwrap();
        let small = StoreKey::new("c/0/1").unwrap();
        let value = |seed: u8, len: usize| -> Vec<u8> {
            (0..len).map(|i| (i % 253) as u8 ^ seed).collect()
        };
        let len = UNCACHED_WRITE_MIN_BYTES + 4;
        // Off by default: written through the page cache.
        store.set(&large, Bytes::from(value(1, len))).unwrap();
        assert!(cached_bytes(&store.key_path(&large)) >= UNCACHED_WRITE_MIN_BYTES);
        store.set_uncached_writes(true);
        for (round, durability) in [Durability::Chunk, Durability::Batch, Durability::None]
            .into_iter()
            .enumerate()
        {
            store.set_durability(durability);
            let new = value(round as u8 + 2, len);
            store.set(&large, Bytes::from(new.clone())).unwrap();
            store.set(&small, Bytes::from(value(7, 4096))).unwrap();
            store.flush().unwrap();
            let path = store.key_path(&large);
            // (None rewrites the old file in place, whose pages were cached.)
            assert_eq!(cached_bytes(&path), 0, "{durability:?}");
            assert!(cached_bytes(&store.key_path(&small)) > 0, "{durability:?}");
            assert_eq!(store.get(&large).unwrap().unwrap().as_ref(), &new[..]);
            assert_eq!(fs::read_dir(dir.path().join("c/0")).unwrap().count(), 2);
        }
    }

    #[test]
    fn listings_skip_leftover_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path());
        store
            .set(&StoreKey::new("c/0").unwrap(), Bytes::from_static(b"x"))
            .unwrap();
        store
            .set(
                &StoreKey::new("zarr.json").unwrap(),
                Bytes::from_static(b"{}"),
            )
            .unwrap();
        fs::write(
            dir.path().join("c").join(format!(".1{TEMP_MARKER}99.0")),
            b"torn",
        )
        .unwrap();
        let keys: Vec<String> = store
            .list()
            .unwrap()
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        assert_eq!(keys, vec!["c/0".to_string(), "zarr.json".to_string()]);
        let top = store.list_dir(&StorePrefix::root()).unwrap();
        assert_eq!(top.keys().len(), 1);
        assert_eq!(top.prefixes()[0].as_str(), "c/");
        assert_eq!(store.size_prefix(&StorePrefix::root()).unwrap(), 3);
    }

    #[test]
    fn partial_reads_and_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path());
        let key = StoreKey::new("k").unwrap();
        assert!(store.get(&key).unwrap().is_none());
        assert_eq!(store.size_key(&key).unwrap(), None);
        store.set(&key, Bytes::from_static(b"abcdef")).unwrap();
        assert_eq!(
            store
                .get_partial(&key, ByteRange::FromStart(1, Some(2)))
                .unwrap()
                .unwrap()
                .as_ref(),
            b"bc"
        );
        assert_eq!(
            store
                .get_partial(&key, ByteRange::Suffix(2))
                .unwrap()
                .unwrap()
                .as_ref(),
            b"ef"
        );
        assert!(
            store
                .get_partial(&key, ByteRange::FromStart(4, Some(9)))
                .is_err()
        );
        assert!(store.get_partial(&key, ByteRange::Suffix(99)).is_err());
        store
            .set_partial(&key, 2, Bytes::from_static(b"XY"))
            .unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), b"abXYef");
        store.erase(&key).unwrap();
        store.erase(&key).unwrap();
        assert!(store.get(&key).unwrap().is_none());
    }
}
