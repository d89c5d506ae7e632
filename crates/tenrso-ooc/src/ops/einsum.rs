//! [`Einsum`] (with `tensordot` and `matmul`) over stored arrays: a contraction
//! path of pairwise steps, each a tiled out-of-core GEMM, intermediates in
//! temporary stores in the spill area.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::core::{ByteSize, ChunkGrid, Error, Result, gemm_gflops, gemm_kernel};
use crate::dispatch_dtype;
use crate::distributed::NodeLocalArray;
use crate::distributed::TileSplit;
use crate::exec::{Progress, Session};
use crate::io::{ArrayRef, IntoArrayRef, ReadableArray};
use crate::memory::{ScratchNeed, ScratchPlacement, TempStore, place_scratch};
use crate::ops::contraction::{AbsentTiles, ContractionBody, contraction_graph};
use crate::ops::planned::{Job, OPERATION_ATTRIBUTE, job_record, plan_graph};
use crate::ops::scalar_output::ScalarOutput;
use crate::ops::{OpReport, OutputOptions, Planned, Rechunk};
use crate::plan::{
    ContractionPath, ContractionStep, EinsumSpec, Label, OutputArray, PathStrategy, StepOperand,
    TilingParams, rechunk_seconds,
};
use crate::store::{ArraySpec, Compression, Durability, ZarrArray, check_output_not_input};
use crate::telemetry::span_int;

/// What an einsum will do: the subscripts (ellipses expanded), the operands
/// rechunked first, and the contraction path with every step's tiles and
/// modelled cost.
#[derive(Debug, Clone)]
pub struct EinsumPlan {
    /// The subscripts, ellipses expanded.
    pub subscripts: String,
    /// The contraction path with every step's tiles and modelled cost.
    pub path: ContractionPath,
    /// Operands rechunked before contracting (their chunking made every
    /// plan poor): operand number and the chunk shape used.
    pub rechunked: Vec<(usize, Vec<u64>)>,
    /// The result's shape (empty for a scalar).
    pub output_shape: Vec<u64>,
    /// The memory limit the tiles were sized for.
    pub memory_limit: u64,
    /// Worker threads the steps run on.
    pub threads: usize,
    /// Under several ranks, how each product step shares its output tiles
    /// among them; empty in one process.
    pub ranks: Vec<StepRanks>,
    /// The intermediate arrays written to the spill area (operands
    /// rechunked first, then each step's result but the last one's), in
    /// the order they are written, each in the tier the plan placed it.
    pub intermediates: Vec<ScratchPlacement>,
    /// Reader threads loading tiles' chunks ahead of the workers.
    pub readers: usize,
    /// How the result's chunks reach the disk (intermediates: never synced).
    pub durability: Durability,
}

/// How the ranks share one product step: a grid of ranks over its output
/// tiles (SUMMA's layout), and what each rank reads.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRanks {
    /// The step.
    pub step: usize,
    /// Ranks along the rows (the left operand's free indices) and columns.
    pub grid: (u64, u64),
    /// Output tiles per rank, at most.
    pub tiles_per_rank: u64,
    /// Bytes of operands each rank reads at least: a row block of the left
    /// operand and a column block of the right one.
    pub bytes_read_per_rank: u64,
    /// Bytes all ranks read together (each operand byte once per rank that
    /// needs it): the job's read volume.
    pub bytes_read_total: u64,
}

impl StepRanks {
    /// The share of `step` (number `index` of the path) among `ranks`;
    /// `None` when it is not a product of two operands or no grid fits.
    fn of(index: usize, step: &ContractionStep, ranks: usize) -> Option<Self> {
        let [x, y] = step.inputs.as_slice() else {
            return None;
        };
        let tiles = |labels: &mut dyn Iterator<Item = &Label>| -> u64 {
            labels
                .map(|l| step.sizes[l].div_ceil(step.tiles[l].max(1)))
                .product()
        };
        let rows = tiles(&mut step.batch.iter().chain(&step.left));
        let cols = tiles(&mut step.right.iter());
        let bytes = |o: &StepOperand| o.shape.iter().product::<u64>() * step.itemsize;
        let split = TileSplit {
            row_axes: Vec::new(),
            col_axes: Vec::new(),
            row_bytes: bytes(x),
            col_bytes: bytes(y),
        };
        let (pr, pc) = split.rank_grid(ranks, rows, cols)?;
        let each = split.row_bytes.div_ceil(pr) + split.col_bytes.div_ceil(pc);
        Some(Self {
            step: index,
            grid: (pr, pc),
            tiles_per_rank: rows.div_ceil(pr) * cols.div_ceil(pc),
            bytes_read_per_rank: each,
            bytes_read_total: split.row_bytes * pc + split.col_bytes * pr,
        })
    }

    /// The share as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "step": self.step,
            "rank_grid": [self.grid.0, self.grid.1],
            "tiles_per_rank": self.tiles_per_rank,
            "bytes_read_per_rank": self.bytes_read_per_rank,
            "bytes_read_total": self.bytes_read_total,
        })
    }
}

impl EinsumPlan {
    /// The intermediate arrays the plan writes to the spill area, in the
    /// order they are written: operands rechunked first, then every step's
    /// result but the last one's unless `last_in_scratch` (a scalar, or a
    /// result kept in scratch, which outlives the plan). Each lives from
    /// the step writing it (rechunks: step 0) to the step reading it.
    fn intermediate_needs(
        &self,
        inputs: &[ArrayRef],
        dtype: crate::core::DType,
        last_in_scratch: bool,
    ) -> Vec<ScratchNeed> {
        let steps = &self.path.steps;
        let reader = |operand: usize| {
            steps
                .iter()
                .position(|s| s.operands.contains(&operand))
                .map_or(usize::MAX, |k| k + 1)
        };
        let bound = |shape: Vec<u64>, chunks: Vec<u64>| {
            ArraySpec::new(shape, chunks, dtype).stored_bytes_bound(self.threads as u64)
        };
        let mut needs: Vec<ScratchNeed> = self
            .rechunked
            .iter()
            .map(|(k, chunks)| ScratchNeed {
                what: format!("operand {k} rechunked"),
                bytes: bound(inputs[*k].shape().to_vec(), chunks.clone()),
                first_step: 0,
                last_step: reader(*k),
            })
            .collect();
        for (k, s) in steps.iter().enumerate() {
            if k + 1 == steps.len() && !last_in_scratch {
                break;
            }
            needs.push(ScratchNeed {
                what: format!("einsum step {k} result"),
                bytes: bound(s.step.output_shape(), s.step.output_chunks.clone()),
                first_step: k + 1,
                last_step: reader(inputs.len() + k),
            });
        }
        needs
    }

    /// Floating-point operations of the path.
    pub fn flops(&self) -> f64 {
        self.path.flops()
    }

    /// Whether every step's smallest task fits the memory limit.
    pub fn fits(&self) -> bool {
        self.path.min_task_bytes() <= self.memory_limit
    }

    /// The most memory any step is planned to hold: its running tasks, and
    /// its operands in the chunk cache (which keeps what the tiles re-read
    /// and what the prefetcher loads ahead) — the limit, when they do not
    /// fit in it.
    pub fn planned_peak(&self) -> u64 {
        self.path
            .steps
            .iter()
            .map(|s| {
                let step = &s.step;
                let task = step.cost.task_bytes.max(1);
                let workers = (self.threads as u64)
                    .min(step.cost.tasks)
                    .min(self.memory_limit / task)
                    .max(1);
                let operands: u64 = step
                    .inputs
                    .iter()
                    .map(|o| o.shape.iter().product::<u64>() * step.itemsize)
                    .sum();
                self.memory_limit
                    .min(workers.saturating_mul(task).saturating_add(operands))
            })
            .max()
            .unwrap_or(0)
    }

    /// The plan as JSON: the path and each step's tiles and modelled cost.
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .path
            .steps
            .iter()
            .map(|s| {
                let c = &s.step.cost;
                json!({
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
                    "layouts": (0..s.step.inputs.len()).map(|k| s.step.layout_text(k)).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "subscripts": self.subscripts,
            "path": self.path.strategy.to_string(),
            "rechunked": self.rechunked.iter().map(|(k, c)| json!({"operand": k, "chunks": c})).collect::<Vec<_>>(),
            "flops": self.flops(),
            "steps": steps,
            "memory_limit_bytes": self.memory_limit,
            "planned_peak_bytes": self.planned_peak(),
            "fits": self.fits(),
            "ranks": self.ranks.iter().map(StepRanks::to_json).collect::<Vec<_>>(),
            "intermediates": self.intermediates.iter().map(|p| json!({
                "what": p.what,
                "bytes": p.bytes,
                "tier": p.tier,
                "dir": p.dir.display().to_string(),
            })).collect::<Vec<_>>(),
            "gemm_kernel": self.multiplies().then(gemm_kernel),
        })
    }

    /// True when a step multiplies two operands (by GEMM): its text then
    /// names the kernel and measures its speed ([`gemm_gflops`]).
    pub fn multiplies(&self) -> bool {
        self.path.steps.iter().any(|s| s.step.inputs.len() == 2)
    }
}

impl fmt::Display for EinsumPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, chunks) in &self.rechunked {
            writeln!(
                f,
                "rechunk operand #{k} to chunks {chunks:?} first (its chunking makes every plan slow)"
            )?;
        }
        write!(f, "{}", self.path)?;
        let least = self.path.min_task_bytes();
        writeln!(
            f,
            "  memory: least {} per task, planned peak {}, limit {}{}{}",
            ByteSize(least),
            ByteSize(self.planned_peak()),
            ByteSize(self.memory_limit),
            if self.ranks.is_empty() {
                ""
            } else {
                " per rank"
            },
            if self.fits() { "" } else { "  (DOES NOT FIT)" }
        )?;
        if self.multiplies() {
            writeln!(
                f,
                "  gemm: {}; {:.1} GFLOP/s per thread (measured on 768³ f64)",
                gemm_kernel(),
                gemm_gflops()
            )?;
        }
        let result = if self.output_shape.is_empty() {
            String::new()
        } else {
            format!(
                "; result chunks written with durability {}",
                self.durability
            )
        };
        let intermediates = if self.intermediates.is_empty() {
            ""
        } else {
            ", intermediates never synced"
        };
        writeln!(
            f,
            "  I/O: {} reader(s) load tiles' chunks ahead of the workers{result}{intermediates}",
            self.readers
        )?;
        for placed in &self.intermediates {
            writeln!(f, "  intermediate: {placed}")?;
        }
        for r in &self.ranks {
            writeln!(
                f,
                "  ranks, step {}: {}x{} grid of ranks over the output tiles, at most {} tile(s) each; each rank reads {} (all ranks {})",
                r.step,
                r.grid.0,
                r.grid.1,
                r.tiles_per_rank,
                ByteSize(r.bytes_read_per_rank),
                ByteSize(r.bytes_read_total)
            )?;
        }
        Ok(())
    }
}

/// What an einsum planned and did.
#[derive(Debug, Clone)]
pub struct EinsumReport {
    /// The plan it ran.
    pub plan: EinsumPlan,
    /// Each step's plan and run, the rechunks first.
    pub steps: Vec<OpReport>,
    /// The result when it is a scalar.
    pub value: Option<f64>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// The result kept in scratch (`Einsum::into_scratch`), removed when
    /// the last clone of the report drops.
    pub(crate) scratch: Option<(ArrayRef, Arc<TempStore>)>,
}

impl EinsumReport {
    /// Floating-point operations of the path.
    pub fn flops(&self) -> f64 {
        self.plan.flops()
    }

    /// The most memory reserved at once in any step.
    pub fn pool_peak(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.run.pool_peak)
            .max()
            .unwrap_or(0)
    }

    /// Bytes read from stored arrays over all steps.
    pub fn bytes_read(&self) -> u64 {
        self.steps.iter().map(|s| s.run.bytes_read).sum()
    }

    /// Bytes written over all steps, intermediates included.
    pub fn bytes_written(&self) -> u64 {
        self.steps.iter().map(|s| s.run.bytes_written).sum()
    }

    /// The report as JSON: the plan, each step's plan and run.
    pub fn to_json(&self) -> Value {
        let mut json = self.plan.to_json();
        if let Some(steps) = json["steps"].as_array_mut() {
            for (k, v) in steps.iter_mut().enumerate() {
                if let Some(op) = self.steps.get(self.plan.rechunked.len() + k) {
                    v["plan"] = op.plan.to_json();
                    // Seconds, bytes, pool peak, overhead per task.
                    if let (Some(step), Value::Object(run)) = (v.as_object_mut(), op.run.to_json())
                    {
                        step.extend(run);
                    }
                }
            }
        }
        json["seconds"] = json!(self.seconds);
        json["gflops_per_second"] = json!(if self.seconds > 0.0 {
            self.flops() / self.seconds / 1e9
        } else {
            0.0
        });
        json["bytes_read"] = json!(self.bytes_read());
        json["bytes_written"] = json!(self.bytes_written());
        json["pool_peak_bytes"] = json!(self.pool_peak());
        json["value"] = json!(self.value);
        json
    }
}

/// Whether rechunking `input` to `chunks` fits the session's limit.
fn rechunk_fits(session: &Session, input: &ArrayRef, chunks: &[u64]) -> Result<bool> {
    let probe = std::env::temp_dir().join("tenrso-ooc-einsum-rechunk-probe");
    let plan = Rechunk::new(input, chunks, probe).plan(session)?;
    Ok(plan.explain().fits())
}

/// An einsum over stored arrays (NumPy's subscripts), evaluated out of core.
///
/// The operands are contracted pairwise along a path chosen by modelled cost
/// ([`PathStrategy`]); each step is a tiled GEMM whose output tiles stay
/// resident while operand tiles stream through the chunk cache, sized so a
/// task fits a fixed share of the memory limit. Every step's smallest tiles
/// are checked against the limit before any data is read. Partial sums are
/// added in a fixed order, so results are bitwise identical for any thread
/// count. Intermediates are uncompressed Zarr stores in the spill area,
/// removed once consumed. A scalar result is returned in
/// [`EinsumReport::value`] (and written as a 0-d array when an output path
/// is given); an array result needs an output path.
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::exec::{ExecOptions, Session};
/// use tenrso_ooc::ops::{Einsum, Fill, Generate};
/// use tenrso_ooc::store::{ArraySpec, ZarrArray};
/// use tenrso_ooc::DType;
///
/// # let dir = tempfile::tempdir()?;
/// let session = Session::new(ExecOptions::default().with_memory_limit(64 << 20));
/// let mut arrays = Vec::new();
/// for (name, shape) in [("a", [300, 200]), ("b", [200, 100])] {
///     let spec = ArraySpec::new(shape.to_vec(), vec![64, 64], DType::F64);
///     arrays.push(Generate::new(dir.path().join(name), spec, Fill::Ones).plan(&session)?.run()?.array);
/// }
/// let out = dir.path().join("c");
/// Einsum::new("ij,jk->ik", [&arrays[0], &arrays[1]]).with_out(&out).plan(&session)?.run()?;
/// let c = ZarrArray::open(&out)?.read_chunk::<f64>(&[0, 0])?;
/// assert_eq!(c.as_slice()[0], 200.0);
/// let total = Einsum::new("ij,jk->", [&arrays[0], &arrays[1]]).plan(&session)?;
/// println!("{total}"); // the path, its tiles and memory
/// assert_eq!(total.run()?.value, Some(300.0 * 200.0 * 100.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Einsum {
    subscripts: String,
    operands: Vec<ArrayRef>,
    out: Option<PathBuf>,
    output: OutputOptions,
    path: PathStrategy,
    /// Keep an array result in scratch, as an intermediate, and return it
    /// in the report ([`EinsumReport::scratch`]).
    scratch: bool,
}

impl Einsum {
    /// Evaluates `subscripts` over `operands` (`[&a, &b]`, or a list of
    /// [`ArrayRef`]s of mixed kinds: stores and files read in place).
    pub fn new(
        subscripts: impl Into<String>,
        operands: impl IntoIterator<Item = impl IntoArrayRef>,
    ) -> Self {
        Self {
            subscripts: subscripts.into(),
            operands: operands.into_iter().map(|a| a.array_ref()).collect(),
            out: None,
            output: OutputOptions::default(),
            path: PathStrategy::default(),
            scratch: false,
        }
    }

    /// `numpy.tensordot(a, b, axes)`: contracts `a`'s axes `axes.0` with
    /// `b`'s axes `axes.1` (pairwise); the result has `a`'s other axes, then
    /// `b`'s.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for axes out of range or repeated.
    pub fn tensordot(
        a: &impl IntoArrayRef,
        b: &impl IntoArrayRef,
        axes: (&[usize], &[usize]),
    ) -> Result<Self> {
        let (a, b) = (&a.array_ref(), &b.array_ref());
        let subscripts = tensordot_subscripts(a.shape().len(), b.shape().len(), axes)?;
        Ok(Self::new(subscripts, [a, b]))
    }

    /// `numpy.matmul(a, b)`: matrix product over the last two axes, leading
    /// axes broadcast; a 1-d operand is a vector.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a 0-d operand.
    pub fn matmul(a: &impl IntoArrayRef, b: &impl IntoArrayRef) -> Result<Self> {
        let (a, b) = (&a.array_ref(), &b.array_ref());
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
        Ok(Self::new(subscripts, [a, b]))
    }

    /// Writes the result to a new array at `path` (a scalar as a 0-d array).
    pub fn with_out(mut self, path: impl Into<PathBuf>) -> Self {
        self.out = Some(path.into());
        self
    }

    /// Keeps an array result where intermediates go (node-local under
    /// several ranks) and returns it in the report, instead of an output.
    pub(crate) fn into_scratch(mut self) -> Self {
        self.scratch = true;
        self
    }

    /// Sets the result's chunking (default: the operands' along each index,
    /// about 8 MiB a chunk), compression and resumption.
    pub fn with_output_options(mut self, output: OutputOptions) -> Self {
        self.output = output;
        self
    }

    /// Sets how the contraction order is chosen.
    pub fn with_path(mut self, path: PathStrategy) -> Self {
        self.path = path;
        self
    }

    /// Plans the einsum: parses the subscripts, binds them to the operands'
    /// shapes, chooses the path, its tiles and any rechunking first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad subscripts (naming the operand and
    /// index), operands of different dtypes, or an array result without an
    /// output path.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, EinsumPlan, EinsumReport>> {
        // The path search plans (and costs) rechunks and steps: their spans
        // sit in this one.
        let _span = tracing::info_span!("plan", operation = %format!("einsum {}", self.subscripts))
            .entered();
        let (subscripts, inputs, out, opts) = (
            &self.subscripts[..],
            &self.operands[..],
            self.out.as_deref(),
            &self.output,
        );
        if inputs.is_empty() {
            return Err(Error::invalid("einsum: give at least one operand"));
        }
        opts.check_fixed_codec("einsum")?;
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
        if !scalar && out.is_none() && !self.scratch {
            return Err(Error::invalid(format!(
                "einsum: `{subscripts}` gives an array of shape {:?}; give an output path",
                problem.output_shape()
            )));
        }
        if let Some(chunks) = &opts.chunk_shape
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
                // Tiles are sized with a chunk's load counted at least
                // twice (a copy beside it), as they were before chunks were
                // read into one buffer: the same tiles, the same sums.
                chunk_load_bytes: a.chunk_working_set().max(2 * a.chunk_nbytes()),
            })
            .collect();
        let limit = session.memory_limit();
        let itemsize = dtype.size() as u64;
        let target_chunk = session.options().default_chunk_bytes();
        let plan_path = |operands: &[StepOperand]| {
            let mut params =
                TilingParams::new(itemsize, limit).with_target_chunk_bytes(target_chunk);
            params.output_chunks = opts.chunk_shape.clone().filter(|_| !scalar);
            ContractionPath::plan(&problem, operands, &params, self.path)
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
        let size = session.ranks().size();
        let ranks = if size > 1 {
            path.steps
                .iter()
                .enumerate()
                .filter_map(|(k, s)| StepRanks::of(k, &s.step, size))
                .collect()
        } else {
            Vec::new()
        };
        let mut plan = EinsumPlan {
            subscripts: problem.expanded_text(),
            path,
            rechunked,
            output_shape: problem.output_shape(),
            memory_limit: limit,
            threads: session.threads(),
            ranks,
            intermediates: Vec::new(),
            readers: session.options().readers,
            durability: session.options().durability,
        };
        // Refused here, before any I/O, when no tier can hold one.
        let needs = plan.intermediate_needs(inputs, dtype, scalar || self.scratch);
        plan.intermediates = place_scratch(&needs, &session.tier_rooms())?;
        let record = result_record(subscripts, inputs, &plan);
        if let Some(out) = out {
            let input_paths: Vec<&Path> = inputs.iter().map(|a| a.path()).collect();
            check_output_not_input(out, &input_paths)?;
        }
        let destination = match out {
            None => Destination::None,
            Some(out) if scalar => Destination::Scalar(ScalarOutput::check(
                out,
                opts.compression,
                opts.resume,
                &record,
            )?),
            Some(out) => {
                check_array_output(out, &plan, dtype, opts, &record)?;
                Destination::Array(out.to_path_buf())
            }
        };
        let inputs = inputs.to_vec();
        let opts = opts.clone();
        let subscripts = subscripts.to_string();
        Ok(Planned::new(plan, move |plan: &EinsumPlan, progress| {
            // For the run report: the path and the GEMM layouts (each step's
            // graph records its own plan as it runs).
            session
                .metrics()
                .record_plan(format!("einsum {subscripts}\n{plan}"));
            // Its rechunks and steps are operations within this one.
            let _span = tracing::info_span!(
                "operation",
                operation = %format!("einsum {subscripts}"),
                inputs = %inputs
                    .iter()
                    .map(|a| format!("{} {:?}", a.path().display(), a.shape()))
                    .collect::<Vec<_>>()
                    .join("; "),
                output_shape = ?plan.output_shape,
                steps = span_int(plan.path.steps.len()),
                memory_limit_bytes = span_int(plan.memory_limit),
                threads = span_int(plan.threads),
            )
            .entered();
            let result = ResultSink {
                destination: &destination,
                record: &record,
            };
            run_einsum(
                session,
                plan,
                &subscripts,
                &inputs,
                &result,
                &opts,
                progress,
            )
        }))
    }
}

/// Runs the planned path: rechunks first, then every step, intermediates in
/// temporary stores removed once consumed (or when the run fails or is
/// cancelled).
fn run_einsum(
    session: &Session,
    plan: &EinsumPlan,
    subscripts: &str,
    inputs: &[ArrayRef],
    result: &ResultSink<'_>,
    opts: &OutputOptions,
    progress: &dyn Progress,
) -> Result<EinsumReport> {
    let limit = plan.memory_limit;
    let dtype = inputs[0].dtype();
    let scalar = plan.output_shape.is_empty();
    let out = match result.destination {
        Destination::Array(out) => Some(out.as_path()),
        _ => None,
    };
    let mut report = EinsumReport {
        plan: plan.clone(),
        steps: Vec::new(),
        value: None,
        seconds: 0.0,
        scratch: None,
    };
    // Refuse before any I/O: every step's smallest task must fit.
    for (k, s) in report.plan.path.steps.iter().enumerate() {
        if s.step.min_task_bytes > limit {
            return Err(Error::MemoryLimit {
                remedy: crate::core::Remedy::SmallerChunks,
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
    let mut arrays: Vec<Option<ArrayRef>> = inputs.iter().cloned().map(Some).collect();
    let mut temps: Vec<Option<TempStore>> = (0..n).map(|_| None).collect();
    let distributed = session.ranks().is_distributed();
    // A store's file system filling up while it is written names the tiers.
    let tier_full = |store: &TempStore, err: Error| match session.spill() {
        Ok(spill) => store.no_space_as_tier_full(err, &spill),
        Err(_) => err,
    };
    let mut intermediates = report.plan.intermediates.clone().into_iter();
    let mut next_temp = || {
        let placed = intermediates
            .next()
            .ok_or_else(|| Error::internal("an einsum intermediate the plan did not place"))?;
        job_temp(session, &placed.what, placed.bytes)
    };
    for (k, chunks) in report.plan.rechunked.clone() {
        let temp = next_temp()?;
        let op = Rechunk::new(&inputs[k], chunks, temp.store.path())
            .intermediate(distributed)
            .plan(session)
            .and_then(|p| p.run_with(progress))
            .map_err(|e| tier_full(&temp.store, e))?;
        report.steps.push(op);
        let array = Arc::new(ZarrArray::open(temp.store.path())?);
        arrays[k] = Some(temp.share(session, array)?);
        temps[k] = Some(temp.store);
    }
    let steps = report.plan.path.steps.clone();
    let last = steps.len() - 1;
    for (k, s) in steps.iter().enumerate() {
        let step_inputs: Vec<ArrayRef> = s
            .operands
            .iter()
            .map(|&o| arrays[o].clone().expect("each operand is used once"))
            .collect();
        let (target, compression, temp) = match out.filter(|_| k == last && !scalar) {
            Some(out) => (out.to_path_buf(), opts.compression, None),
            None => {
                let temp = next_temp()?;
                (
                    temp.store.path().to_path_buf(),
                    Compression::None,
                    Some(temp),
                )
            }
        };
        let array_spec = ArraySpec::new(s.step.output_shape(), s.step.output_chunks.clone(), dtype)
            .with_compression(compression);
        array_spec.validate()?;
        let output = Arc::new(match temp {
            Some(_) if distributed => OutputArray::node_local(&target, array_spec).into_scratch(),
            Some(_) => OutputArray::new(&target, array_spec).into_scratch(),
            None => OutputArray::new(&target, array_spec),
        });
        let name = format!("einsum step {k}/{}: {}", steps.len(), s.step.subscripts());
        let absent = AbsentTiles::of(&step_inputs)?;
        let graph = contraction_graph(
            &s.step,
            &step_inputs,
            output.clone(),
            &name,
            absent.as_ref(),
        )?;
        let body = Arc::new(ContractionBody {
            step: s.step.clone(),
            absent,
        });
        // The result is identified by the whole einsum and its stored
        // operands (intermediates get fresh names on every run) and by the
        // step's tiles (they fix the summation order).
        let job = Job {
            resume: opts.resume && k == last,
            record: Some(result.record.clone()),
        };
        let op = plan_graph(session, graph, None, job, body)
            .and_then(|p| p.run_with(progress))
            .map_err(|e| match &temp {
                Some(t) => tier_full(&t.store, e),
                None => e,
            })?;
        report.steps.push(op);
        // Operands consumed by this step are not needed again.
        for &o in &s.operands {
            arrays[o] = None;
            temps[o] = None;
        }
        let written = output.array()?.clone();
        match temp {
            Some(temp) => {
                arrays.push(Some(temp.share(session, written)?));
                temps.push(Some(temp.store));
            }
            None => {
                arrays.push(Some(written));
                temps.push(None);
            }
        }
    }
    if scalar {
        let last_array = arrays.last().and_then(|a| a.clone()).expect("a last step");
        let value = dispatch_dtype!(dtype, T => last_array.read_chunk::<T>(&[0]).map(|b| crate::core::Element::to_f64(b.as_slice()[0])))?;
        report.value = Some(value);
        // Every rank has read the value before rank 0 removes its store.
        if session.ranks().is_distributed() {
            session.ranks().barrier();
        }
        if let Destination::Scalar(scalar) = result.destination
            && session.ranks().is_root()
        {
            scalar.write(dtype, value, result.record)?;
        }
    }
    if !scalar && out.is_none() {
        // `into_scratch`: the last step's array, kept with its store.
        if let (Some(Some(array)), Some(Some(temp))) = (arrays.pop(), temps.pop()) {
            report.scratch = Some((array, Arc::new(temp)));
        }
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

/// A temporary store for an intermediate: this rank's own, in its spill
/// area (node-local scratch), and the name every rank of the job knows it
/// by (rank 0's).
pub(crate) struct JobTemp {
    /// This rank's store.
    pub store: TempStore,
    /// The store's name in the job.
    pub name: String,
}

impl JobTemp {
    /// The written intermediate `array` (this rank's copy) as every rank
    /// reads it: itself in one process; under several ranks a
    /// [`NodeLocalArray`] fetching the other ranks' chunks (a collective).
    ///
    /// # Errors
    /// As [`NodeLocalArray::share`].
    pub fn share(&self, session: &Session, array: Arc<ZarrArray>) -> Result<ArrayRef> {
        if !session.ranks().is_distributed() {
            return Ok(array);
        }
        Ok(Arc::new(NodeLocalArray::share(session, array, &self.name)?))
    }
}

/// A temporary store for an intermediate named `what` taking at most
/// `bytes` (see [`JobTemp`]), in the first tier of the spill area with room.
///
/// # Errors
/// [`Error::TierFull`] when no tier has room for it now.
pub(crate) fn job_temp(session: &Session, what: &str, bytes: u64) -> Result<JobTemp> {
    let store = TempStore::new(session.spill()?.as_ref(), what, bytes)?;
    let mine = store
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ranks = session.ranks();
    let name = if ranks.is_distributed() {
        String::from_utf8_lossy(&ranks.broadcast(mine.as_bytes())).into_owned()
    } else {
        mine
    };
    Ok(JobTemp { store, name })
}

/// Where an einsum's result goes.
enum Destination {
    /// Nowhere: a scalar returned in the report.
    None,
    /// A new (or resumed) array.
    Array(PathBuf),
    /// A 0-d array.
    Scalar(ScalarOutput),
}

/// The result's destination and the record that identifies the job in it.
struct ResultSink<'a> {
    destination: &'a Destination,
    record: &'a Value,
}

/// What identifies an einsum in its result: the subscripts, the stored
/// operands (intermediates get fresh names on every run) and the last
/// step's tiles (they fix the summation order, so a resumed run must use
/// the same — the same memory limit and path).
fn result_record(subscripts: &str, inputs: &[ArrayRef], plan: &EinsumPlan) -> Value {
    let operands: Vec<&dyn ReadableArray> = inputs.iter().map(|a| &**a).collect();
    let mut record = job_record(&format!("einsum {subscripts}"), &operands);
    if let Some(last) = plan.path.steps.last() {
        record["step"] = json!(last.step.to_string());
    }
    record
}

/// Checks, reading only, that an array result can go to `out`: a new path,
/// or with resume the result of an interrupted run of the same job, laid
/// out as this plan would.
fn check_array_output(
    out: &Path,
    plan: &EinsumPlan,
    dtype: crate::core::DType,
    opts: &OutputOptions,
    record: &Value,
) -> Result<()> {
    if !(opts.resume && out.join("zarr.json").exists()) {
        return ZarrArray::check_creatable(out);
    }
    let Some(last) = plan.path.steps.last() else {
        return Err(Error::internal("an einsum plan without steps"));
    };
    let spec = ArraySpec::new(
        last.step.output_shape(),
        last.step.output_chunks.clone(),
        dtype,
    )
    .with_compression(opts.compression);
    let existing = ZarrArray::create_or_resume(out, &spec)?;
    existing.check_job(OPERATION_ATTRIBUTE, record).map(|_| ())
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
