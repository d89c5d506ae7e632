//! [`Map`]: an element-wise expression over one or two arrays, written to a
//! new store.

use std::path::PathBuf;
use std::sync::Arc;

use crate::core::shape::join_dims;
use crate::core::{Block, ChunkGrid, ChunkSet, Element, Error, Result};
use crate::dispatch_dtype;
use crate::exec::{Session, TaskBody, TaskIo};
use crate::io::{ArrayRef, IntoArrayRef};
use crate::memory::ChunkKey;
use crate::ops::codec_auto::resolve_codec;
use crate::ops::planned::{Job, plan_graph};
use crate::ops::streamed::{self, elements};
use crate::ops::{Expr, OpReport, OutputOptions, Planned};
use crate::plan::{
    ArrayId, ArrayRole, ChunkGraph, GridWalk, OutputArray, PlanReport, StreamTotals, TaskNode,
};
use crate::store::{ArraySpec, CodecChoice};

/// Elements converted to `f64` and evaluated at a time.
const SEGMENT: usize = 1 << 16;

/// An element-wise [`Expr`] over one or two stored arrays, written to a new
/// array chunked like `x`'s stored chunks. One task per chunk of `x`; chunks
/// of `y` (same shape and element type, any chunking) are assembled to match.
///
/// ```
/// # use tenrso_ooc::{DType, exec::Session, ops::{Expr, Fill, Generate, Map}, store::ArraySpec};
/// # let dir = tempfile::tempdir()?;
/// let session = Session::default();
/// let spec = ArraySpec::new(vec![5, 5], vec![2, 5], DType::F32);
/// let x = Generate::new(dir.path().join("x"), spec, Fill::Range).plan(&session)?.run()?.array;
/// let y = Map::new(Expr::parse("x*2+1")?, &x, dir.path().join("y")).plan(&session)?.run()?;
/// assert_eq!(y.plan.bytes_written, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Map {
    expr: Expr,
    x: ArrayRef,
    y: Option<ArrayRef>,
    out: PathBuf,
    output: OutputOptions,
}

impl Map {
    /// Evaluates `expr` over `x` into a new array at `out`.
    pub fn new(expr: Expr, x: &impl IntoArrayRef, out: impl Into<PathBuf>) -> Self {
        Self {
            expr,
            x: x.array_ref(),
            y: None,
            out: out.into(),
            output: OutputOptions::default(),
        }
    }

    /// The second operand, `y` in the expression.
    pub fn with_y(mut self, y: &impl IntoArrayRef) -> Self {
        self.y = Some(y.array_ref());
        self
    }

    /// Sets the output's compression and resumption (its chunking follows
    /// `x`).
    pub fn with_output_options(mut self, output: OutputOptions) -> Self {
        self.output = output;
        self
    }

    /// Plans the map.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for mismatched inputs or an expression that
    /// needs `y` without one.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, PlanReport, OpReport>> {
        let Self {
            expr,
            x,
            y,
            out,
            output: opts,
        } = self;
        let y = y.clone();
        if opts.chunk_shape.is_some() {
            return Err(Error::invalid(
                "map chunks its output like x's stored chunks: an output chunk shape does not apply",
            ));
        }
        if expr.uses_y() && y.is_none() {
            return Err(Error::invalid(format!(
                "expression `{expr}` uses y: give a second input"
            )));
        }
        if let Some(y) = &y
            && (y.shape() != x.shape() || y.dtype() != x.dtype())
        {
            return Err(Error::invalid(format!(
                "map needs inputs of one shape and type: {} is {} {}, {} is {} {}",
                x.path().display(),
                x.dtype(),
                join_dims(x.shape()),
                y.path().display(),
                y.dtype(),
                join_dims(y.shape())
            )));
        }
        let y = y.filter(|_| expr.uses_y());
        let dtype = x.dtype();
        let itemsize = dtype.size() as u64;
        // Elements never written in x (and y) are their fill values, so the
        // output there is the expression of the fills: the output's fill.
        let fill = {
            let mut v = [0.0];
            let y_fill = y.as_ref().map(|y| [y.fill_value()]);
            expr.eval(&[x.fill_value()], y_fill.as_ref().map(|f| &f[..]), &mut v);
            v[0]
        };
        let mut spec = ArraySpec::new(
            x.shape().to_vec(),
            x.chunk_grid().chunk_shape().to_vec(),
            dtype,
        )
        .with_compression(opts.compression)
        .with_fill_value(fill);
        if let Some(goal) = opts.auto_codec {
            // The output's samples: the expression of x's (and y's).
            dispatch_dtype!(dtype, T => resolve_codec(
                CodecChoice::Auto(goal),
                &mut spec,
                out,
                opts.resume,
                session,
                |region| {
                    let xs = x.read_region::<T>(region)?;
                    let ys = y.as_ref().map(|y| y.read_region::<T>(region)).transpose()?;
                    let mut values = Vec::with_capacity(xs.as_slice().len());
                    Evaluator::new(expr).append(
                        xs.as_slice(),
                        ys.as_ref().map(|b| b.as_slice()),
                        &mut values,
                    );
                    Block::from_vec(region.shape().to_vec(), values)
                },
            ))?;
        }
        let mut graph = ChunkGraph::new(format!("map `{expr}`"), dtype);
        let x_id = graph.add_array(
            x.path().display().to_string(),
            ArrayRole::Input(Arc::clone(x)),
            x.chunk_grid().clone(),
        );
        let y_id = y.as_ref().map(|y| {
            graph.add_array(
                y.path().display().to_string(),
                ArrayRole::Input(y.clone()),
                y.chunk_grid().clone(),
            )
        });
        let out_id = graph.add_array(
            out.display().to_string(),
            ArrayRole::Output(Arc::new(OutputArray::new(out.clone(), spec))),
            x.chunk_grid().clone(),
        );
        let same_grid = y.as_ref().is_some_and(|y| y.chunk_grid() == x.chunk_grid());
        let y_chunk_bytes = y.as_ref().map_or(0, |y| y.chunk_nbytes());
        let segment_bytes = SEGMENT as u64 * 8 * 3;
        // Large chunks are streamed (y too when it shares x's grid).
        let streamed = streamed::streams(&**x) && (y.is_none() || same_grid);
        let rows_per_slab = streamed::slab_rows(&**x);
        let stream_bytes = y
            .as_ref()
            .map_or(0, |y| y.stream_working_set(rows_per_slab))
            .max(x.stream_working_set(rows_per_slab));
        // One task per chunk of x that holds data (or whose y chunk does).
        // With y on another grid, one per chunk of x, listed: a chunk of y
        // serves several tasks, and the cache keeps it until its last.
        let x_stored = x.stored_chunk_set()?;
        let tasks = match &y {
            None => x_stored,
            Some(y) if same_grid => x_stored.union(&y.stored_chunk_set()?),
            Some(y) => {
                let chunks = x.chunk_grid().num_chunks();
                graph.check_listing(
                    chunks,
                    chunks.saturating_add(y.chunk_grid().num_chunks()),
                    session.memory_limit(),
                )?;
                ChunkSet::all(chunks)
            }
        };
        let listed = y.is_some() && !same_grid;
        let grid = x.chunk_grid().clone();
        let y_grid = y.as_ref().map(|y| y.chunk_grid().clone());
        let pinned = x.chunk_nbytes() + y_chunk_bytes;
        let task = move |index: u64| {
            let key = ChunkKey::new(x_id, index);
            let bytes = grid.chunk_region(&grid.chunk_coords(index)).num_elements() * itemsize;
            let write = Some(ChunkKey::new(out_id, index));
            if streamed {
                let mut streams = vec![key];
                streams.extend(y_id.map(|y_id| ChunkKey::new(y_id, index)));
                return TaskNode {
                    stage: 0,
                    reads: Vec::new(),
                    streams,
                    write,
                    scratch_bytes: bytes + segment_bytes + stream_bytes,
                    pinned_bytes: 0,
                    work_bytes: bytes,
                };
            }
            let mut reads = vec![key];
            let mut scratch = bytes + segment_bytes;
            if let (Some(y_id), Some(y_grid)) = (y_id, &y_grid) {
                if same_grid {
                    reads.push(ChunkKey::new(y_id, index));
                } else {
                    let region = grid.chunk_region(&grid.chunk_coords(index));
                    reads.extend(
                        ChunkGrid::iter_region(&y_grid.chunks_touching(&region))
                            .map(|c| ChunkKey::new(y_id, y_grid.chunk_linear_index(&c))),
                    );
                    scratch += bytes; // the assembled region of y
                }
            }
            TaskNode {
                stage: 0,
                reads,
                streams: Vec::new(),
                write,
                scratch_bytes: scratch,
                pinned_bytes: pinned,
                work_bytes: bytes,
            }
        };
        let x_bytes = x.stored_nbytes(&tasks);
        let totals = StreamTotals {
            work_bytes: x_bytes,
            bytes_read: x_bytes * (1 + u64::from(y.is_some())),
            bytes_written: x_bytes,
            absent_chunks: tasks.absent() * (1 + u64::from(y.is_some())),
        };
        let largest = if x.chunk_grid().num_chunks() > 0 {
            task(0)
        } else {
            TaskNode::default()
        };
        if listed {
            graph.tasks = (0..tasks.len()).map(task).collect();
        } else {
            graph.stream = Some(Arc::new(GridWalk::new(tasks, largest, totals, task)));
        }
        let body = Arc::new(MapBody {
            expr: expr.clone(),
            y: y_id.map(|id| (id, same_grid)),
            slab_rows: streamed.then_some(rows_per_slab),
        });
        plan_graph(session, graph, None, Job::resuming(opts.resume), body)
    }
}

struct MapBody {
    expr: Expr,
    /// The second input and whether it shares `x`'s grid.
    y: Option<(ArrayId, bool)>,
    /// Rows per slab when the inputs are streamed.
    slab_rows: Option<u64>,
}

/// The `f64` buffers an expression is evaluated in, a segment at a time.
struct Evaluator<'e> {
    expr: &'e Expr,
    xs: Vec<f64>,
    ys: Vec<f64>,
    rs: Vec<f64>,
}

impl<'e> Evaluator<'e> {
    fn new(expr: &'e Expr) -> Self {
        Self {
            expr,
            xs: vec![0.0; SEGMENT],
            ys: vec![0.0; SEGMENT],
            rs: vec![0.0; SEGMENT],
        }
    }

    /// Evaluates over `x` (and `y`, as long), appending the results to `out`.
    fn append<T: Element>(&mut self, x: &[T], y: Option<&[T]>, out: &mut Vec<T>) {
        for start in (0..x.len()).step_by(SEGMENT) {
            let len = SEGMENT.min(x.len() - start);
            self.evaluate(&x[start..start + len], y.map(|y| &y[start..start + len]));
            out.extend(self.rs[..len].iter().map(|v| T::from_f64(*v)));
        }
    }

    /// Evaluates over `x` and `y` (as long), writing the results over `x`.
    fn in_place<T: Element>(&mut self, x: &mut [T], y: &[T]) {
        for start in (0..x.len()).step_by(SEGMENT) {
            let len = SEGMENT.min(x.len() - start);
            self.evaluate(&x[start..start + len], Some(&y[start..start + len]));
            for (d, r) in x[start..start + len].iter_mut().zip(&self.rs[..len]) {
                *d = T::from_f64(*r);
            }
        }
    }

    /// One segment, into `rs`.
    fn evaluate<T: Element>(&mut self, x: &[T], y: Option<&[T]>) {
        let len = x.len();
        for (d, s) in self.xs[..len].iter_mut().zip(x) {
            *d = s.to_f64();
        }
        let y_seg = y.map(|y| {
            for (d, s) in self.ys[..len].iter_mut().zip(y) {
                *d = s.to_f64();
            }
            &self.ys[..len]
        });
        self.expr.eval(&self.xs[..len], y_seg, &mut self.rs[..len]);
    }
}

impl MapBody {
    /// The task of a streamed chunk: x's slabs evaluated into the output
    /// block as they come; with y, x's values first, then y's slabs
    /// evaluated against them in place.
    fn run_streamed<T: Element>(
        &self,
        io: &mut TaskIo<'_, T>,
        slab_rows: u64,
    ) -> Result<Option<Block<T>>> {
        let region = io.graph().region(io.task().streams[0]);
        let row: usize = region.shape()[1..].iter().product::<u64>() as usize;
        let mut out: Vec<T> = Vec::with_capacity(region.num_elements() as usize);
        let mut evaluator = Evaluator::new(&self.expr);
        if self.y.is_none() {
            io.stream_rows(0, slab_rows, &mut |_, bytes| {
                evaluator.append(elements::<T>(bytes)?, None, &mut out);
                Ok(())
            })?;
        } else {
            io.stream_rows(0, slab_rows, &mut |_, bytes| {
                out.extend_from_slice(elements::<T>(bytes)?);
                Ok(())
            })?;
            io.stream_rows(1, slab_rows, &mut |r0, bytes| {
                let y = elements::<T>(bytes)?;
                let start = r0 as usize * row;
                let x = out.get_mut(start..start + y.len()).ok_or_else(|| {
                    Error::internal("y's slabs do not match x's chunk".to_string())
                })?;
                evaluator.in_place(x, y);
                Ok(())
            })?;
        }
        Ok(Some(Block::from_vec(region.shape().to_vec(), out)?))
    }
}

impl<T: Element> TaskBody<T> for MapBody {
    fn run(&self, _index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        if let Some(slab_rows) = self.slab_rows {
            return self.run_streamed(io, slab_rows);
        }
        let x = io.input(0)?;
        let region = io.graph().region(x.key());
        // y: a pinned chunk on the same grid, or a region assembled from its chunks.
        let (y_pinned, y_owned);
        let y_block: Option<&[T]> = match self.y {
            None => None,
            Some((_, true)) => {
                y_pinned = io.input(1)?;
                Some(y_pinned.as_slice())
            }
            Some((id, false)) => {
                y_owned = io.assemble(id, &region)?;
                Some(y_owned.as_slice())
            }
        };
        let mut out = Vec::with_capacity(x.len());
        Evaluator::new(&self.expr).append(x.as_slice(), y_block, &mut out);
        Ok(Some(Block::from_vec(region.shape().to_vec(), out)?))
    }
}
