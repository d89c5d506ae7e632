//! [`Reduce`]: sum, mean, min, max and L2 norm over all or some axes.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::shape::join_dims;
use crate::core::{
    Block, ChunkGrid, ChunkSet, Element, Error, Region, Result, Shape, max_nan, min_nan,
};
use crate::distributed::{Ranks, all_gather_u64s};
use crate::exec::{Session, TaskBody, TaskIo};
use crate::io::{ArrayRef, IntoArrayRef};
use crate::memory::ChunkKey;
use crate::ops::pairwise::{PairwiseStream, pairwise};
use crate::ops::planned::{Job, operation_record, plan_graph};
use crate::ops::reduction_tree::ReductionTree;
use crate::ops::scalar_output::ScalarOutput;
use crate::ops::streamed::{self, elements};
use crate::ops::{OpReport, OutputOptions, Planned};
use crate::plan::{
    ArrayRole, ChunkGraph, GridWalk, OutputArray, PlanReport, StreamTotals, TaskNode,
};
use crate::store::{ArraySpec, check_output_not_input};

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum (pairwise within chunks, compensated across them).
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Minimum (NaN if any element is NaN).
    Min,
    /// Maximum (NaN if any element is NaN).
    Max,
    /// Euclidean (L2) norm.
    Norm,
}

impl FromStr for ReduceOp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sum" => Ok(Self::Sum),
            "mean" => Ok(Self::Mean),
            "min" => Ok(Self::Min),
            "max" => Ok(Self::Max),
            "norm" | "l2" => Ok(Self::Norm),
            _ => Err(Error::invalid(format!(
                "unknown reduction `{s}`: expected sum, mean, min, max or norm"
            ))),
        }
    }
}

impl fmt::Display for ReduceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::Norm => "norm",
        })
    }
}

/// What a [`Reduce`] produced.
#[derive(Debug, Clone)]
pub struct ReduceReport {
    /// The plan and the run.
    pub op: OpReport,
    /// The value of a reduction over all axes (after a run).
    pub value: Option<f64>,
}

/// A reduction of a stored array with [`ReduceOp`] over all or some axes.
///
/// A full reduction gives its value ([`ReduceReport::value`]), and also
/// writes it as a 0-d array when an output path is given; a partial one
/// writes an array of the remaining axes, chunked like the input on those
/// axes.
///
/// Sums are pairwise within each chunk and compensated (Neumaier) across
/// chunks, in `f64`, in an order fixed by the plan: the result is bitwise the
/// same for any thread count.
///
/// ```
/// # use std::sync::Arc;
/// # use tenrso_ooc::{DType, exec::Session, ops::{Fill, Generate, Reduce, ReduceOp}, store::ArraySpec};
/// # let dir = tempfile::tempdir()?;
/// let session = Session::default();
/// let spec = ArraySpec::new(vec![6, 4], vec![4, 4], DType::F64);
/// let x = Generate::new(dir.path().join("x"), spec, Fill::Ones).plan(&session)?.run()?.array;
/// let total = Reduce::new(ReduceOp::Sum, &x).plan(&session)?.run()?;
/// assert_eq!(total.value, Some(24.0));
/// let rows = Reduce::new(ReduceOp::Max, &x).with_axes([1]).with_out(dir.path().join("m"));
/// println!("{}", rows.plan(&session)?); // the plan report
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reduce {
    op: ReduceOp,
    input: ArrayRef,
    axes: Option<Vec<usize>>,
    out: Option<PathBuf>,
    output: OutputOptions,
}

impl Reduce {
    /// Reduces `input` with `op` over all axes.
    pub fn new(op: ReduceOp, input: &impl IntoArrayRef) -> Self {
        Self {
            op,
            input: input.array_ref(),
            axes: None,
            out: None,
            output: OutputOptions::default(),
        }
    }

    /// Reduces over `axes` only (all axes listed is a full reduction).
    pub fn with_axes(mut self, axes: impl Into<Vec<usize>>) -> Self {
        self.axes = Some(axes.into());
        self
    }

    /// Writes the result to a new array at `path`.
    pub fn with_out(mut self, path: impl Into<PathBuf>) -> Self {
        self.out = Some(path.into());
        self
    }

    /// Sets the output's compression and resumption (its chunking follows
    /// the input).
    pub fn with_output_options(mut self, output: OutputOptions) -> Self {
        self.output = output;
        self
    }

    /// Plans the reduction.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for bad axes, a partial reduction without
    /// an output path, or a chunk shape request.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, PlanReport, ReduceReport>> {
        let Self {
            op,
            input,
            axes,
            out,
            output: opts,
        } = self;
        opts.check_fixed_codec("reduce")?;
        let (op, axes, out) = (*op, axes.as_deref(), out.as_deref());
        let ndim = input.shape().len();
        let mut reduced = vec![axes.is_none(); ndim];
        for &a in axes.unwrap_or(&[]) {
            if a >= ndim {
                return Err(Error::invalid(format!(
                    "axis {a} is out of range for an array of {ndim} axes"
                )));
            }
            if reduced[a] {
                return Err(Error::invalid(format!("axis {a} is listed twice")));
            }
            reduced[a] = true;
        }
        if opts.chunk_shape.is_some() {
            return Err(Error::invalid(
                "reduce chunks its output like the input's remaining axes: an output chunk shape does not apply",
            ));
        }
        let full = reduced.iter().all(|r| *r);
        let dtype = input.dtype();
        let grid = input.chunk_grid().clone();
        let mut graph = ChunkGraph::new(
            if full {
                format!("{op} over all axes")
            } else {
                format!("{op} over axes {:?}", axes.unwrap_or(&[]))
            },
            dtype,
        );
        let in_id = graph.add_array(
            input.path().display().to_string(),
            ArrayRole::Input(Arc::clone(input)),
            grid.clone(),
        );
        let kept: Vec<usize> = (0..ndim).filter(|a| !reduced[*a]).collect();
        let stored = input.stored_chunk_set()?;
        let fill = input.fill_value();
        if full {
            // Each task reads one chunk and adds it up: nothing to overlap.
            graph.prefetch = false;
            // Large chunks are streamed a slab at a time: the slab stays in
            // the CPU caches while it is summed (same tree, same bits).
            let slab_rows = streamed::streams(&**input).then(|| streamed::slab_rows(&**input));
            let task = {
                let (grid, itemsize) = (grid.clone(), dtype.size() as u64);
                let (scratch, pinned) = match slab_rows {
                    Some(rows) => (input.stream_working_set(rows) + 128 * 8, 0),
                    None => (0, input.chunk_nbytes()),
                };
                move |index: u64| {
                    let key = ChunkKey::new(in_id, index);
                    let bytes =
                        grid.chunk_region(&grid.chunk_coords(index)).num_elements() * itemsize;
                    TaskNode {
                        stage: 0,
                        reads: if slab_rows.is_some() {
                            Vec::new()
                        } else {
                            vec![key]
                        },
                        streams: if slab_rows.is_some() {
                            vec![key]
                        } else {
                            Vec::new()
                        },
                        write: None,
                        scratch_bytes: scratch,
                        pinned_bytes: pinned,
                        work_bytes: bytes,
                    }
                }
            };
            let bytes_read = input.stored_nbytes(&stored);
            let totals = StreamTotals {
                work_bytes: bytes_read,
                bytes_read,
                bytes_written: 0,
                absent_chunks: stored.absent(),
            };
            let count = stored.len();
            let largest = if grid.num_chunks() > 0 {
                task(0)
            } else {
                TaskNode::default()
            };
            graph.stream = Some(Arc::new(GridWalk::new(stored, largest, totals, task)));
            let body = Arc::new(FullBody {
                op,
                tree: ReductionTree::new(count, Partial::combine),
                stored_elements: AtomicU64::new(0),
                fill,
                slab_rows,
            });
            let shape = input.shape().to_vec();
            let record = operation_record(&graph);
            if let Some(out) = out {
                check_output_not_input(out, &[input.path()])?;
            }
            let scalar_out = out
                .map(|p| ScalarOutput::check(p, opts.compression, opts.resume, &record))
                .transpose()?;
            let finish = body.clone();
            return Ok(
                plan_graph(session, graph, None, Job::default(), body)?.then(move |report| {
                    let ranks = session.ranks();
                    let value = finish.finish(&shape, ranks)?;
                    if let Some(scalar) = scalar_out.filter(|_| ranks.is_root()) {
                        scalar.write(dtype, value, &record)?;
                    }
                    Ok(ReduceReport {
                        op: report,
                        value: Some(value),
                    })
                }),
            );
        }
        let Some(out) = out else {
            return Err(Error::invalid(format!(
                "reducing over axes {:?} leaves an array of shape {}: give an output path",
                axes.unwrap_or(&[]),
                join_dims(&kept.iter().map(|a| input.shape()[*a]).collect::<Vec<_>>())
            )));
        };
        let out_shape: Vec<u64> = kept.iter().map(|a| input.shape()[*a]).collect();
        let out_chunks: Vec<u64> = kept.iter().map(|a| grid.chunk_shape()[*a]).collect();
        let out_grid = ChunkGrid::new(out_shape.clone(), out_chunks.clone())?;
        // The reduced axes' chunk coordinates, visited in C order by every task.
        let reduced_axes: Vec<usize> = (0..ndim).filter(|a| reduced[*a]).collect();
        let count: u64 = reduced_axes.iter().map(|a| input.shape()[*a]).product();
        // An output element whose inputs were never written is this value:
        // the output's fill, so that such output chunks are not written.
        let spec = ArraySpec::new(out_shape, out_chunks, dtype)
            .with_compression(opts.compression)
            .with_fill_value(op.of_fill(fill, count));
        let out_id = graph.add_array(
            out.display().to_string(),
            ArrayRole::Output(Arc::new(OutputArray::new(out, spec))),
            out_grid.clone(),
        );
        let reduced_grid = Shape::new(
            reduced_axes
                .iter()
                .map(|a| grid.grid_shape()[*a])
                .collect::<Vec<_>>(),
        );
        let out_chunk_bytes = out_grid.chunk_shape().iter().product::<u64>() * dtype.size() as u64;
        let bytes_read = input.stored_nbytes(&stored);
        let totals = StreamTotals {
            work_bytes: input.nbytes(),
            bytes_read,
            bytes_written: out_grid.shape().num_elements() * dtype.size() as u64,
            absent_chunks: stored.absent(),
        };
        let work_each = input.nbytes() / out_grid.num_chunks().max(1);
        let pinned = input.chunk_nbytes();
        let task = {
            let (grid, out_grid) = (grid.clone(), out_grid.clone());
            let stored = stored.clone();
            move |out_index: u64, all: bool| {
                let out_chunk = out_grid.chunk_coords(out_index);
                let mut coords = vec![0u64; ndim];
                for (i, a) in kept.iter().enumerate() {
                    coords[*a] = out_chunk[i];
                }
                let mut reads = Vec::new();
                if !all && stored.len() < reduced_grid.num_elements() {
                    // Fewer stored chunks than positions to visit: pick the
                    // stored ones in this output chunk's slab (grid order
                    // is C order over the reduced axes here too).
                    for index in stored.iter() {
                        let c = grid.chunk_coords(index);
                        if kept.iter().enumerate().all(|(i, a)| c[*a] == out_chunk[i]) {
                            reads.push(ChunkKey::new(in_id, index));
                        }
                    }
                } else {
                    for k in 0..reduced_grid.num_elements() {
                        let r = reduced_grid.unravel(k);
                        for (i, a) in reduced_axes.iter().enumerate() {
                            coords[*a] = r[i];
                        }
                        let index = grid.chunk_linear_index(&coords);
                        if all || stored.contains(index) {
                            reads.push(ChunkKey::new(in_id, index));
                        }
                    }
                }
                let out_elements = out_grid.chunk_region(&out_chunk).num_elements();
                TaskNode {
                    stage: 0,
                    reads,
                    streams: Vec::new(),
                    write: Some(ChunkKey::new(out_id, out_index)),
                    scratch_bytes: out_elements * (16 + dtype.size() as u64),
                    pinned_bytes: pinned,
                    work_bytes: work_each,
                }
            }
        };
        let largest = if out_grid.num_chunks() == 0 {
            TaskNode::default()
        } else {
            let mut t = task(0, true);
            t.reads.truncate(1);
            t.scratch_bytes = out_chunk_bytes / dtype.size() as u64 * (16 + dtype.size() as u64);
            t
        };
        graph.stream = Some(Arc::new(GridWalk::new(
            ChunkSet::all(out_grid.num_chunks()),
            largest,
            totals,
            move |i| task(i, false),
        )));
        // Each task adds up its chunks one after another: nothing to overlap.
        graph.prefetch = false;
        let body = Arc::new(AxesBody {
            op,
            reduced,
            count,
            fill,
        });
        Ok(
            plan_graph(session, graph, None, Job::resuming(opts.resume), body)?.then(|report| {
                Ok(ReduceReport {
                    op: report,
                    value: None,
                })
            }),
        )
    }
}

/// A chunk's contribution to a full reduction.
#[derive(Debug, Clone, Copy)]
struct Partial {
    sum: f64,
    min: f64,
    max: f64,
    nan: bool,
}

/// Compensated (Neumaier) accumulation: `sum + comp` is the running total.
#[inline]
fn neumaier(sum: &mut f64, comp: &mut f64, x: f64) {
    let t = *sum + x;
    if sum.abs() >= x.abs() {
        *comp += (*sum - t) + x;
    } else {
        *comp += (x - t) + *sum;
    }
    *sum = t;
}

fn identity(x: f64) -> f64 {
    x
}

fn square(x: f64) -> f64 {
    x * x
}

fn extremes<T: Element>(v: &[T]) -> (f64, f64, bool) {
    let (mut lo, mut hi, mut nan) = (f64::INFINITY, f64::NEG_INFINITY, false);
    for x in v {
        let x = x.to_f64();
        nan |= x.is_nan();
        lo = lo.min(x);
        hi = hi.max(x);
    }
    (lo, hi, nan)
}

impl Partial {
    /// The partial as four words, bit for bit (to cross ranks).
    fn to_words(self) -> [u64; 4] {
        [
            self.sum.to_bits(),
            self.min.to_bits(),
            self.max.to_bits(),
            u64::from(self.nan),
        ]
    }

    /// The partial of [`to_words`](Self::to_words).
    fn from_words(w: &[u64]) -> Self {
        Partial {
            sum: f64::from_bits(w[0]),
            min: f64::from_bits(w[1]),
            max: f64::from_bits(w[2]),
            nan: w[3] != 0,
        }
    }

    /// Children combined in order: sums compensated (Neumaier), extremes
    /// folded.
    fn combine(children: &[Partial]) -> Partial {
        let (mut sum, mut comp) = (0.0, 0.0);
        let (mut min, mut max, mut nan) = (f64::INFINITY, f64::NEG_INFINITY, false);
        for p in children {
            neumaier(&mut sum, &mut comp, p.sum);
            min = min.min(p.min);
            max = max.max(p.max);
            nan |= p.nan;
        }
        Partial {
            sum: sum + comp,
            min,
            max,
            nan,
        }
    }
}

impl ReduceOp {
    /// The reduction of `count` elements all equal to `fill`: what elements
    /// never written reduce to.
    fn of_fill(self, fill: f64, count: u64) -> f64 {
        let n = count as f64;
        match self {
            Self::Sum => fill * n,
            Self::Mean => (fill * n) / n,
            Self::Norm => (fill * fill * n).sqrt(),
            Self::Min | Self::Max => fill,
        }
    }
}

struct FullBody {
    op: ReduceOp,
    /// The stored chunks' partials, combined in a fixed tree.
    tree: ReductionTree<Partial>,
    /// Elements of the stored chunks (the rest are the fill value).
    stored_elements: AtomicU64,
    /// The input's fill value.
    fill: f64,
    /// Rows per slab when chunks are streamed.
    slab_rows: Option<u64>,
}

impl FullBody {
    /// The stored chunks' tree, then the elements never written, counted
    /// as the fill value. With several ranks (a collective), every rank's
    /// tree frontier joins one tree on every rank: the same nodes combine
    /// the same children as in one process.
    fn finish(&self, shape: &[u64], ranks: &dyn Ranks) -> Result<f64> {
        let total_elements = Shape::new(shape.to_vec()).num_elements();
        let mut stored_elements = self.stored_elements.load(Ordering::Relaxed);
        let joined;
        let tree = if ranks.is_distributed() {
            // Each node as (level, index, the partial's four words).
            let mut mine = vec![stored_elements];
            for (level, index, p) in self.tree.frontier() {
                mine.extend([level as u64, index]);
                mine.extend(p.to_words());
            }
            joined = ReductionTree::new(self.tree.count(), Partial::combine);
            stored_elements = 0;
            for theirs in all_gather_u64s(ranks, &mine) {
                stored_elements += theirs.first().copied().unwrap_or(0);
                for n in theirs.get(1..).unwrap_or(&[]).chunks_exact(6) {
                    joined.add_at(n[0] as usize, n[1], Partial::from_words(&n[2..]));
                }
            }
            &joined
        } else {
            &self.tree
        };
        let mut root = match tree.finish() {
            Some(root) => root,
            None if stored_elements == 0 => Partial::combine(&[]),
            None => {
                return Err(Error::internal(
                    "a reduction ended with partials missing".to_string(),
                ));
            }
        };
        let absent = total_elements - stored_elements;
        if absent > 0 {
            let fill = self.fill;
            let (mut sum, mut comp) = (root.sum, 0.0);
            let of_fill = match self.op {
                ReduceOp::Norm => fill * fill * absent as f64,
                _ => fill * absent as f64,
            };
            neumaier(&mut sum, &mut comp, of_fill);
            root.sum = sum + comp;
            root.min = root.min.min(fill);
            root.max = root.max.max(fill);
            root.nan |= fill.is_nan();
        }
        let count = total_elements as f64;
        Ok(match self.op {
            ReduceOp::Sum => root.sum,
            ReduceOp::Mean => root.sum / count,
            ReduceOp::Norm => root.sum.sqrt(),
            ReduceOp::Min | ReduceOp::Max if root.nan => f64::NAN,
            ReduceOp::Min => root.min,
            ReduceOp::Max => root.max,
        })
    }
}

impl FullBody {
    /// The partial of a chunk streamed a slab at a time: the same sums as
    /// over the whole chunk (the pairwise tree does not depend on the
    /// slabs; minima and maxima do not depend on the order).
    fn streamed_partial<T: Element>(
        &self,
        io: &mut TaskIo<'_, T>,
        slab_rows: u64,
    ) -> Result<Partial> {
        match self.op {
            ReduceOp::Min | ReduceOp::Max => {
                let (mut min, mut max, mut nan) = (f64::INFINITY, f64::NEG_INFINITY, false);
                io.stream_rows(0, slab_rows, &mut |_, bytes| {
                    let (lo, hi, n) = extremes(elements::<T>(bytes)?);
                    min = min.min(lo);
                    max = max.max(hi);
                    nan |= n;
                    Ok(())
                })?;
                Ok(Partial {
                    sum: 0.0,
                    min,
                    max,
                    nan,
                })
            }
            // Each function its own instance, so that it is inlined.
            ReduceOp::Norm => streamed_sum(io, slab_rows, square),
            ReduceOp::Sum | ReduceOp::Mean => streamed_sum(io, slab_rows, identity),
        }
    }
}

/// The pairwise sum of `f` over the task's streamed chunk.
fn streamed_sum<T: Element, F: Fn(f64) -> f64>(
    io: &mut TaskIo<'_, T>,
    slab_rows: u64,
    f: F,
) -> Result<Partial> {
    let len = io.graph().region(io.task().streams[0]).num_elements() as usize;
    let mut sum = PairwiseStream::new(len, f);
    io.stream_rows(0, slab_rows, &mut |_, bytes| {
        sum.feed(elements::<T>(bytes)?);
        Ok(())
    })?;
    let sum = sum.total().ok_or_else(|| {
        Error::internal("a streamed chunk ended before its last element".to_string())
    })?;
    Ok(Partial {
        sum,
        ..Partial::combine(&[])
    })
}

impl<T: Element> TaskBody<T> for FullBody {
    fn run(&self, index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let key = io
            .task()
            .reads
            .first()
            .or(io.task().streams.first())
            .copied();
        let elements = key.map_or(0, |k| io.graph().region(k).num_elements());
        self.stored_elements.fetch_add(elements, Ordering::Relaxed);
        if let Some(slab_rows) = self.slab_rows {
            let partial = self.streamed_partial(io, slab_rows)?;
            self.tree.add(index as u64, partial);
            return Ok(None);
        }
        let chunk = io.input(0)?;
        let v = chunk.as_slice();
        let partial = match self.op {
            ReduceOp::Sum | ReduceOp::Mean => Partial {
                sum: pairwise(v, identity),
                ..Partial::combine(&[])
            },
            ReduceOp::Norm => Partial {
                sum: pairwise(v, square),
                ..Partial::combine(&[])
            },
            ReduceOp::Min | ReduceOp::Max => {
                let (min, max, nan) = extremes(v);
                Partial {
                    sum: 0.0,
                    min,
                    max,
                    nan,
                }
            }
        };
        self.tree.add(index as u64, partial);
        Ok(None)
    }
}

struct AxesBody {
    op: ReduceOp,
    /// Per input axis: reduced or kept.
    reduced: Vec<bool>,
    /// Elements reduced into each output element (for the mean).
    count: u64,
    /// The input's fill value: what its chunks never written hold.
    fill: f64,
}

impl<T: Element> TaskBody<T> for AxesBody {
    fn run(&self, _index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let Some(out_key) = io.task().write else {
            return Err(Error::internal(
                "an axis reduction task writes nothing".to_string(),
            ));
        };
        if io.task().reads.is_empty() {
            // Every input chunk is absent: the output chunk is the output's
            // fill value, left unwritten.
            return Ok(None);
        }
        let out_region = io.graph().region(out_key);
        let n = out_region.num_elements() as usize;
        let extreme = matches!(self.op, ReduceOp::Min | ReduceOp::Max);
        let init = match self.op {
            ReduceOp::Min => f64::INFINITY,
            ReduceOp::Max => f64::NEG_INFINITY,
            _ => 0.0,
        };
        let (mut acc, mut comp) = (vec![init; n], vec![0.0f64; if extreme { 0 } else { n }]);
        let out_strides = Shape::new(out_region.shape().to_vec()).strides();
        let ndim = self.reduced.len();
        let last = ndim - 1;
        for k in 0..io.task().reads.len() {
            let chunk = io.input(k)?;
            let region: Region = io.graph().region(chunk.key());
            let shape = region.shape();
            let row_len = shape[last] as usize;
            let rows = Shape::new(shape[..last].to_vec());
            let data = chunk.as_slice();
            for r in 0..rows.num_elements() {
                let idx = rows.unravel(r);
                // Offset of this row's first element in the output chunk.
                let mut base = 0u64;
                let mut o = 0usize;
                for (a, i) in idx.iter().enumerate() {
                    if !self.reduced[a] {
                        base += (region.start()[a] + i - out_region.start()[o]) * out_strides[o];
                        o += 1;
                    }
                }
                let row = &data[r as usize * row_len..(r as usize + 1) * row_len];
                if self.reduced[last] {
                    let b = base as usize;
                    match self.op {
                        ReduceOp::Sum | ReduceOp::Mean => {
                            neumaier(&mut acc[b], &mut comp[b], pairwise(row, identity))
                        }
                        ReduceOp::Norm => {
                            neumaier(&mut acc[b], &mut comp[b], pairwise(row, square))
                        }
                        ReduceOp::Min | ReduceOp::Max => {
                            let (lo, hi, nan) = extremes(row);
                            let v = if nan {
                                f64::NAN
                            } else if self.op == ReduceOp::Min {
                                lo
                            } else {
                                hi
                            };
                            acc[b] = if self.op == ReduceOp::Min {
                                min_nan(acc[b], v)
                            } else {
                                max_nan(acc[b], v)
                            };
                        }
                    }
                } else {
                    let off = (base + region.start()[last] - out_region.start()[o]) as usize;
                    let a = &mut acc[off..off + row_len];
                    match self.op {
                        ReduceOp::Sum | ReduceOp::Mean => {
                            let c = &mut comp[off..off + row_len];
                            for ((s, c), x) in a.iter_mut().zip(c).zip(row) {
                                neumaier(s, c, x.to_f64());
                            }
                        }
                        ReduceOp::Norm => {
                            let c = &mut comp[off..off + row_len];
                            for ((s, c), x) in a.iter_mut().zip(c).zip(row) {
                                neumaier(s, c, square(x.to_f64()));
                            }
                        }
                        ReduceOp::Min => a
                            .iter_mut()
                            .zip(row)
                            .for_each(|(s, x)| *s = min_nan(*s, x.to_f64())),
                        ReduceOp::Max => a
                            .iter_mut()
                            .zip(row)
                            .for_each(|(s, x)| *s = max_nan(*s, x.to_f64())),
                    }
                }
            }
        }
        // Elements per output element in chunks never written.
        let stored: u64 = io
            .task()
            .reads
            .iter()
            .map(|k| {
                let region = io.graph().region(*k);
                (0..ndim)
                    .filter(|a| self.reduced[*a])
                    .map(|a| region.shape()[a])
                    .product::<u64>()
            })
            .sum();
        let absent = self.count - stored;
        if absent > 0 {
            let fill = self.fill;
            for i in 0..n {
                match self.op {
                    ReduceOp::Sum | ReduceOp::Mean => {
                        neumaier(&mut acc[i], &mut comp[i], fill * absent as f64)
                    }
                    ReduceOp::Norm => {
                        neumaier(&mut acc[i], &mut comp[i], fill * fill * absent as f64)
                    }
                    ReduceOp::Min => acc[i] = min_nan(acc[i], fill),
                    ReduceOp::Max => acc[i] = max_nan(acc[i], fill),
                }
            }
        }
        let count = self.count as f64;
        let values = (0..n).map(|i| {
            let total = if extreme { acc[i] } else { acc[i] + comp[i] };
            T::from_f64(match self.op {
                ReduceOp::Mean => total / count,
                ReduceOp::Norm => total.sqrt(),
                _ => total,
            })
        });
        Ok(Some(Block::from_vec(
            out_region.shape().to_vec(),
            values.collect(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_a_compensated_reference() {
        let v: Vec<f64> = (0..100_003)
            .map(|i| ((i * 7919) % 1000) as f64 * 1e-3 + 1e6)
            .collect();
        let exact: f64 = v.iter().map(|x| (x * 1000.0).round() as i64).sum::<i64>() as f64 / 1000.0;
        assert!((pairwise(&v, identity) - exact).abs() < 1e-6 * exact.abs() * 1e-6);
        let (mut s, mut c) = (0.0, 0.0);
        for x in [1e16, 1.0, -1e16] {
            neumaier(&mut s, &mut c, x);
        }
        assert_eq!(s + c, 1.0);
    }

    #[test]
    fn parse_ops() {
        assert_eq!("norm".parse::<ReduceOp>().unwrap(), ReduceOp::Norm);
        assert!("median".parse::<ReduceOp>().is_err());
    }
}
