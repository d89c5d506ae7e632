//! [`for_each_task`]: run independent chunk tasks on worker threads under the
//! memory limit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::core::{Error, Result};
use crate::exec::{ExecOptions, Progress};

/// Runs `task(0) … task(num_tasks - 1)` on up to
/// [`ExecOptions::concurrency`]`(per_task_bytes)` worker threads.
///
/// Workers take tasks in increasing order, so I/O moves through files roughly
/// sequentially. Each task returns the progress units it completed. On the
/// first failure no new task starts, and the error of the lowest-numbered
/// failed task is returned, whatever the timing.
///
/// # Errors
/// [`Error::MemoryLimit`] before any work when one task does not fit under
/// the limit; otherwise the first task error.
pub fn for_each_task<F>(
    opts: &ExecOptions,
    per_task_bytes: u64,
    what: &str,
    num_tasks: usize,
    progress: &dyn Progress,
    task: F,
) -> Result<()>
where
    F: Fn(usize) -> Result<u64> + Sync,
{
    let workers = opts
        .concurrency(per_task_bytes, what)?
        .min(num_tasks.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    let work = || {
        while !stop.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= num_tasks {
                break;
            }
            match task(index) {
                Ok(done) => progress.advance(done),
                Err(err) => {
                    stop.store(true, Ordering::Relaxed);
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.as_ref().is_none_or(|(i, _)| index < *i) {
                        *slot = Some((index, err));
                    }
                }
            }
        }
    };
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(work);
            }
        });
    }
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, err)) => Err(err),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::NoProgress;

    #[test]
    fn runs_every_task_once() {
        let opts = ExecOptions::default()
            .with_threads(4)
            .with_memory_limit(1 << 20);
        let hits: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        for_each_task(&opts, 1024, "t", hits.len(), &NoProgress, |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
            Ok(1)
        })
        .unwrap();
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn reports_the_lowest_failing_task() {
        let opts = ExecOptions::default()
            .with_threads(3)
            .with_memory_limit(1 << 20);
        let err = for_each_task(&opts, 1, "t", 50, &NoProgress, |i| {
            if i % 7 == 3 {
                Err(Error::invalid(format!("task {i}")))
            } else {
                Ok(0)
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "task 3");
    }

    #[test]
    fn refuses_tasks_larger_than_the_limit() {
        let opts = ExecOptions::default().with_memory_limit(1000);
        let ran = AtomicUsize::new(0);
        let err = for_each_task(&opts, 2000, "a 2000-byte chunk", 3, &NoProgress, |_| {
            ran.fetch_add(1, Ordering::Relaxed);
            Ok(0)
        })
        .unwrap_err();
        assert!(matches!(err, Error::MemoryLimit { .. }));
        assert_eq!(ran.load(Ordering::Relaxed), 0);
    }
}
