//! [`Progress`]: how long-running work reports how far it got.

/// Receives progress of long-running work. The CLI draws it as a progress
/// bar; the library itself prints nothing.
///
/// Units are chosen by the operation and named in `start` (bytes for I/O).
pub trait Progress: Sync {
    /// Work named `label` begins, with `total` units to do.
    fn start(&self, label: &str, total: u64) {
        let _ = (label, total);
    }
    /// `delta` more units are done.
    fn advance(&self, delta: u64) {
        let _ = delta;
    }
    /// The work has ended (successfully or not).
    fn finish(&self) {}
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
