//! Runs engine work off the Python thread: the GIL is released while it
//! runs, the calling thread reports progress to a Python callable and
//! turns Ctrl-C into a cancelled run and `KeyboardInterrupt`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pyo3::prelude::*;
use tenrso_ooc::Result;
use tenrso_ooc::exec::{Progress, Session};
use tenrso_ooc::ops::Planned;

use crate::errors::OrRaise;

/// Progress of a run, written by the engine's threads, read by Python's.
#[derive(Default)]
struct SharedProgress {
    label: Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress for SharedProgress {
    fn start(&self, label: &str, total: u64) {
        *self.label.lock().unwrap_or_else(|e| e.into_inner()) = label.to_string();
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
    fn advance(&self, delta: u64) {
        self.done.fetch_add(delta, Ordering::Relaxed);
    }
}

impl SharedProgress {
    /// Calls `callback(label, done, total)`.
    fn report(&self, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        let label = self.label.lock().unwrap_or_else(|e| e.into_inner()).clone();
        callback.call1((
            label,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        ))?;
        Ok(())
    }
}

/// How often the calling thread wakes to check signals and report.
const POLL: Duration = Duration::from_millis(50);

/// Runs `work` on a worker thread with the GIL released. Every `POLL` the
/// calling thread checks for signals (Ctrl-C cancels the session's runs,
/// waits for the worker and raises `KeyboardInterrupt`) and calls
/// `progress(label, done, total)` when given.
pub fn run<R: Send>(
    py: Python<'_>,
    session: &Session,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&dyn Progress) -> Result<R> + Send,
) -> PyResult<R> {
    let shared = SharedProgress::default();
    let (tx, rx) = mpsc::channel::<()>();
    // Receivers are not Sync; the lock only lets the GIL-free wait borrow it.
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        let shared = &shared;
        let worker = scope.spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(shared)));
            let _ = tx.send(());
            result
        });
        let mut interrupted: Option<PyErr> = None;
        loop {
            let finished = py.detach(|| {
                let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                !matches!(rx.recv_timeout(POLL), Err(mpsc::RecvTimeoutError::Timeout))
            });
            if interrupted.is_none()
                && let Err(e) = py.check_signals()
            {
                session.cancel_token().cancel();
                interrupted = Some(e);
            }
            if let (Some(callback), None) = (progress, &interrupted)
                && let Err(e) = shared.report(callback)
            {
                // A failing callback stops the run like an interrupt.
                session.cancel_token().cancel();
                interrupted = Some(e);
            }
            if finished {
                break;
            }
        }
        let outcome = py.detach(|| worker.join());
        if let Some(e) = interrupted {
            session.cancel_token().reset();
            return Err(e);
        }
        match outcome {
            Ok(Ok(Err(tenrso_ooc::Error::Cancelled))) => {
                // Cancelled by `Session.cancel()`: later runs proceed.
                session.cancel_token().reset();
                Err(tenrso_ooc::Error::Cancelled).or_raise()
            }
            Ok(Ok(result)) => result.or_raise(),
            Ok(Err(panic)) | Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(tenrso_ooc::Error::internal(format!(
                    "the engine panicked: {message}"
                )))
                .or_raise()
            }
        }
    })
}

/// Plans a request against `session` and runs it, both through [`run`]
/// (off the Python thread, the GIL released, Ctrl-C cancelling).
pub fn plan_and_run<P, R: Send>(
    py: Python<'_>,
    session: &Session,
    progress: Option<&Bound<'_, PyAny>>,
    plan: impl for<'s> FnOnce(&'s Session) -> Result<Planned<'s, P, R>> + Send,
) -> PyResult<R> {
    run(py, session, progress, |p| plan(session)?.run_with(p))
}
