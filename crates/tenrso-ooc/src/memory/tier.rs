//! [`Tier`]: one directory of the spill area — its cap, what it holds and
//! the speed measured on its own traffic — and [`TierReservation`], room
//! held in a tier for an intermediate array before it is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::core::ByteSize;

/// One tier of the spill area: a private directory inside the one the user
/// named, with an optional cap on the bytes it may hold (spill files and
/// the intermediates placed in it, as stored).
#[derive(Debug)]
pub(crate) struct Tier {
    /// Our private directory.
    pub(crate) root: PathBuf,
    /// Most bytes the tier may hold.
    pub(crate) cap: Option<u64>,
    /// Bytes held now: spill files written and intermediates' reservations.
    used: AtomicU64,
    /// Spill files in it now.
    files: AtomicU64,
    written: AtomicU64,
    write_nanos: AtomicU64,
    read: AtomicU64,
    read_nanos: AtomicU64,
}

impl Tier {
    /// A tier at `root` (already created) with `cap`.
    pub(crate) fn new(root: PathBuf, cap: Option<u64>) -> Self {
        Self {
            root,
            cap,
            used: AtomicU64::new(0),
            files: AtomicU64::new(0),
            written: AtomicU64::new(0),
            write_nanos: AtomicU64::new(0),
            read: AtomicU64::new(0),
            read_nanos: AtomicU64::new(0),
        }
    }

    /// The directory the user named (it holds our private one).
    pub(crate) fn named(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Counts a spill file of `bytes` written (or moved) here.
    pub(crate) fn add_file(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a spill file of `bytes` deleted (or moved) from here; room
    /// held for it with [`Tier::try_take`] comes back too.
    pub(crate) fn remove_file(&self, bytes: u64) {
        self.sub(bytes);
        self.files.fetch_sub(1, Ordering::Relaxed);
    }

    /// Spill files here now.
    pub(crate) fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Counts `bytes` less held (a reservation ended).
    pub(crate) fn sub(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes the cap leaves (`None` without a cap).
    pub(crate) fn cap_room(&self) -> Option<u64> {
        self.cap.map(|cap| cap.saturating_sub(self.used()))
    }

    /// Bytes that may still be written: what the cap leaves and what the
    /// file system has free, whichever is less.
    pub(crate) fn room(&self) -> u64 {
        let disk = filesystem_free(&self.root).unwrap_or(u64::MAX);
        self.cap_room().map_or(disk, |r| r.min(disk))
    }

    /// Holds `bytes` in this tier when it has the room, atomically against
    /// other reservations and spill writes that respect the cap.
    pub(crate) fn try_take(&self, bytes: u64) -> bool {
        if filesystem_free(&self.root).is_some_and(|free| free < bytes) {
            return false;
        }
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                let after = used.checked_add(bytes)?;
                self.cap.is_none_or(|cap| after <= cap).then_some(after)
            })
            .is_ok()
    }

    /// Counts a write of `bytes` that took `took`, for the measured speed.
    pub(crate) fn record_write(&self, bytes: u64, took: Duration) {
        self.written.fetch_add(bytes, Ordering::Relaxed);
        self.write_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts a read of `bytes` that took `took`, for the measured speed.
    pub(crate) fn record_read(&self, bytes: u64, took: Duration) {
        self.read.fetch_add(bytes, Ordering::Relaxed);
        self.read_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Bytes written to and read from it so far (spill files and their
    /// moves; not the intermediates' stores).
    pub(crate) fn traffic(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        )
    }

    /// Bytes per second written and read so far (`None` before any).
    pub(crate) fn bandwidth(&self) -> (Option<f64>, Option<f64>) {
        let rate = |bytes: &AtomicU64, nanos: &AtomicU64| {
            let (b, n) = (bytes.load(Ordering::Relaxed), nanos.load(Ordering::Relaxed));
            (b > 0 && n > 0).then(|| b as f64 / (n as f64 * 1e-9))
        };
        (
            rate(&self.written, &self.write_nanos),
            rate(&self.read, &self.read_nanos),
        )
    }

    /// Bytes per second of its reads and writes together so far (`None`
    /// before any): what migration compares.
    pub(crate) fn speed(&self) -> Option<f64> {
        let bytes = self.written.load(Ordering::Relaxed) + self.read.load(Ordering::Relaxed);
        let nanos =
            self.write_nanos.load(Ordering::Relaxed) + self.read_nanos.load(Ordering::Relaxed);
        (bytes > 0 && nanos > 0).then(|| bytes as f64 / (nanos as f64 * 1e-9))
    }

    /// What the tier holds and has room for, in words:
    /// `/fast holds 12.00 MiB of its 16.00 MiB cap, 4.00 MiB free`.
    pub(crate) fn describe(&self) -> String {
        describe_room(
            self.named(),
            self.used(),
            self.cap,
            filesystem_free(&self.root),
        )
    }
}

/// `DIR holds USED of its CAP cap, FREE free` (or `(no cap)`, and the
/// file system's free bytes when they are fewer than the cap leaves).
pub(crate) fn describe_room(dir: &Path, used: u64, cap: Option<u64>, disk: Option<u64>) -> String {
    let mut s = format!("{} holds {}", dir.display(), ByteSize(used));
    match cap {
        Some(cap) => {
            let _ = write!(
                s,
                " of its {} cap, {} free",
                ByteSize(cap),
                ByteSize(cap.saturating_sub(used))
            );
            if let Some(disk) = disk.filter(|d| *d < cap.saturating_sub(used)) {
                let _ = write!(s, " (its file system: {} free)", ByteSize(disk));
            }
        }
        None => {
            s.push_str(" (no cap)");
            if let Some(disk) = disk {
                let _ = write!(s, ", {} free on its file system", ByteSize(disk));
            }
        }
    }
    s
}

/// Bytes an unprivileged process may still write on the file system of
/// `path` (`statvfs`'s available blocks); `None` when it cannot be asked.
pub(crate) fn filesystem_free(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a buffer of the
    // right type, written by statvfs when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Room held in one tier for an intermediate array, given back when
/// dropped (after the array is removed).
#[derive(Debug)]
pub struct TierReservation {
    tier: Arc<Tier>,
    index: usize,
    bytes: u64,
}

impl TierReservation {
    pub(crate) fn new(tier: Arc<Tier>, index: usize, bytes: u64) -> Self {
        Self { tier, index, bytes }
    }

    /// The tier's number, 0 for the first (fastest).
    pub fn tier(&self) -> usize {
        self.index
    }

    /// The tier's private directory, where the array goes.
    pub fn dir(&self) -> &Path {
        &self.tier.root
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for TierReservation {
    fn drop(&mut self) {
        self.tier.sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_what_the_cap_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let tier = Tier::new(dir.path().join("t"), Some(100));
        assert!(tier.try_take(60));
        assert!(!tier.try_take(41));
        assert!(tier.try_take(40));
        assert_eq!(tier.cap_room(), Some(0));
        tier.sub(60);
        assert_eq!(tier.used(), 40);
        assert!(
            tier.describe()
                .contains("holds 40 B of its 100 B cap, 60 B free")
        );
    }

    #[test]
    fn the_file_system_bounds_an_uncapped_tier() {
        let dir = tempfile::tempdir().unwrap();
        let free = filesystem_free(dir.path()).expect("statvfs works on a temporary directory");
        let tier = Tier::new(dir.path().to_path_buf(), None);
        assert!(!tier.try_take(free.saturating_add(1 << 30)));
        assert!(tier.room() <= free.saturating_add(1 << 20));
        assert!(tier.describe().contains("(no cap)"));
    }

    #[test]
    fn bandwidth_is_measured_on_traffic() {
        let dir = tempfile::tempdir().unwrap();
        let tier = Tier::new(dir.path().to_path_buf(), None);
        assert_eq!(tier.bandwidth(), (None, None));
        tier.record_write(1 << 20, Duration::from_millis(1));
        let (write, read) = tier.bandwidth();
        assert!((write.unwrap() - (1u64 << 30) as f64 * 1000.0 / 1024.0).abs() < 1.0);
        assert_eq!(read, None);
    }
}
