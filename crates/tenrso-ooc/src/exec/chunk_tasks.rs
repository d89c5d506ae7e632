//! [`for_each_task`]: run independent tasks on worker threads, each holding a
//! reservation from the session's memory pool while it runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::core::{Error, Result};
use crate::exec::{Progress, Session};

/// Independent tasks for [`for_each_task`]: how many, and the memory each
/// holds while it runs.
#[derive(Debug, Clone, Copy)]
pub struct TaskSet<'a> {
    /// Number of tasks.
    pub count: usize,
    /// Bytes reserved from the pool for each task while it runs.
    pub bytes_each: u64,
    /// What one task is, for errors (e.g. `decoding one chunk`).
    pub what: &'a str,
}

/// Runs `task(0) … task(tasks.count - 1)` on the session's worker threads.
///
/// Each task first reserves `tasks.bytes_each` from the session's pool,
/// waiting while the pool is full (back-pressure), and releases them when
/// done; so the memory in flight never exceeds the limit. Workers take tasks
/// in increasing order, so I/O moves through files roughly sequentially.
/// Each task returns the progress units it completed. On the first failure
/// (or a cancellation of the session) no new task starts, and the error of
/// the lowest-numbered failed task is returned, whatever the timing.
///
/// # Errors
/// [`Error::MemoryLimit`] before any work when one task does not fit under
/// the limit; [`Error::Cancelled`]; otherwise the first task error.
pub fn for_each_task<F>(
    session: &Session,
    tasks: TaskSet<'_>,
    progress: &dyn Progress,
    task: F,
) -> Result<()>
where
    F: Fn(usize) -> Result<u64> + Sync,
{
    let TaskSet {
        count: num_tasks,
        bytes_each: per_task_bytes,
        what,
    } = tasks;
    session.options().check_fits(per_task_bytes, what)?;
    session.metrics().tasks_total.add(num_tasks as u64);
    let workers = session.threads().min(num_tasks.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    let fail = |index: usize, err: Error| {
        stop.store(true, Ordering::Relaxed);
        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|(i, _)| index < *i) {
            *slot = Some((index, err));
        }
    };
    let work = |worker: usize| {
        let mut reservation = session
            .pool()
            .reservation(format!("{what} (worker {worker})"));
        while !stop.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= num_tasks {
                break;
            }
            if let Err(err) = session.cancel_token().check() {
                fail(index, err);
                break;
            }
            if let Err(err) = reservation.grow(per_task_bytes) {
                fail(index, err);
                break;
            }
            let started = std::time::Instant::now();
            let result = task(index);
            session.metrics().task_seconds.observe(started.elapsed());
            reservation.free();
            match result {
                Ok(done) => {
                    progress.advance(done);
                    session.metrics().tasks_done.add(1);
                }
                Err(err) => fail(index, err),
            }
        }
    };
    if workers <= 1 {
        work(0);
    } else {
        std::thread::scope(|scope| {
            for w in 0..workers {
                scope.spawn(move || work(w));
            }
        });
    }
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, err)) => session.cancel_token().check().and(Err(err)),
        None => Ok(()),
    }
}

/// [`for_each_task`] over this rank's share of the tasks when several
/// ranks run the session (a contiguous run of `0..tasks.count`, balanced by
/// count); `task` is called with indices of the whole set. In one process,
/// every task. Returns how many tasks this rank ran.
///
/// # Errors
/// As [`for_each_task`].
pub fn for_each_owned_task<F>(
    session: &Session,
    tasks: TaskSet<'_>,
    progress: &dyn Progress,
    task: F,
) -> Result<usize>
where
    F: Fn(usize) -> Result<u64> + Sync,
{
    let share = crate::distributed::contiguous_share(
        tasks.count as u64,
        session.ranks().rank(),
        session.ranks().size(),
    );
    let (start, end) = (share.start as usize, share.end as usize);
    let owned = TaskSet {
        count: end - start,
        ..tasks
    };
    for_each_task(session, owned, progress, |i| task(start + i))?;
    Ok(end - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{ExecOptions, NoProgress};
    use std::sync::atomic::AtomicU64;

    fn session(threads: usize, limit: u64) -> Session {
        Session::new(
            ExecOptions::default()
                .with_threads(threads)
                .with_memory_limit(limit),
        )
    }

    #[test]
    fn runs_every_task_once() {
        let s = session(4, 1 << 20);
        let hits: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        for_each_task(
            &s,
            TaskSet {
                count: hits.len(),
                bytes_each: 1024,
                what: "t",
            },
            &NoProgress,
            |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
                Ok(1)
            },
        )
        .unwrap();
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert_eq!(s.pool().reserved(), 0);
    }

    #[test]
    fn reservations_bound_the_tasks_in_flight() {
        // Four threads, but the pool holds only two tasks' worth.
        let s = session(4, 2000);
        let in_flight = AtomicU64::new(0);
        let most = AtomicU64::new(0);
        for_each_task(
            &s,
            TaskSet {
                count: 40,
                bytes_each: 1000,
                what: "t",
            },
            &NoProgress,
            |_| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(0)
            },
        )
        .unwrap();
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert!(s.pool().peak() <= 2000);
    }

    #[test]
    fn reports_the_lowest_failing_task() {
        let s = session(3, 1 << 20);
        let err = for_each_task(
            &s,
            TaskSet {
                count: 50,
                bytes_each: 1,
                what: "t",
            },
            &NoProgress,
            |i| {
                if i % 7 == 3 {
                    Err(Error::invalid(format!("task {i}")))
                } else {
                    Ok(0)
                }
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "task 3");
    }

    #[test]
    fn refuses_tasks_larger_than_the_limit() {
        let s = session(2, 1000);
        let ran = AtomicUsize::new(0);
        let err = for_each_task(
            &s,
            TaskSet {
                count: 3,
                bytes_each: 2000,
                what: "a 2000-byte chunk",
            },
            &NoProgress,
            |_| {
                ran.fetch_add(1, Ordering::Relaxed);
                Ok(0)
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::MemoryLimit { .. }));
        assert_eq!(ran.load(Ordering::Relaxed), 0);
    }
}
