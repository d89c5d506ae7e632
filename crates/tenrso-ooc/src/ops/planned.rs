//! [`Planned`]: an operation checked and explained, ready to run; and what
//! every graph-planned operation shares — output options, resuming into an
//! existing output, refusing before any I/O, removing outputs of a failed run.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::{ByteSize, Element, Error, Result};
use crate::dispatch_dtype;
use crate::exec::{NoProgress, Progress, RunStats, Session, TaskBody, execute_planned};
use crate::plan::{ArrayRole, ChunkGraph, PlanReport, explain};
use crate::store::{Compression, ZarrArray};

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
type RunFn<'s, P, R> = Box<dyn FnOnce(&P, &dyn Progress) -> Result<R> + 's>;

impl<'s, P, R> Planned<'s, P, R> {
    /// A planned operation: `plan` and the closure that runs it.
    pub(crate) fn new(plan: P, run: impl FnOnce(&P, &dyn Progress) -> Result<R> + 's) -> Self {
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
    pub(crate) fn then<R2>(self, then: impl FnOnce(R) -> Result<R2> + 's) -> Planned<'s, P, R2>
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
    explain(
        graph,
        session.threads(),
        session.memory_limit(),
        session.options().cache_policy,
    )
}

/// The attribute recording which operation fills an output (so a resumed
/// run can prove it is the same operation).
const OPERATION_ATTRIBUTE: &str = "tenrso_operation";

/// What `graph` records in its outputs: the operation and its inputs.
fn operation_record(graph: &ChunkGraph) -> Value {
    let inputs: Vec<String> = graph
        .arrays
        .iter()
        .filter(|a| matches!(a.role, ArrayRole::Input(_)))
        .map(|a| a.name.clone())
        .collect();
    json!({ "operation": graph.operation, "inputs": inputs })
}

/// Drops the tasks of `graph` whose output chunk an interrupted run of the
/// same operation (`record`) already wrote (outputs with a different layout
/// or from another operation are refused). Returns the outputs found.
fn skip_written_chunks(graph: &mut ChunkGraph, record: &Value) -> Result<Vec<PathBuf>> {
    let mut written: HashSet<(u32, Vec<u64>)> = HashSet::new();
    let mut found = Vec::new();
    for (id, node) in graph.arrays.iter().enumerate() {
        let ArrayRole::Output(output) = &node.role else {
            continue;
        };
        if !output.path.join("zarr.json").exists() {
            continue;
        }
        // Opening checks the layout; nothing is written while planning.
        let existing = ZarrArray::create_or_resume(&output.path, &output.spec)?;
        existing.check_job(OPERATION_ATTRIBUTE, record)?;
        for chunk in existing.stored_chunks()? {
            written.insert((id as u32, chunk));
        }
        found.push(output.path.clone());
    }
    if written.is_empty() {
        return Ok(found);
    }
    // Only tasks that alone produce an output chunk can be skipped; every
    // task of the graphs here writes its chunk whole, once.
    let coords: Vec<Option<(u32, Vec<u64>)>> = graph
        .tasks
        .iter()
        .map(|t| t.write.map(|k| (k.array, graph.coords(k))))
        .collect();
    let mut kept = Vec::with_capacity(graph.tasks.len());
    for (task, coords) in std::mem::take(&mut graph.tasks).into_iter().zip(coords) {
        if !coords.is_some_and(|c| written.contains(&c)) {
            kept.push(task);
        }
    }
    graph.tasks = kept;
    Ok(found)
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
    B: TaskBody<f32> + TaskBody<f64> + 's,
{
    let planning = std::time::Instant::now();
    let record = job.record.unwrap_or_else(|| operation_record(&graph));
    let resumed = if job.resume {
        skip_written_chunks(&mut graph, &record)?
    } else {
        Vec::new()
    };
    let plan = match explained {
        Some(plan) if resumed.is_empty() => plan,
        _ => explain_for(session, &graph),
    };
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
    Ok(Planned::new(plan, move |plan: &PlanReport, progress| {
        let _span = tracing::info_span!("operation", name = %graph.operation).entered();
        let outputs = Outputs {
            resumed: &resumed,
            record: &record,
        };
        run_graph(session, &graph, plan, &outputs, &*body, progress)
    }))
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
    let Outputs { resumed, record } = *outputs;
    let remove_created = || {
        graph
            .outputs()
            .filter(|o| !resumed.contains(&o.path))
            .for_each(|o| o.remove_created())
    };
    for output in graph.outputs() {
        let resume = resumed.contains(&output.path);
        if let Err(err) = output.create(resume, OPERATION_ATTRIBUTE, record) {
            remove_created();
            return Err(err);
        }
    }
    let running = std::time::Instant::now();
    let result = dispatch_dtype!(graph.dtype, T => execute_typed::<T, B>(session, graph, plan, body, progress));
    session
        .metrics()
        .record_phase("execute", running.elapsed().as_secs_f64());
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

fn execute_typed<T: Element, B: TaskBody<T>>(
    session: &Session,
    graph: &ChunkGraph,
    plan: &PlanReport,
    body: &B,
    progress: &dyn Progress,
) -> Result<RunStats> {
    execute_planned(session, graph, plan.clone(), body, progress)
}

/// Writes a scalar result as a 0-d array at `path` (NumPy's and
/// zarr-python's shape `()`), refusing an existing array.
pub(crate) fn write_scalar(
    path: &std::path::Path,
    dtype: crate::core::DType,
    compression: Compression,
    value: f64,
) -> Result<()> {
    let spec =
        crate::store::ArraySpec::new(Vec::new(), Vec::new(), dtype).with_compression(compression);
    let array = ZarrArray::create(path, &spec)?;
    dispatch_dtype!(dtype, T => array.write_chunk(&[], &crate::core::Block::<T>::from_vec(Vec::new(), vec![T::from_f64(value)])?))
}
