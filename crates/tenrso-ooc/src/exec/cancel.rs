//! [`CancelToken`]: how a caller stops a running operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::{Error, Result};

/// A shared flag that stops the operations of a session.
///
/// Every [`Session`](crate::exec::Session) has one
/// ([`Session::cancel_token`](crate::exec::Session::cancel_token)); clones
/// share the flag, so another thread (a signal handler's watcher, a UI, a
/// Python interrupt check) can [`cancel`](Self::cancel) while a run is in
/// progress. The executor checks it before every task and whenever a task
/// loads a chunk, decompositions between iterations: a cancelled run ends
/// with [`Error::Cancelled`] within about one task, after releasing its
/// reservations and removing its spill files and temporaries. Output chunks
/// already written stay, so the run can be resumed.
///
/// The flag stays set until [`reset`](Self::reset), so every later run of
/// the session is refused as cancelled too.
///
/// ```
/// use tenrso_ooc::exec::CancelToken;
/// let token = CancelToken::new();
/// let seen_by_worker = token.clone();
/// assert!(seen_by_worker.check().is_ok());
/// token.cancel();
/// assert!(seen_by_worker.is_cancelled());
/// assert!(matches!(seen_by_worker.check(), Err(tenrso_ooc::Error::Cancelled)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run that checks this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Clears the flag, so that later runs proceed.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether [`cancel`](Self::cancel) was called (and not reset since).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// `Err(Error::Cancelled)` once cancelled.
    ///
    /// # Errors
    /// [`Error::Cancelled`] when the token is cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}
