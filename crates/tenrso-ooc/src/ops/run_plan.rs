//! What every planned operation shares: output options, and explaining or
//! running a plan with its outputs created only once it is known to fit.

use crate::core::{ByteSize, Element, Error, Result};
use crate::exec::{Progress, RunStats, Session, TaskBody, execute_planned};
use crate::plan::{ChunkGraph, PlanReport, explain};
use crate::store::Compression;

/// How an operation lays out the array it writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputOptions {
    /// Chunk shape of the output (operations that choose their own chunking
    /// document what they do without it).
    pub chunk_shape: Option<Vec<u64>>,
    /// Compressor of the output's chunks.
    pub compression: Compression,
}

/// The plan of an operation and, unless only explained, what running it did.
#[derive(Debug, Clone)]
pub struct OpReport {
    /// The plan as explained before running.
    pub plan: PlanReport,
    /// The run; `None` when only explained.
    pub run: Option<RunStats>,
}

/// The plan report of `graph` for `session`'s threads, limit and policy.
pub(crate) fn explain_for(session: &Session, graph: &ChunkGraph) -> PlanReport {
    explain(
        graph,
        session.threads(),
        session.memory_limit(),
        session.options().cache_policy,
    )
}

/// Explains `graph` (unless `explained` already holds its report), checks that it fits (memory
/// limit, spill capacity), creates its outputs and runs it. A failed run
/// deletes the outputs it created, so a failure leaves no half-written array
/// behind.
pub(crate) fn explain_or_run<T: Element>(
    session: &Session,
    graph: &ChunkGraph,
    explained: Option<PlanReport>,
    body: &dyn TaskBody<T>,
    explain_only: bool,
    progress: &dyn Progress,
) -> Result<OpReport> {
    let _span = tracing::info_span!("operation", name = %graph.operation).entered();
    let planning = std::time::Instant::now();
    let plan = explained.unwrap_or_else(|| explain_for(session, graph));
    session
        .metrics()
        .record_phase("plan", planning.elapsed().as_secs_f64());
    tracing::info!(
        tasks = plan.tasks,
        min_working_set = plan.min_working_set,
        bytes_read = plan.bytes_read,
        bytes_spilled = plan.bytes_spilled,
        "planned"
    );
    if explain_only {
        return Ok(OpReport { plan, run: None });
    }
    plan.check()?;
    let capacity: Option<u64> = if session.options().spill_dirs.is_empty() {
        None
    } else {
        session.options().spill_dirs.iter().map(|d| d.cap).sum()
    };
    if let Some(capacity) = capacity.filter(|c| plan.bytes_spilled > *c) {
        return Err(Error::SpillFull {
            requested: plan.bytes_spilled,
            detail: format!(
                "the plan spills about {} but the spill directories hold at most {}",
                ByteSize(plan.bytes_spilled),
                ByteSize(capacity)
            ),
        });
    }
    for output in graph.outputs() {
        if let Err(err) = output.create() {
            graph.outputs().for_each(|o| o.remove_created());
            return Err(err);
        }
    }
    let running = std::time::Instant::now();
    let result = execute_planned(session, graph, plan.clone(), body, progress);
    session
        .metrics()
        .record_phase("execute", running.elapsed().as_secs_f64());
    match result {
        Ok(run) => Ok(OpReport {
            plan,
            run: Some(run),
        }),
        Err(err) => {
            // The caller reports the error; this only traces the clean-up.
            tracing::debug!(error = %err, "operation failed; removing its outputs");
            graph.outputs().for_each(|o| o.remove_created());
            Err(err)
        }
    }
}
