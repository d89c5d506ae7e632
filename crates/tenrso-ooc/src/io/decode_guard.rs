//! [`guarded`]: runs a decoder of a foreign format (arrow-ipc, parquet) so
//! that a panic on damaged input becomes an error naming the file.
//!
//! Those decoders validate most of what they read, but some checks are
//! assertions (an overflowing declared length, a buffer sliced out of
//! range); a damaged file must give a clear error, never a crash or a
//! worker thread that dies mid-run.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;

use crate::core::error::panic_message;
use crate::core::{Error, Result};

thread_local! {
    /// Set while this thread runs a guarded decoder: its panics are errors,
    /// not reports.
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `decode`; a panic inside it becomes [`Error::InvalidFile`] for
/// `path` saying `what` failed (the panic is not printed).
pub(crate) fn guarded<R>(path: &Path, what: &str, decode: impl FnOnce() -> Result<R>) -> Result<R> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = DECODING.with(|d| d.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(decode));
    DECODING.with(|d| d.set(was));
    outcome.unwrap_or_else(|payload| {
        let message = panic_message(payload.as_ref());
        Err(Error::invalid_file(
            path,
            format!("{what}: damaged data ({message})"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_results_pass_through() {
        let path = Path::new("x.arrow");
        let err =
            guarded::<()>(path, "record batch 3", || panic!("offset out of range")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("x.arrow") && text.contains("record batch 3"),
            "{text}"
        );
        assert!(text.contains("offset out of range"), "{text}");
        assert_eq!(guarded(path, "ok", || Ok(7)).unwrap(), 7);
        // The flag is reset: later panics elsewhere are reported as usual.
        assert!(!DECODING.with(Cell::get));
    }
}
