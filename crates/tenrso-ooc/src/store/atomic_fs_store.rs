//! [`AtomicFsStore`]: a Zarr filesystem store whose writes are atomic.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
    store_set_partial_many,
};

/// Marker in the names of temporary files, so listings can skip them.
pub(crate) const TEMP_MARKER: &str = ".tenrso-tmp.";

/// A Zarr v3 filesystem store (the layout of zarr-python's `LocalStore`) whose
/// every write is atomic: the value goes to a temporary file in the same
/// directory, is flushed with `fsync`, then renamed over the key.
///
/// `zarrs`' own `FilesystemStore` truncates and rewrites a file in place, so a
/// writer killed mid-write leaves a torn chunk. Here a reader (or a resumed
/// job) sees each key either with its old value or its new one, never a mix.
/// Reads and listings delegate to `FilesystemStore`; listings skip leftover
/// temporary files of killed writers.
#[derive(Debug)]
pub struct AtomicFsStore {
    inner: FilesystemStore,
    base: PathBuf,
}

/// Distinguishes temporary files of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicFsStore {
    /// A store rooted at the directory `base` (created on first write).
    ///
    /// # Errors
    /// If the path is not valid UTF-8.
    pub fn new(base: impl AsRef<Path>) -> std::io::Result<Self> {
        let base = base.as_ref().to_path_buf();
        let inner = FilesystemStore::new(&base)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?
            .sorted();
        Ok(Self { inner, base })
    }

    /// The directory the store lives in.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The file that holds `key`.
    pub fn key_path(&self, key: &StoreKey) -> PathBuf {
        self.inner.key_to_fspath(key)
    }

    fn write_atomically(&self, key: &StoreKey, value: &[u8]) -> std::io::Result<()> {
        let path = self.key_path(key);
        let dir = path.parent().unwrap_or(&self.base);
        fs::create_dir_all(dir)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("value");
        let temp = dir.join(format!(
            ".{name}{TEMP_MARKER}{}.{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(value)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, &path)?;
            // Persist the rename itself (best effort: not every filesystem
            // allows syncing a directory).
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

/// True for the name of a temporary file left by a killed writer.
pub(crate) fn is_temp_key(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.contains(TEMP_MARKER))
}

fn without_temp_keys(keys: StoreKeys) -> StoreKeys {
    keys.into_iter()
        .filter(|k| !is_temp_key(k.as_str()))
        .collect()
}

impl ReadableStorageTraits for AtomicFsStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.inner.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl ListableStorageTraits for AtomicFsStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.inner.list().map(without_temp_keys)
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.inner.list_prefix(prefix).map(without_temp_keys)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let listed = self.inner.list_dir(prefix)?;
        Ok(StoreKeysPrefixes::new(
            without_temp_keys(listed.keys().clone()),
            listed.prefixes().clone(),
        ))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.inner.size_prefix(prefix)
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
        self.inner.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.inner.erase_prefix(prefix)
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
        let store = AtomicFsStore::new(dir.path()).unwrap();
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
    fn listings_skip_leftover_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path()).unwrap();
        store
            .set(&StoreKey::new("c/0").unwrap(), Bytes::from_static(b"x"))
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
        assert_eq!(keys, vec!["c/0".to_string()]);
    }

    #[test]
    fn partial_writes_rewrite_the_whole_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = AtomicFsStore::new(dir.path()).unwrap();
        let key = StoreKey::new("k").unwrap();
        store.set(&key, Bytes::from_static(b"abcdef")).unwrap();
        store
            .set_partial(&key, 2, Bytes::from_static(b"XY"))
            .unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().as_ref(), b"abXYef");
    }
}
