//! [`Planned`]: an operation checked and explained, ready to run; and what
//! every graph-planned operation shares — output options, resuming into an
//! existing output, refusing before any I/O, removing outputs of a failed run.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::{ByteSize, ChunkGrid, ChunkSet, Element, Error, Result};
use crate::dispatch_dtype;
use crate::exec::{NoProgress, Progress, RunStats, Session, TaskBody, execute_planned};
use crate::io::ReadableArray;
use crate::memory::ChunkKey;
use crate::plan::{ArrayRole, ChunkGraph, PlanReport, TaskNode, WrittenChunks, explain};
use crate::store::{CodecChoice, CodecGoal, Compression, ZarrArray, check_output_not_input};
use crate::telemetry::span_int;

/// An operation planned against a session: [`explain`](Self::explain) (or
/// `Display`) gives its plan, [`run`](Self::run) executes it.
///
/// Planning validates the request, builds the plan and models its cost; it
/// reads metadata but writes nothing. Running checks the plan against the
/// memory limit and the spill capacity before any I/O, creates the outputs,
/// and executes.
///
/// `P` is the plan report (a [`PlanReport`] for chunk-graph operations),
/// `R` what the run returns.
pub struct Planned<'s, P, R> {
    plan: P,
    run: RunFn<'s, P, R>,
}

/// What runs a plan: called once with the plan and the progress observer.
type RunFn<'s, P, R> = Box<dyn FnOnce(&P, &dyn Progress) -> Result<R> + Send + 's>;

impl<'s, P, R> Planned<'s, P, R> {
    /// A planned operation: `plan` and the closure that runs it.
    pub(crate) fn new(
        plan: P,
        run: impl FnOnce(&P, &dyn Progress) -> Result<R> + Send + 's,
    ) -> Self {
        Self {
            plan,
            run: Box::new(run),
        }
    }

    /// The plan: what the run will read, write, spill and compute, and the
    /// memory it needs.
    pub fn explain(&self) -> &P {
        &self.plan
    }

    /// The plan, dropping the run.
    pub fn into_plan(self) -> P {
        self.plan
    }

    /// Runs the operation without progress reports.
    ///
    /// # Errors
    /// Refusals of a plan that does not fit, store, spill and task errors,
    /// and [`Error::Cancelled`] when the session's token is cancelled.
    pub fn run(self) -> Result<R> {
        self.run_with(&NoProgress)
    }

    /// Runs the operation, reporting progress to `progress`.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_with(self, progress: &dyn Progress) -> Result<R> {
        (self.run)(&self.plan, progress)
    }

    /// The same plan, with `then` applied to the run's result.
    pub(crate) fn then<R2>(
        self,
        then: impl FnOnce(R) -> Result<R2> + Send + 's,
    ) -> Planned<'s, P, R2>
    where
        P: 's,
        R: 's,
    {
        let run = self.run;
        Planned::new(self.plan, move |plan, progress| then(run(plan, progress)?))
    }
}

impl<P: fmt::Display, R> fmt::Display for Planned<'_, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.plan.fmt(f)
    }
}

impl<P: fmt::Debug, R> fmt::Debug for Planned<'_, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Planned")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// How an operation lays out the array it writes.
///
/// ```
/// use tenrso_ooc::ops::OutputOptions;
/// use tenrso_ooc::store::Compression;
/// let opts = OutputOptions::default()
///     .with_chunk_shape([64, 64])
///     .with_compression(Compression::Zstd { level: 3 });
/// assert_eq!(opts.chunk_shape.as_deref(), Some(&[64u64, 64][..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OutputOptions {
    /// Chunk shape of the output (operations that choose their own chunking
    /// document what they do without it).
    pub chunk_shape: Option<Vec<u64>>,
    /// Compressor of the output's chunks.
    pub compression: Compression,
    /// Measure the candidates on samples of the output and use the best for
    /// this goal instead of `compression` (operations whose output values
    /// can be sampled before the run: [`Map`](crate::ops::Map)).
    pub auto_codec: Option<CodecGoal>,
    /// Continue an interrupted run of the same operation: an existing output
    /// with the same layout, written by the same operation, is kept and its
    /// chunks already written are not computed again.
    pub resume: bool,
}

impl OutputOptions {
    /// Sets the output's chunk shape.
    pub fn with_chunk_shape(mut self, chunks: impl Into<Vec<u64>>) -> Self {
        self.chunk_shape = Some(chunks.into());
        self
    }

    /// Sets the output's compressor.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self.auto_codec = None;
        self
    }

    /// Refuses `auto` for an operation whose output values do not exist
    /// before its run (`operation` names it in the error).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when [`OutputOptions::auto_codec`] is set.
    pub(crate) fn check_fixed_codec(&self, operation: &str) -> Result<()> {
        match self.auto_codec {
            Some(_) => Err(crate::core::Error::invalid(format!(
                "codec auto measures samples of the output before the run, and {operation} computes its output as it goes: name a codec (none, lz4, zstd[:LEVEL]); map, create and import take auto"
            ))),
            None => Ok(()),
        }
    }

    /// Sets the output's compressor, or `auto` (see
    /// [`OutputOptions::auto_codec`]).
    pub fn with_codec(mut self, codec: CodecChoice) -> Self {
        match codec {
            CodecChoice::Fixed(compression) => return self.with_compression(compression),
            CodecChoice::Auto(goal) => self.auto_codec = Some(goal),
        }
        self
    }

    /// Resumes into an existing output (see [`OutputOptions::resume`]).
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
}

/// The plan of a chunk-graph operation and what running it did.
#[derive(Debug, Clone)]
pub struct OpReport {
    /// The plan as explained before running.
    pub plan: PlanReport,
    /// The run.
    pub run: RunStats,
}

/// The plan report of `graph` for `session`'s threads, limit and policy.
pub(crate) fn explain_for(session: &Session, graph: &ChunkGraph) -> PlanReport {
    let mut report = explain(
        graph,
        session.threads(),
        session.memory_limit(),
        session.options().cache_policy,
    );
    if report.bytes_spilled > 0 {
        report.spill_tiers = session.tier_rooms();
    }
    if graph.prefetch {
        report.readers = session.options().readers;
    }
    report.durability = graph
        .outputs()
        .next()
        .map(|o| o.durability(session.options().durability));
    report
}

/// The attribute recording which operation fills an output (so a resumed
/// run can prove it is the same operation).
pub(crate) const OPERATION_ATTRIBUTE: &str = "tenrso_operation";

/// What identifies a job in its outputs: the operation and, per input, its
/// canonical path and a hash of its [fingerprint](ReadableArray::fingerprint)
/// (for a store, its metadata: layout, and the attributes where generators
/// and imports record what filled it), so an input rewritten in place is not
/// mistaken for the one a run started on.
pub(crate) fn job_record(operation: &str, inputs: &[&dyn ReadableArray]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|a| {
            let path = std::fs::canonicalize(a.path()).unwrap_or_else(|_| a.path().to_path_buf());
            let metadata = xxhash_rust::xxh3::xxh3_64(a.fingerprint().to_string().as_bytes());
            json!({ "path": path.display().to_string(), "metadata_xxh3": format!("{metadata:016x}") })
        })
        .collect();
    json!({ "operation": operation, "inputs": inputs })
}

/// [`job_record`] of `graph`: its operation and its inputs.
pub(crate) fn operation_record(graph: &ChunkGraph) -> Value {
    let inputs: Vec<&dyn ReadableArray> = graph
        .arrays
        .iter()
        .filter_map(|a| match &a.role {
            ArrayRole::Input(array) => Some(&**array),
            _ => None,
        })
        .collect();
    job_record(&graph.operation, &inputs)
}

/// An output an interrupted run left: its array id, path, stored chunk grid
/// and the chunks it holds.
type ResumedOutput = (u32, PathBuf, ChunkGrid, ChunkSet);

/// Checks, reading only, that `graph`'s outputs can be written: new paths,
/// or with `resume` arrays an interrupted run of the same job (`record`)
/// left (same layout, same record). Returns those found, with the stored
/// chunks they hold.
fn check_outputs(graph: &ChunkGraph, record: &Value, resume: bool) -> Result<Vec<ResumedOutput>> {
    let mut found = Vec::new();
    let inputs: Vec<&Path> = graph
        .arrays
        .iter()
        .filter_map(|node| match &node.role {
            ArrayRole::Input(array) => Some(array.path()),
            _ => None,
        })
        .collect();
    for (id, node) in graph.arrays.iter().enumerate() {
        let ArrayRole::Output(output) = &node.role else {
            continue;
        };
        check_output_not_input(&output.path, &inputs)?;
        if !(resume && output.path.join("zarr.json").exists()) {
            ZarrArray::check_creatable(&output.path)?;
            continue;
        }
        // Opening an existing array checks its layout and writes nothing.
        let existing = ZarrArray::create_or_resume(&output.path, &output.spec)?;
        existing.check_job(OPERATION_ATTRIBUTE, record)?;
        let stored = existing.stored_chunk_set()?;
        let grid = ChunkGrid::new(output.spec.shape.clone(), output.spec.chunk_shape.clone())?;
        found.push((id as u32, output.path.clone(), grid, stored));
    }
    Ok(found)
}

/// Drops the tasks of `graph` whose output an interrupted run already wrote
/// completely — every stored chunk its region touches exists, and no other
/// task writes it (a task may write a tile of many chunks) — then the tasks
/// producing intermediates that no remaining task reads.
fn skip_written_tasks(graph: &mut ChunkGraph, resumed: &[ResumedOutput]) {
    if resumed.iter().all(|(_, _, _, stored)| stored.is_empty()) {
        return;
    }
    if graph.stream.is_some() {
        // Streamed tasks each write their own chunks: the executor skips
        // those whose chunks are all written.
        graph.written = resumed
            .iter()
            .map(|(array, _, grid, stored)| WrittenChunks {
                array: *array,
                grid: grid.clone(),
                stored: stored.clone(),
            })
            .collect();
        return;
    }
    let mut writers: HashMap<ChunkKey, usize> = HashMap::new();
    for key in graph.tasks.iter().filter_map(|t| t.write) {
        *writers.entry(key).or_default() += 1;
    }
    let complete = |graph: &ChunkGraph, key: ChunkKey| {
        writers.get(&key) == Some(&1)
            && resumed
                .iter()
                .find(|(id, ..)| *id == key.array)
                .is_some_and(|(_, _, grid, stored)| {
                    ChunkGrid::iter_region(&grid.chunks_touching(&graph.region(key)))
                        .all(|c| stored.contains(grid.chunk_linear_index(&c)))
                })
    };
    let done: Vec<bool> = graph
        .tasks
        .iter()
        .map(|t| t.write.is_some_and(|k| complete(graph, k)))
        .collect();
    let mut done = done.into_iter();
    graph.tasks.retain(|_| !done.next().unwrap_or(false));
    // Intermediates nobody reads any more need not be computed.
    loop {
        let read: HashSet<ChunkKey> = graph
            .tasks
            .iter()
            .flat_map(|t| t.reads.iter().copied())
            .collect();
        let orphan = |t: &TaskNode| {
            t.write.is_some_and(|k| {
                matches!(graph.arrays[k.array as usize].role, ArrayRole::Temporary)
                    && !read.contains(&k)
            })
        };
        let before = graph.tasks.len();
        let keep: Vec<bool> = graph.tasks.iter().map(|t| !orphan(t)).collect();
        let mut keep = keep.into_iter();
        graph.tasks.retain(|_| keep.next().unwrap_or(true));
        if graph.tasks.len() == before {
            break;
        }
    }
}

/// Plans `graph`: resumes into outputs already there when `job.resume`, then
/// explains it (unless `explained` already holds its report). The run checks
/// that it fits (memory limit, spill capacity), creates its outputs and runs
/// `body`. A failed run deletes the outputs it created, so a failure leaves
/// no half-written array behind; a cancelled one keeps them (every chunk in
/// them is complete) for a resumed run.
pub(crate) fn plan_graph<'s, B>(
    session: &'s Session,
    mut graph: ChunkGraph,
    explained: Option<PlanReport>,
    job: Job,
    body: Arc<B>,
) -> Result<Planned<'s, PlanReport, OpReport>>
where
    B: TaskBody<f32> + TaskBody<f64> + Send + 's,
{
    let planning = std::time::Instant::now();
    // Planning has its own span: a plan may be made to be costed and
    // never run. The operation's span is the run's.
    let plan_span = tracing::info_span!(
        "plan",
        operation = %graph.operation,
        tasks = tracing::field::Empty,
        stages = tracing::field::Empty,
        min_working_set_bytes = tracing::field::Empty,
        planned_peak_bytes = tracing::field::Empty,
        planned_read_bytes = tracing::field::Empty,
        planned_written_bytes = tracing::field::Empty,
        planned_spilled_bytes = tracing::field::Empty,
        absent_chunks = tracing::field::Empty,
    )
    .entered();
    let record = job.record.unwrap_or_else(|| operation_record(&graph));
    let found = check_outputs(&graph, &record, job.resume)?;
    skip_written_tasks(&mut graph, &found);
    let resumed: Vec<PathBuf> = found.into_iter().map(|(_, path, ..)| path).collect();
    let mut plan = match explained {
        Some(plan) if resumed.is_empty() => plan,
        _ => explain_for(session, &graph),
    };
    if session.ranks().is_distributed() {
        plan.ranks = crate::distributed::shares(&graph, session.ranks().size());
    }
    session
        .metrics()
        .record_phase("plan", planning.elapsed().as_secs_f64());
    tracing::info!(
        operation = %graph.operation,
        tasks = plan.tasks,
        min_working_set = plan.min_working_set,
        bytes_read = plan.bytes_read,
        bytes_spilled = plan.bytes_spilled,
        "planned"
    );
    plan_span.record("tasks", span_int(plan.tasks));
    plan_span.record("stages", span_int(plan.stages));
    plan_span.record("min_working_set_bytes", span_int(plan.min_working_set));
    plan_span.record("planned_peak_bytes", span_int(plan.planned_peak));
    plan_span.record("planned_read_bytes", span_int(plan.bytes_read));
    plan_span.record("planned_written_bytes", span_int(plan.bytes_written));
    plan_span.record("planned_spilled_bytes", span_int(plan.bytes_spilled));
    plan_span.record("absent_chunks", span_int(plan.absent_chunks));
    drop(plan_span);
    Ok(Planned::new(plan, move |plan: &PlanReport, progress| {
        let span = operation_span(session, &graph, plan);
        let _entered = span.enter();
        let outputs = Outputs {
            resumed: &resumed,
            record: &record,
        };
        let result = run_graph(session, &graph, plan, &outputs, &*body, progress);
        if let Ok(report) = &result {
            // This process's figures: under MPI the run's are the job's
            // totals, and each rank exports its own spans.
            let run = &report.run;
            let (read, written, spilled, peak) = run
                .ranks
                .iter()
                .find(|r| r.rank == session.ranks().rank())
                .map_or(
                    (
                        run.bytes_read,
                        run.bytes_written,
                        run.bytes_spilled,
                        run.pool_peak,
                    ),
                    |r| (r.bytes_read, r.bytes_written, r.bytes_spilled, r.pool_peak),
                );
            span.record("read_bytes", span_int(read));
            span.record("written_bytes", span_int(written));
            span.record("spilled_bytes", span_int(spilled));
            span.record("pool_peak_bytes", span_int(peak));
        }
        result
    }))
}

/// The span of a graph operation's run: its name, arrays (shapes and
/// chunks), memory limit, threads and tasks; the run's figures are
/// recorded into it when it ends.
fn operation_span(session: &Session, graph: &ChunkGraph, plan: &PlanReport) -> tracing::Span {
    let describe = |input: bool| {
        graph
            .arrays
            .iter()
            .filter(|a| matches!(a.role, ArrayRole::Input(_)) == input)
            .filter(|a| input || matches!(a.role, ArrayRole::Output(_)))
            .map(|a| {
                format!(
                    "{} {:?} in {} chunks of {:?}",
                    a.name,
                    a.grid.shape().dims(),
                    a.grid.num_chunks(),
                    a.grid.chunk_shape()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let chunks: u64 = graph.arrays.iter().map(|a| a.grid.num_chunks()).sum();
    tracing::info_span!(
        "operation",
        operation = %graph.operation,
        dtype = %graph.dtype,
        inputs = %describe(true),
        outputs = %describe(false),
        chunks = span_int(chunks),
        memory_limit_bytes = span_int(session.memory_limit()),
        threads = span_int(session.threads()),
        tasks = span_int(plan.tasks),
        stages = span_int(plan.stages),
        read_bytes = tracing::field::Empty,
        written_bytes = tracing::field::Empty,
        spilled_bytes = tracing::field::Empty,
        pool_peak_bytes = tracing::field::Empty,
    )
}

/// How a graph operation treats its outputs: whether it continues an
/// interrupted run, and the record that identifies the operation in them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Job {
    /// Continue into outputs an interrupted run of the same job left.
    pub resume: bool,
    /// What identifies the job (default: the graph's operation and inputs).
    pub record: Option<Value>,
}

impl Job {
    /// The default record; resuming when `resume`.
    pub(crate) fn resuming(resume: bool) -> Self {
        Self {
            resume,
            record: None,
        }
    }
}

/// The outputs a run writes into: those resumed, and the job's record.
struct Outputs<'a> {
    resumed: &'a [PathBuf],
    record: &'a Value,
}

fn run_graph<B>(
    session: &Session,
    graph: &ChunkGraph,
    plan: &PlanReport,
    outputs: &Outputs<'_>,
    body: &B,
    progress: &dyn Progress,
) -> Result<OpReport>
where
    B: TaskBody<f32> + TaskBody<f64>,
{
    plan.check()?;
    session.cancel_token().check()?;
    // Refused before any I/O when the tiers cannot hold what the plan spills.
    let rooms = session.tier_rooms();
    let room = rooms
        .iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.room()));
    if plan.bytes_spilled > room {
        return Err(Error::SpillFull {
            requested: plan.bytes_spilled,
            detail: format!(
                "the plan spills about {} but the spill tiers have room for {}: {}",
                ByteSize(plan.bytes_spilled),
                ByteSize(room),
                rooms
                    .iter()
                    .map(|r| r.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let Outputs { resumed, record } = *outputs;
    let ranks = session.ranks();
    let remove_created = || {
        // Rank 0 created the shared outputs: it alone removes them; each
        // rank removes its node-local copies.
        graph
            .outputs()
            .filter(|o| (ranks.is_root() || o.node_local) && !resumed.contains(&o.path))
            .for_each(|o| o.remove_created())
    };
    create_outputs(session, graph, resumed, record).inspect_err(|_| remove_created())?;
    let running = std::time::Instant::now();
    let result = dispatch_dtype!(graph.dtype, T => execute_typed::<T, B>(session, graph, plan, body, progress));
    // Every rank's chunks are written before any rank goes on (to read
    // them, or to report).
    let result = result.map(|run| run.gather(ranks));
    session
        .metrics()
        .record_phase("execute", running.elapsed().as_secs_f64());
    let result = result.map_err(|err| match session.cancel_token().check() {
        Err(cancelled) => cancelled,
        Ok(()) => err,
    });
    match result {
        Ok(run) => Ok(OpReport {
            plan: plan.clone(),
            run,
        }),
        Err(Error::Cancelled) => {
            tracing::info!("operation cancelled; output chunks written so far are kept");
            Err(Error::Cancelled)
        }
        Err(err) => {
            // The caller reports the error; this only traces the clean-up.
            tracing::debug!(error = %err, "operation failed; removing its outputs");
            remove_created();
            Err(err)
        }
    }
}

/// Creates `graph`'s outputs (or opens those resumed). With several ranks,
/// rank 0 creates them once every rank has planned (so no rank finds an
/// output another just created), and the others open them.
fn create_outputs(
    session: &Session,
    graph: &ChunkGraph,
    resumed: &[PathBuf],
    record: &Value,
) -> Result<()> {
    let ranks = session.ranks();
    if ranks.is_distributed() {
        ranks.barrier();
    }
    // Node-local outputs: each rank its own copy.
    for output in graph.outputs().filter(|o| ranks.is_root() || o.node_local) {
        let resume = resumed.contains(&output.path);
        output.create(resume, OPERATION_ATTRIBUTE, record)?;
    }
    if ranks.is_distributed() {
        ranks.barrier();
        if !ranks.is_root() {
            for output in graph.outputs().filter(|o| !o.node_local) {
                output.open_created()?;
            }
        }
    }
    Ok(())
}

fn execute_typed<T: Element, B: TaskBody<T>>(
    session: &Session,
    graph: &ChunkGraph,
    plan: &PlanReport,
    body: &B,
    progress: &dyn Progress,
) -> Result<RunStats> {
    execute_planned(session, graph, plan.clone(), body, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan can be made on one thread and run on another (a worker
    /// pool, an async runtime, Python releasing the GIL).
    #[test]
    fn planned_operations_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Planned<'static, PlanReport, OpReport>>();
        assert_send::<Planned<'static, crate::ops::EinsumPlan, crate::ops::EinsumReport>>();
        assert_send::<Planned<'static, crate::ops::ChunkPlan, crate::ops::GenerateReport>>();
    }
}
