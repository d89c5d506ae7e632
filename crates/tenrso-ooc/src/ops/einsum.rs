//! [`einsum`], [`tensordot`] and [`matmul`] over stored arrays: a contraction
//! path of pairwise steps, each a tiled out-of-core GEMM, intermediates in
//! temporary stores in the spill area.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::core::{ByteSize, ChunkGrid, Error, Result};
use crate::dispatch_dtype;
use crate::exec::{Progress, Session};
use crate::ops::contraction::{ContractionBody, contraction_graph};
use crate::ops::run_plan::explain_or_run;
use crate::ops::{self, OpReport, OutputOptions};
use crate::plan::{
    ContractionPath, EinsumSpec, OutputArray, PathStrategy, StepOperand, rechunk_seconds,
};
use crate::store::{ArraySpec, Compression, ZarrArray};

/// How an einsum runs: the output's layout and the path strategy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EinsumOptions {
    /// Chunking and compression of the result (default chunking: the
    /// operands' along each index, about 8 MiB a chunk).
    pub output: OutputOptions,
    /// How the contraction order is chosen.
    pub path: PathStrategy,
}

/// What an einsum planned and did.
#[derive(Debug, Clone)]
pub struct EinsumReport {
    /// The subscripts, ellipses expanded.
    pub subscripts: String,
    /// The contraction path with every step's tiles and modelled cost.
    pub path: ContractionPath,
    /// Operands rechunked before contracting (their chunking made every
    /// plan poor): operand number and the chunk shape used.
    pub rechunked: Vec<(usize, Vec<u64>)>,
    /// Each step's plan and run (runs are `None` when only explained), the
    /// rechunks first.
    pub steps: Vec<OpReport>,
    /// The result when it is a scalar.
    pub value: Option<f64>,
    /// Wall-clock seconds of the whole run (0 when only explained).
    pub seconds: f64,
}

impl EinsumReport {
    /// Floating-point operations of the path.
    pub fn flops(&self) -> f64 {
        self.path.flops()
    }

    /// The most memory reserved at once in any step.
    pub fn pool_peak(&self) -> u64 {
        self.steps
            .iter()
            .filter_map(|s| s.run.as_ref().map(|r| r.pool_peak))
            .max()
            .unwrap_or(0)
    }

    /// Bytes read from stored arrays over all steps (as planned when only
    /// explained).
    pub fn bytes_read(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.run.as_ref().map_or(s.plan.bytes_read, |r| r.bytes_read))
            .sum()
    }

    /// Bytes written over all steps, intermediates included.
    pub fn bytes_written(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| {
                s.run
                    .as_ref()
                    .map_or(s.plan.bytes_written, |r| r.bytes_written)
            })
            .sum()
    }

    /// The report as JSON: the path, each step's plan and run.
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .path
            .steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let c = &s.step.cost;
                let mut v = json!({
                    "operands": s.operands,
                    "subscripts": s.step.subscripts(),
                    "shape": s.step.output_shape(),
                    "tiles": s.step.tiles.iter().map(|(l, t)| (l.to_string(), json!(t.min(&s.step.sizes[l])))).collect::<serde_json::Map<_, _>>(),
                    "flops": c.flops,
                    "model_bytes_read": c.bytes_read,
                    "bytes_written": c.bytes_written,
                    "tasks": c.tasks,
                    "task_bytes": c.task_bytes,
                    "min_task_bytes": s.step.min_task_bytes,
                });
                if let Some(op) = self.steps.get(self.rechunked.len() + k) {
                    v["plan"] = op.plan.to_json();
                    if let Some(run) = &op.run {
                        v["seconds"] = json!(run.seconds);
                        v["bytes_read"] = json!(run.bytes_read);
                        v["pool_peak_bytes"] = json!(run.pool_peak);
                    }
                }
                v
            })
            .collect();
        json!({
            "subscripts": self.subscripts,
            "path": self.path.strategy.to_string(),
            "rechunked": self.rechunked.iter().map(|(k, c)| json!({"operand": k, "chunks": c})).collect::<Vec<_>>(),
            "flops": self.flops(),
            "steps": steps,
            "seconds": self.seconds,
            "gflops_per_second": if self.seconds > 0.0 { self.flops() / self.seconds / 1e9 } else { 0.0 },
            "bytes_read": self.bytes_read(),
            "bytes_written": self.bytes_written(),
            "pool_peak_bytes": self.pool_peak(),
            "value": self.value,
        })
    }
}

/// A temporary store in the spill area, removed when dropped.
pub(crate) struct TempStore(pub(crate) PathBuf);

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh path for a temporary store in the first spill directory.
pub(crate) fn temp_store_path(session: &Session, what: &str) -> Result<PathBuf> {
    Ok(session.spill()?.dirs()[0].join(format!(
        "einsum-{}-{what}.zarr",
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

/// Whether rechunking `input` to `chunks` fits the session's limit.
fn rechunk_fits(session: &Session, input: &Arc<ZarrArray>, chunks: &[u64]) -> Result<bool> {
    let probe = std::env::temp_dir().join("tenrso-ooc-einsum-rechunk-probe");
    let opts = OutputOptions {
        chunk_shape: Some(chunks.to_vec()),
        compression: Compression::None,
    };
    let plan = ops::rechunk(
        session,
        input.clone(),
        &probe,
        &opts,
        true,
        &crate::exec::NoProgress,
    )?;
    Ok(plan.plan.fits())
}

/// Evaluates the einsum `subscripts` (NumPy syntax) over stored `inputs`
/// out of core, writing an array result to `out` (a scalar result is
/// returned in [`EinsumReport::value`], and written as a one-element array
/// when `out` is given).
///
/// The operands are contracted pairwise along a path chosen by modelled cost
/// ([`PathStrategy`]); each step is a tiled GEMM whose output tiles stay
/// resident while operand tiles stream through the chunk cache, sized so a
/// task fits a fixed share of the memory limit. Every step's smallest tiles
/// are checked against the limit before any data is read. Partial sums are
/// added in a fixed order, so results are bitwise identical for any thread
/// count. Intermediates are uncompressed Zarr stores in the first spill
/// directory, removed once consumed.
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::exec::{ExecOptions, NoProgress, Session};
/// use tenrso_ooc::ops::{self, EinsumOptions, Fill};
/// use tenrso_ooc::store::{ArraySpec, ZarrArray};
/// use tenrso_ooc::DType;
///
/// # let dir = tempfile::tempdir()?;
/// let session = Session::new(ExecOptions::default().with_memory_limit(64 << 20));
/// let mut arrays = Vec::new();
/// for (name, shape) in [("a", [300, 200]), ("b", [200, 100])] {
///     let spec = ArraySpec::new(shape.to_vec(), vec![64, 64], DType::F64);
///     let mut a = ZarrArray::create(dir.path().join(name), &spec)?;
///     ops::generate(&mut a, Fill::Ones, 0, false, &session, &NoProgress)?;
///     arrays.push(Arc::new(a));
/// }
/// let out = dir.path().join("c");
/// let opts = EinsumOptions::default();
/// ops::einsum(&session, "ij,jk->ik", &arrays, Some(&out), &opts, false, &NoProgress)?;
/// let c = ZarrArray::open(&out)?.read_chunk::<f64>(&[0, 0])?;
/// assert_eq!(c.as_slice()[0], 200.0);
/// let total = ops::einsum(&session, "ij,jk->", &arrays, None, &opts, false, &NoProgress)?;
/// assert_eq!(total.value, Some(300.0 * 200.0 * 100.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for bad subscripts (naming the operand and
/// index), operands of different dtypes, or a missing output path;
/// [`Error::MemoryLimit`] before any I/O when a step's smallest tiles do not
/// fit; store, spill and task errors.
#[allow(clippy::too_many_arguments)]
pub fn einsum(
    session: &Session,
    subscripts: &str,
    inputs: &[Arc<ZarrArray>],
    out: Option<&Path>,
    opts: &EinsumOptions,
    explain_only: bool,
    progress: &dyn Progress,
) -> Result<EinsumReport> {
    let spec = EinsumSpec::parse(subscripts)?;
    let shapes: Vec<&[u64]> = inputs.iter().map(|a| a.shape()).collect();
    let problem = spec.bind(&shapes)?;
    let dtype = inputs[0].dtype();
    if let Some((k, a)) = inputs.iter().enumerate().find(|(_, a)| a.dtype() != dtype) {
        return Err(Error::invalid(format!(
            "einsum: operand {k} ({}) is {} but operand 0 is {dtype}",
            a.path().display(),
            a.dtype()
        )));
    }
    let scalar = problem.output.is_empty();
    if !scalar && out.is_none() {
        return Err(Error::invalid(format!(
            "einsum: `{subscripts}` gives an array of shape {:?}; name an output path",
            problem.output_shape()
        )));
    }
    if let Some(chunks) = &opts.output.chunk_shape
        && chunks.len() != problem.output.len()
    {
        return Err(Error::invalid(format!(
            "einsum: output chunks {chunks:?} have {} axes but the result has {}",
            chunks.len(),
            problem.output.len()
        )));
    }
    let operands: Vec<StepOperand> = inputs
        .iter()
        .zip(&problem.operands)
        .map(|(a, labels)| StepOperand {
            labels: labels.clone(),
            shape: a.shape().to_vec(),
            chunks: a.chunk_grid().chunk_shape().to_vec(),
            chunk_load_bytes: a.chunk_working_set(),
        })
        .collect();
    let limit = session.memory_limit();
    let itemsize = dtype.size() as u64;
    let target_chunk = session.options().default_chunk_bytes();
    let plan_path = |operands: &[StepOperand]| {
        ContractionPath::plan(
            &problem,
            operands,
            opts.output.chunk_shape.clone().filter(|_| !scalar),
            itemsize,
            limit,
            target_chunk,
            opts.path,
        )
    };
    let mut path = plan_path(&operands)?;
    // Rechunk operands first when their chunking makes every plan poor
    // (thin chunks along a contracted index, chunks too large for any tile)
    // and rechunking pays for itself: each such operand alone, or all of
    // them, whichever the model finds cheapest.
    let mut candidates = Vec::new();
    for (k, input) in inputs.iter().enumerate() {
        let auto = ChunkGrid::auto_chunk_shape(input.shape(), itemsize, target_chunk);
        if auto != operands[k].chunks && rechunk_fits(session, input, &auto)? {
            let cost = rechunk_seconds(
                input.nbytes(),
                input.chunk_grid().num_chunks(),
                ChunkGrid::new(input.shape().to_vec(), auto.clone())?.num_chunks(),
            );
            candidates.push((k, auto, cost));
        }
    }
    let mut options: Vec<Vec<usize>> = (0..candidates.len()).map(|c| vec![c]).collect();
    if candidates.len() > 1 {
        options.push((0..candidates.len()).collect());
    }
    let fits = |p: &ContractionPath| p.min_task_bytes() <= limit;
    let mut best: Option<(f64, Vec<usize>, ContractionPath)> = None;
    for option in options {
        let mut trial = operands.clone();
        let mut cost = 0.0;
        for &c in &option {
            let (k, auto, seconds) = &candidates[c];
            trial[*k].chunks = auto.clone();
            trial[*k].chunk_load_bytes = 2 * auto.iter().product::<u64>() * itemsize;
            cost += seconds;
        }
        let alternative = plan_path(&trial)?;
        let total = alternative.seconds() + cost;
        tracing::debug!(?option, current = path.seconds(), total, "rechunk first?");
        let better = match (fits(&path), fits(&alternative)) {
            (false, true) => true,
            (true, true) => total < 0.8 * path.seconds(),
            _ => false,
        };
        if better && best.as_ref().is_none_or(|b| total < b.0) {
            best = Some((total, option, alternative));
        }
    }
    let mut rechunked = Vec::new();
    if let Some((_, option, alternative)) = best {
        path = alternative;
        rechunked = option
            .iter()
            .map(|&c| (candidates[c].0, candidates[c].1.clone()))
            .collect();
    }
    tracing::info!(subscripts = %problem.expanded_text(), path = %path, "einsum planned");
    let mut report = EinsumReport {
        subscripts: problem.expanded_text(),
        path,
        rechunked,
        steps: Vec::new(),
        value: None,
        seconds: 0.0,
    };
    if explain_only {
        return Ok(report);
    }
    // Refuse before any I/O: every step's smallest task must fit.
    for (k, s) in report.path.steps.iter().enumerate() {
        if s.step.min_task_bytes > limit {
            return Err(Error::MemoryLimit {
                limit,
                required: s.step.min_task_bytes,
                what: format!(
                    "step {k} of einsum `{subscripts}` at its smallest tiles ({})",
                    s.step
                ),
            });
        }
    }
    let start = Instant::now();
    let n = inputs.len();
    let mut arrays: Vec<Option<Arc<ZarrArray>>> = inputs.iter().cloned().map(Some).collect();
    let mut temps: Vec<Option<TempStore>> = (0..n).map(|_| None).collect();
    for (k, chunks) in report.rechunked.clone() {
        let dir = temp_store_path(session, &format!("operand{k}-rechunked"))?;
        let temp = TempStore(dir.clone());
        let opts = OutputOptions {
            chunk_shape: Some(chunks),
            compression: Compression::None,
        };
        let op = ops::rechunk(session, inputs[k].clone(), &dir, &opts, false, progress)?;
        report.steps.push(op);
        arrays[k] = Some(Arc::new(ZarrArray::open(&dir)?));
        temps[k] = Some(temp);
    }
    let steps = report.path.steps.clone();
    let last = steps.len() - 1;
    for (k, s) in steps.iter().enumerate() {
        let step_inputs: Vec<Arc<ZarrArray>> = s
            .operands
            .iter()
            .map(|&o| arrays[o].clone().expect("each operand is used once"))
            .collect();
        let (target, compression, temp) = match out.filter(|_| k == last) {
            Some(out) => (out.to_path_buf(), opts.output.compression, None),
            None => {
                let dir = temp_store_path(session, &format!("step{k}"))?;
                (dir.clone(), Compression::None, Some(TempStore(dir)))
            }
        };
        let array_spec = ArraySpec::new(s.step.output_shape(), s.step.output_chunks.clone(), dtype)
            .with_compression(compression);
        array_spec.validate()?;
        let output = Arc::new(OutputArray::new(&target, array_spec));
        let name = format!("einsum step {k}/{}: {}", steps.len(), s.step.subscripts());
        let graph = contraction_graph(&s.step, &step_inputs, output.clone(), &name)?;
        let body = ContractionBody {
            step: s.step.clone(),
        };
        let op = dispatch_dtype!(dtype, T => explain_or_run::<T>(session, &graph, None, &body, false, progress))?;
        report.steps.push(op);
        // Operands consumed by this step are not needed again.
        for &o in &s.operands {
            arrays[o] = None;
            temps[o] = None;
        }
        arrays.push(Some(output.array()?.clone()));
        temps.push(temp);
    }
    if scalar {
        let result = arrays.last().and_then(|a| a.clone()).expect("a last step");
        let value = dispatch_dtype!(dtype, T => result.read_chunk::<T>(&[0]).map(|b| crate::core::Element::to_f64(b.as_slice()[0])))?;
        report.value = Some(value);
    }
    report.seconds = start.elapsed().as_secs_f64();
    tracing::info!(
        seconds = report.seconds,
        gflops = report.flops() / 1e9,
        peak = %ByteSize(report.pool_peak()),
        "einsum done"
    );
    Ok(report)
}

/// `numpy.tensordot(a, b, axes)`: contracts `a`'s axes `axes.0` with `b`'s
/// axes `axes.1` (pairwise); the result has `a`'s other axes, then `b`'s.
///
/// # Errors
/// [`Error::InvalidArgument`] for axes out of range, repeated or of unequal
/// sizes; otherwise as [`einsum`].
#[allow(clippy::too_many_arguments)]
pub fn tensordot(
    session: &Session,
    a: Arc<ZarrArray>,
    b: Arc<ZarrArray>,
    axes: (&[usize], &[usize]),
    out: Option<&Path>,
    opts: &EinsumOptions,
    explain_only: bool,
    progress: &dyn Progress,
) -> Result<EinsumReport> {
    let subscripts = tensordot_subscripts(a.shape().len(), b.shape().len(), axes)?;
    einsum(
        session,
        &subscripts,
        &[a, b],
        out,
        opts,
        explain_only,
        progress,
    )
}

/// The einsum subscripts of `tensordot` over arrays of `na` and `nb` axes.
///
/// ```
/// use tenrso_ooc::ops::tensordot_subscripts;
/// assert_eq!(tensordot_subscripts(3, 2, (&[1], &[0]))?, "abc,bd->acd");
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for bad axes or more than 52 indices.
pub fn tensordot_subscripts(na: usize, nb: usize, axes: (&[usize], &[usize])) -> Result<String> {
    let (ax, bx) = axes;
    if ax.len() != bx.len() {
        return Err(Error::invalid(format!(
            "tensordot: {} axes of the first operand against {} of the second",
            ax.len(),
            bx.len()
        )));
    }
    for (axes, n, which) in [(ax, na, "first"), (bx, nb, "second")] {
        let mut seen = vec![false; n];
        for &a in axes {
            if a >= n || std::mem::replace(&mut seen[a], true) {
                return Err(Error::invalid(format!(
                    "tensordot: axis {a} of the {which} operand is out of range or repeated (it has {n} axes)"
                )));
            }
        }
    }
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    if na + nb - ax.len() > letters.len() {
        return Err(Error::invalid("tensordot: too many axes"));
    }
    let mut next = 0;
    let mut fresh = || {
        next += 1;
        letters[next - 1]
    };
    let a_labels: Vec<char> = (0..na).map(|_| fresh()).collect();
    let mut b_labels: Vec<char> = vec![' '; nb];
    for (&i, &j) in ax.iter().zip(bx) {
        b_labels[j] = a_labels[i];
    }
    for l in b_labels.iter_mut().filter(|l| **l == ' ') {
        *l = fresh();
    }
    let out: String = a_labels
        .iter()
        .enumerate()
        .filter(|(k, _)| !ax.contains(k))
        .map(|(_, c)| *c)
        .chain(
            b_labels
                .iter()
                .enumerate()
                .filter(|(k, _)| !bx.contains(k))
                .map(|(_, c)| *c),
        )
        .collect();
    Ok(format!(
        "{},{}->{out}",
        a_labels.iter().collect::<String>(),
        b_labels.iter().collect::<String>()
    ))
}

/// `numpy.matmul(a, b)`: matrix product over the last two axes, leading
/// axes broadcast; a 1-d operand is a vector.
///
/// # Errors
/// As [`einsum`].
pub fn matmul(
    session: &Session,
    a: Arc<ZarrArray>,
    b: Arc<ZarrArray>,
    out: Option<&Path>,
    opts: &EinsumOptions,
    explain_only: bool,
    progress: &dyn Progress,
) -> Result<EinsumReport> {
    let subscripts = match (a.shape().len(), b.shape().len()) {
        (0, _) | (_, 0) => {
            return Err(Error::invalid(
                "matmul: operands must have at least one axis",
            ));
        }
        (1, 1) => "j,j->",
        (1, _) => "j,...jk->...k",
        (_, 1) => "...ij,j->...i",
        _ => "...ij,...jk->...ik",
    };
    einsum(
        session,
        subscripts,
        &[a, b],
        out,
        opts,
        explain_only,
        progress,
    )
}
