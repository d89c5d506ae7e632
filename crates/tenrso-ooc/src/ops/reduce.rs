//! [`Reduce`]: sum, mean, min, max and L2 norm over all or some axes.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::core::shape::join_dims;
use crate::core::{Block, ChunkGrid, Element, Error, Region, Result, Shape, max_nan, min_nan};
use crate::exec::{Session, TaskBody, TaskIo};
use crate::io::{ArrayRef, IntoArrayRef};
use crate::ops::pairwise::{PairwiseStream, pairwise};
use crate::ops::planned::{Job, operation_record, plan_graph};
use crate::ops::scalar_output::ScalarOutput;
use crate::ops::streamed::{self, elements};
use crate::ops::{OpReport, OutputOptions, Planned};
use crate::plan::{ArrayRole, ChunkGraph, OutputArray, PlanReport, TaskNode};
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
        let limit = session.memory_limit();
        if full {
            graph.check_listing(grid.num_chunks(), grid.num_chunks(), limit)?;
            // Each task reads one chunk and adds it up: nothing to overlap.
            graph.prefetch = false;
            // Large chunks are streamed a slab at a time: the slab stays in
            // the CPU caches while it is summed (same tree, same bits).
            let slab_rows = streamed::streams(&**input).then(|| streamed::slab_rows(&**input));
            for chunk in grid.iter() {
                let key = graph.key(in_id, &chunk);
                graph.tasks.push(match slab_rows {
                    Some(rows) => TaskNode {
                        stage: 0,
                        reads: Vec::new(),
                        streams: vec![key],
                        write: None,
                        scratch_bytes: input.stream_working_set(rows) + 128 * 8,
                        pinned_bytes: 0,
                        work_bytes: graph.chunk_bytes(key),
                    },
                    None => TaskNode {
                        stage: 0,
                        reads: vec![key],
                        streams: Vec::new(),
                        write: None,
                        scratch_bytes: 0,
                        pinned_bytes: input.chunk_nbytes(),
                        work_bytes: graph.chunk_bytes(key),
                    },
                });
            }
            let body = Arc::new(FullBody {
                op,
                partials: Mutex::new(vec![None; graph.tasks.len()]),
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
                    let value = finish.finish(&shape);
                    if let Some(scalar) = scalar_out {
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
        let spec = ArraySpec::new(out_shape, out_chunks, dtype).with_compression(opts.compression);
        let out_id = graph.add_array(
            out.display().to_string(),
            ArrayRole::Output(Arc::new(OutputArray::new(out, spec))),
            out_grid.clone(),
        );
        // The reduced axes' chunk coordinates, visited in C order by every task.
        let reduced_axes: Vec<usize> = (0..ndim).filter(|a| reduced[*a]).collect();
        let reduced_grid = Shape::new(
            reduced_axes
                .iter()
                .map(|a| grid.grid_shape()[*a])
                .collect::<Vec<_>>(),
        );
        graph.check_listing(out_grid.num_chunks(), grid.num_chunks(), limit)?;
        for out_chunk in out_grid.iter() {
            let mut reads = Vec::with_capacity(reduced_grid.num_elements() as usize);
            for k in 0..reduced_grid.num_elements() {
                let r = reduced_grid.unravel(k);
                let mut coords = vec![0u64; ndim];
                for (i, a) in kept.iter().enumerate() {
                    coords[*a] = out_chunk[i];
                }
                for (i, a) in reduced_axes.iter().enumerate() {
                    coords[*a] = r[i];
                }
                reads.push(graph.key(in_id, &coords));
            }
            let write = graph.key(out_id, &out_chunk);
            let out_elements = graph.region(write).num_elements();
            graph.tasks.push(TaskNode {
                stage: 0,
                reads,
                streams: Vec::new(),
                write: Some(write),
                scratch_bytes: out_elements * (16 + dtype.size() as u64),
                pinned_bytes: input.chunk_nbytes(),
                work_bytes: input.nbytes() / out_grid.num_chunks().max(1),
            });
        }
        // Each task adds up its chunks one after another: nothing to overlap.
        graph.prefetch = false;
        let count: u64 = reduced_axes.iter().map(|a| input.shape()[*a]).product();
        let body = Arc::new(AxesBody { op, reduced, count });
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
#[derive(Debug, Clone, Copy, Default)]
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

struct FullBody {
    op: ReduceOp,
    partials: Mutex<Vec<Option<Partial>>>,
    /// Rows per slab when chunks are streamed.
    slab_rows: Option<u64>,
}

impl FullBody {
    /// Combines the chunks' partials in chunk order.
    fn finish(&self, shape: &[u64]) -> f64 {
        let partials = self.partials.lock().unwrap_or_else(|p| p.into_inner());
        let (mut sum, mut comp) = (0.0, 0.0);
        let (mut lo, mut hi, mut nan) = (f64::INFINITY, f64::NEG_INFINITY, false);
        for p in partials.iter().flatten() {
            neumaier(&mut sum, &mut comp, p.sum);
            lo = lo.min(p.min);
            hi = hi.max(p.max);
            nan |= p.nan;
        }
        let total = sum + comp;
        let count = Shape::new(shape.to_vec()).num_elements() as f64;
        match self.op {
            ReduceOp::Sum => total,
            ReduceOp::Mean => total / count,
            ReduceOp::Norm => total.sqrt(),
            ReduceOp::Min if nan => f64::NAN,
            ReduceOp::Max if nan => f64::NAN,
            ReduceOp::Min => lo,
            ReduceOp::Max => hi,
        }
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
        ..Default::default()
    })
}

impl<T: Element> TaskBody<T> for FullBody {
    fn run(&self, index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        if let Some(slab_rows) = self.slab_rows {
            let partial = self.streamed_partial(io, slab_rows)?;
            self.partials.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(partial);
            return Ok(None);
        }
        let chunk = io.input(0)?;
        let v = chunk.as_slice();
        let partial = match self.op {
            ReduceOp::Sum | ReduceOp::Mean => Partial {
                sum: pairwise(v, identity),
                ..Default::default()
            },
            ReduceOp::Norm => Partial {
                sum: pairwise(v, square),
                ..Default::default()
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
        self.partials.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(partial);
        Ok(None)
    }
}

struct AxesBody {
    op: ReduceOp,
    /// Per input axis: reduced or kept.
    reduced: Vec<bool>,
    /// Elements reduced into each output element (for the mean).
    count: u64,
}

impl<T: Element> TaskBody<T> for AxesBody {
    fn run(&self, _index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let out_key = io.task().write.expect("axis reductions write");
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
