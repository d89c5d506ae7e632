//! [`TaskBatch`]: the span of consecutive tasks run by one worker. Tracing
//! a batch instead of each task keeps a million-task run to a few hundred
//! spans, so exporting them costs nothing the run would notice.

use std::time::{Duration, Instant};

use tracing::Span;

use crate::telemetry::span_int;

/// A batch ends after this many tasks…
const MAX_TASKS: u64 = 1024;
/// …or once it has run this long.
const MAX_TIME: Duration = Duration::from_millis(250);

/// An open `tasks` span: its worker, first task, and (recorded when it
/// ends) how many tasks it ran and the bytes they worked on.
pub(crate) struct TaskBatch {
    span: Span,
    started: Instant,
    tasks: u64,
    work_bytes: u64,
}

impl TaskBatch {
    /// A batch of `worker`'s tasks from task `first` on, inside `stage`;
    /// `None` when no subscriber records such spans.
    pub(crate) fn open(stage: &Span, worker: usize, first: u64) -> Option<Self> {
        let span = tracing::info_span!(
            parent: stage,
            "tasks",
            worker = span_int(worker),
            first_task = span_int(first),
            tasks = tracing::field::Empty,
            work_bytes = tracing::field::Empty,
        );
        (!span.is_disabled()).then(|| Self {
            span,
            started: Instant::now(),
            tasks: 0,
            work_bytes: 0,
        })
    }

    /// Counts a task of `work_bytes`; true when the batch is full (drop it
    /// to end it).
    pub(crate) fn add(&mut self, work_bytes: u64) -> bool {
        self.tasks += 1;
        self.work_bytes += work_bytes;
        self.tasks >= MAX_TASKS || self.started.elapsed() >= MAX_TIME
    }
}

impl Drop for TaskBatch {
    fn drop(&mut self) {
        self.span.record("tasks", span_int(self.tasks));
        self.span.record("work_bytes", span_int(self.work_bytes));
    }
}
