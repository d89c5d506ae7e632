//! [`stream_accumulate`]: one pass over a stored tensor — through the
//! executor, or over a [`ResidentTensor`] when the tensor was loaded into
//! memory — adding each chunk's [`ChunkKernel`] contribution into an
//! in-memory matrix in a fixed order.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::DType;
use crate::core::ChunkSet;
use crate::core::{Block, ByteSize, Element, Error, Result, Shape};
use crate::decomp::Matrix;
use crate::decomp::chunk_kernels::ChunkKernel;
use crate::dispatch_dtype;
use crate::distributed::contiguous_share;
use crate::exec::{
    Progress, Session, TaskBody, TaskIo, TaskSet, execute_planned, for_each_owned_task,
    for_each_task,
};
use crate::io::{ArrayRef, ReadableArray};
use crate::memory::{ChunkKey, Reservation};
use crate::plan::{ArrayRole, ChunkGraph, GridWalk, StreamTotals, TaskNode};

/// A pass splits its work into at least this many tasks when the output
/// blocks alone give fewer (a fixed number, so the summation order never
/// depends on the thread count).
const MIN_TASKS: u64 = 8;

/// Output blocks at most this large may be split over several tasks whose
/// partial sums are added at the end.
const SPLIT_MAX_BYTES: u64 = 1 << 20;

/// A stored tensor held in memory as `f64` chunks (reserved from the pool),
/// so that the passes of an iterative method read memory instead of the
/// store when the tensor is small enough.
pub(crate) struct ResidentTensor {
    chunks: Vec<Vec<f64>>,
    _reservation: Reservation,
}

impl ResidentTensor {
    /// Loads `x` when its `f64` values take at most half the memory limit
    /// (leaving the rest to the passes); `None` otherwise.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn load_if_small(
        session: &Session,
        x: &dyn ReadableArray,
        progress: &dyn Progress,
    ) -> Result<Option<Self>> {
        let bytes = x.chunk_grid().shape().num_elements() * 8;
        if bytes > session.memory_limit() / 2 {
            return Ok(None);
        }
        let mut reservation = session.pool().reservation("tensor held in memory");
        if reservation.try_grow(bytes).is_err() {
            return Ok(None);
        }
        let grid = x.chunk_grid();
        let slots: Mutex<Vec<Vec<f64>>> = Mutex::new(vec![Vec::new(); grid.num_chunks() as usize]);
        progress.start("load the tensor into memory", x.nbytes());
        let result = dispatch_dtype!(x.dtype(), T => {
            for_each_task(session, TaskSet { count: grid.num_chunks() as usize, bytes_each: x.chunk_nbytes(), what: "loading one chunk" }, progress, |i| {
                let started = std::time::Instant::now();
                let block = x.read_chunk::<T>(&grid.chunk_coords(i as u64))?;
                session.metrics().chunk_read(block.byte_len() as u64, started.elapsed());
                let values: Vec<f64> = block.as_slice().iter().map(|v| v.to_f64()).collect();
                slots.lock().unwrap_or_else(|p| p.into_inner())[i] = values;
                Ok(block.byte_len() as u64)
            })
        });
        progress.finish();
        result?;
        Ok(Some(Self {
            chunks: slots.into_inner().unwrap_or_else(|p| p.into_inner()),
            _reservation: reservation,
        }))
    }
}

/// The tasks of a pass: each owns one output block (the chunks sharing
/// coordinates on the output modes), or a fixed share of one. Tasks are
/// made from the grid's arithmetic, never listed.
#[derive(Debug, Clone)]
struct PassTasks {
    /// Tasks per block (> 1: partial sums added at the end).
    parts: u64,
    /// Output rows (C order over the output modes' extents).
    rows: u64,
    /// Chunk shape restricted to the output modes.
    out_chunk: Vec<u64>,
    /// Extents of the output modes.
    out_extents: Vec<u64>,
    /// Rows of a full output block.
    block_rows: u64,
    /// The output modes, and the others.
    out_modes: Vec<usize>,
    other_modes: Vec<usize>,
    /// The chunk grid on the output modes (one block per point), and on
    /// the others (the chunks of a block).
    block_grid: Shape,
    member_grid: Shape,
}

impl PassTasks {
    /// Number of tasks.
    fn count(&self) -> u64 {
        self.block_grid.num_elements() * self.parts
    }

    /// Task `t`'s block: its chunk coordinates on the output modes.
    fn block(&self, t: u64) -> Vec<u64> {
        self.block_grid.unravel(t / self.parts)
    }

    /// The chunks task `t` reads, in order.
    fn reads(&self, t: u64) -> impl Iterator<Item = Vec<u64>> + '_ {
        let (block, p) = (self.block(t), t % self.parts);
        let members = self.member_grid.num_elements();
        let ndim = self.out_modes.len() + self.other_modes.len();
        ((members * p / self.parts)..(members * (p + 1) / self.parts)).map(move |k| {
            let member = self.member_grid.unravel(k);
            let mut coords = vec![0u64; ndim];
            for (i, m) in self.out_modes.iter().enumerate() {
                coords[*m] = block[i];
            }
            for (i, m) in self.other_modes.iter().enumerate() {
                coords[*m] = member[i];
            }
            coords
        })
    }
}

fn pass_tasks(x: &dyn ReadableArray, out_modes: &[usize], cols: usize) -> PassTasks {
    let grid = x.chunk_grid();
    let ndim = grid.ndim();
    let other_modes: Vec<usize> = (0..ndim).filter(|m| !out_modes.contains(m)).collect();
    let pick =
        |dims: &[u64], modes: &[usize]| -> Vec<u64> { modes.iter().map(|m| dims[*m]).collect() };
    let out_extents = pick(grid.shape().dims(), out_modes);
    let out_chunk = pick(grid.chunk_shape(), out_modes);
    let block_grid = Shape::new(pick(grid.grid_shape(), out_modes));
    let member_grid = Shape::new(pick(grid.grid_shape(), &other_modes));
    let (blocks, members) = (block_grid.num_elements(), member_grid.num_elements());
    let block_rows: u64 = out_chunk.iter().product();
    let parts = if blocks < MIN_TASKS && block_rows * cols as u64 * 8 <= SPLIT_MAX_BYTES {
        MIN_TASKS.div_ceil(blocks.max(1)).min(members.max(1))
    } else {
        1
    };
    PassTasks {
        parts,
        rows: out_extents.iter().product(),
        out_chunk,
        out_extents,
        block_rows,
        out_modes: out_modes.to_vec(),
        other_modes,
        block_grid,
        member_grid,
    }
}

/// Streams every chunk of `x` once (from `resident` when given), adding
/// `kernel`'s contribution of each into a matrix with one row per element of
/// the extents of `out_modes` (ascending) and `kernel.cols()` columns.
///
/// Tasks own disjoint row blocks (the chunks sharing their coordinates on
/// `out_modes`), so no two tasks add into the same rows; when there are
/// fewer than [`MIN_TASKS`] small blocks, each block's chunks are split over
/// a fixed number of tasks whose partial sums are added in task order. The
/// result is bitwise the same for any thread count, resident or not.
///
/// The result matrix is reserved from the session's pool for the pass.
///
/// # Errors
/// [`Error::MemoryLimit`] when the result and one task do not fit; store and
/// executor errors.
pub(crate) fn stream_accumulate(
    session: &Session,
    x: &ArrayRef,
    resident: Option<&ResidentTensor>,
    out_modes: &[usize],
    kernel: &dyn ChunkKernel,
    label: &str,
    progress: &dyn Progress,
) -> Result<Matrix> {
    stream_accumulate_held(session, x, resident, out_modes, kernel, label, progress).map(|(m, _)| m)
}

/// [`stream_accumulate`], with the result's reservation kept for the caller
/// to hold as long as it keeps the result (so the pool counts it).
pub(crate) fn stream_accumulate_held(
    session: &Session,
    x: &ArrayRef,
    resident: Option<&ResidentTensor>,
    out_modes: &[usize],
    kernel: &dyn ChunkKernel,
    label: &str,
    progress: &dyn Progress,
) -> Result<(Matrix, Reservation)> {
    let _pass = tracing::info_span!(
        "pass",
        pass = label,
        modes = ?out_modes,
        tensor_bytes = crate::telemetry::span_int(x.nbytes()),
        resident = resident.is_some(),
    )
    .entered();
    let grid = x.chunk_grid().clone();
    let cols = kernel.cols();
    let mut graph = ChunkGraph::new(label.to_string(), x.dtype());
    // Each task multiplies every chunk it reads once, right after reading
    // it: loaded ahead, a chunk has left the CPU caches by then, and the
    // chunks waiting took memory (CP-ALS rank 16 on 640³ in 80 × 80 × 160
    // chunks under 256 MiB, page cache warm, AMD EPYC: 0.72–0.86 s per
    // iteration and 85–89 MiB peak RSS, against 1.05–1.18 s and 275–280
    // MiB loading ahead; no slower from a cold page cache).
    graph.prefetch = false;
    let plan = Arc::new(pass_tasks(&**x, out_modes, cols));
    let convert = if x.dtype() == DType::F64 || resident.is_some() {
        0
    } else {
        grid.chunk_elements()
    };
    let scratch = plan
        .block_rows
        .saturating_mul(cols as u64)
        .saturating_add(kernel.scratch_elements(grid.chunk_shape()))
        .saturating_add(convert)
        .saturating_mul(8);
    let partial_bytes = if plan.parts > 1 {
        plan.count()
            .saturating_mul(plan.block_rows)
            .saturating_mul(cols as u64)
            .saturating_mul(8)
    } else {
        0
    };
    let held = plan
        .rows
        .saturating_mul(cols as u64)
        .saturating_mul(8)
        .saturating_add(partial_bytes);
    let refuse = |needed: u64| Error::MemoryLimit {
        remedy: crate::core::Remedy::SmallerChunks,
        required: held.saturating_add(needed),
        limit: session.memory_limit(),
        what: format!(
            "{label} (its {} result in memory and one task of {})",
            ByteSize(held),
            ByteSize(needed)
        ),
    };
    // Allocated only once the pass is known to fit.
    let new_body = || StreamBody {
        kernel,
        plan: &plan,
        cols,
        result: Mutex::new(vec![0.0; plan.rows as usize * cols]),
        partials: Mutex::new(vec![
            None;
            if plan.parts > 1 {
                plan.count() as usize
            } else {
                0
            }
        ]),
    };
    let mut reservation = session.pool().reservation(label.to_string());
    let body = if let Some(resident) = resident {
        if held.saturating_add(scratch) > session.pool().available() {
            return Err(refuse(scratch));
        }
        let body = new_body();
        reservation.grow(held)?;
        progress.start(label, x.nbytes());
        let result = for_each_owned_task(
            session,
            TaskSet {
                count: plan.count() as usize,
                bytes_each: scratch,
                what: label,
            },
            progress,
            |t| {
                let mut acc = body.new_block(t);
                let mut read = 0;
                for coords in plan.reads(t as u64) {
                    let chunk = &resident.chunks[grid.chunk_linear_index(&coords) as usize];
                    kernel.accumulate(&grid.chunk_region(&coords), chunk, &mut acc);
                    read += x.chunk_nbytes();
                }
                body.finish_block(t, acc);
                Ok(read)
            },
        );
        progress.finish();
        result?;
        body
    } else {
        let in_id = graph.add_array(
            x.path().display().to_string(),
            ArrayRole::Input(x.clone()),
            grid.clone(),
        );
        let task = {
            let (plan, grid, itemsize) = (plan.clone(), grid.clone(), x.dtype().size() as u64);
            let pinned = x.chunk_nbytes();
            move |t: u64| {
                let reads: Vec<ChunkKey> = plan
                    .reads(t)
                    .map(|c| ChunkKey::new(in_id, grid.chunk_linear_index(&c)))
                    .collect();
                let work_bytes = plan
                    .reads(t)
                    .map(|c| grid.chunk_region(&c).num_elements() * itemsize)
                    .sum();
                TaskNode {
                    stage: 0,
                    reads,
                    streams: Vec::new(),
                    write: None,
                    scratch_bytes: scratch,
                    pinned_bytes: pinned,
                    work_bytes,
                }
            }
        };
        let totals = StreamTotals {
            work_bytes: x.nbytes(),
            bytes_read: x.nbytes(),
            bytes_written: 0,
            absent_chunks: 0,
        };
        let mut largest = if plan.count() > 0 {
            task(0)
        } else {
            TaskNode::default()
        };
        largest.reads.truncate(1);
        graph.stream = Some(Arc::new(GridWalk::new(
            ChunkSet::all(plan.count()),
            largest,
            totals,
            task,
        )));
        let explained = crate::plan::explain(
            &graph,
            session.threads(),
            session.memory_limit(),
            session.options().cache_policy,
        );
        if held.saturating_add(explained.min_working_set) > session.memory_limit() {
            return Err(refuse(explained.min_working_set));
        }
        let body = new_body();
        reservation.grow(held)?;
        dispatch_dtype!(x.dtype(), T => execute_planned::<T>(session, &graph, explained, &body, progress))?;
        body
    };
    let mut result = body.result.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut partials = body
        .partials
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    share_blocks(
        session,
        &plan,
        cols,
        &mut result,
        &mut partials,
        &mut reservation,
    )?;
    if plan.parts > 1 {
        for (b, group) in partials.chunks(plan.parts as usize).enumerate() {
            let mut sum: Option<Vec<f64>> = None;
            for partial in group.iter().flatten() {
                match &mut sum {
                    None => sum = Some(partial.clone()),
                    Some(s) => s.iter_mut().zip(partial).for_each(|(a, p)| *a += p),
                }
            }
            if let Some(sum) = sum {
                let block = plan.block(b as u64 * plan.parts);
                scatter(&sum, &block, &plan, cols, &mut result);
            }
        }
    }
    reservation.shrink(
        reservation
            .size()
            .saturating_sub(8 * plan.rows * cols as u64),
    );
    Ok((
        Matrix::from_vec(plan.rows as usize, cols, result)?,
        reservation,
    ))
}

/// The extents of the output block at chunk coordinates `block` (clipped at
/// the array's edge).
fn block_extents(block: &[u64], plan: &PassTasks) -> Vec<u64> {
    block
        .iter()
        .zip(&plan.out_chunk)
        .zip(&plan.out_extents)
        .map(|((b, c), e)| (*c).min(e - b * c))
        .collect()
}

/// Visits a block's rows (C order over its extents) as runs along the last
/// output mode, contiguous both in the block's values and in the full
/// result: `visit(in_result, in_block)`.
fn block_runs(
    block: &[u64],
    plan: &PassTasks,
    cols: usize,
    mut visit: impl FnMut(Range<usize>, Range<usize>),
) {
    let extents = block_extents(block, plan);
    let Some((&run, outer)) = extents.split_last() else {
        let len = plan.rows as usize * cols;
        visit(0..len, 0..len);
        return;
    };
    let full = Shape::new(plan.out_extents.clone());
    let origin: Vec<u64> = block
        .iter()
        .zip(&plan.out_chunk)
        .map(|(b, c)| b * c)
        .collect();
    let outer = Shape::new(outer.to_vec());
    let width = run as usize * cols;
    let mut index = origin.clone();
    for k in 0..outer.num_elements() {
        for (i, l) in outer.unravel(k).iter().enumerate() {
            index[i] = origin[i] + l;
        }
        let dest = full.linear_index(&index) as usize * cols;
        let src = k as usize * width;
        visit(dest..dest + width, src..src + width);
    }
}

/// Adds a block's rows into the full result.
fn scatter(acc: &[f64], block: &[u64], plan: &PassTasks, cols: usize, result: &mut [f64]) {
    block_runs(block, plan, cols, |dest, src| {
        for (d, s) in result[dest].iter_mut().zip(&acc[src]) {
            *d += s;
        }
    });
}

/// Under several ranks, gives every rank the blocks every other rank
/// computed, so each holds the result one process computes, bit for bit:
/// each rank sends its tasks' blocks (the rows it scattered, or its partial
/// sums) in task order, and adds the others' as one process would.
///
/// # Errors
/// [`Error::MemoryLimit`] when the exchanged blocks do not fit beside the
/// result; [`Error::Internal`] for a malformed message.
fn share_blocks(
    session: &Session,
    plan: &PassTasks,
    cols: usize,
    result: &mut [f64],
    partials: &mut [Option<Vec<f64>>],
    reservation: &mut Reservation,
) -> Result<()> {
    let ranks = session.ranks();
    if !ranks.is_distributed() {
        return Ok(());
    }
    let share = |rank: usize| contiguous_share(plan.count(), rank, ranks.size());
    let block_len = |t: u64| -> usize {
        let rows: u64 = block_extents(&plan.block(t), plan).iter().product();
        rows as usize * cols
    };
    // Sent, then received from every rank: the result's bytes, about twice.
    let exchanged = 8
        * (plan.rows * cols as u64
            + plan.count() * plan.block_rows * cols as u64 * u64::from(plan.parts > 1));
    reservation
        .try_grow(2 * exchanged)
        .map_err(|_| Error::MemoryLimit {
            remedy: crate::core::Remedy::SmallerChunks,
            required: reservation.size().saturating_add(2 * exchanged),
            limit: session.memory_limit(),
            what: format!(
                "the blocks of a pass exchanged among {} ranks",
                ranks.size()
            ),
        })?;
    let mut mine: Vec<u8> = Vec::new();
    for t in share(ranks.rank()) {
        if plan.parts > 1 {
            let partial = partials[t as usize].as_deref().unwrap_or(&[]);
            mine.extend(partial.iter().flat_map(|v| v.to_le_bytes()));
        } else {
            block_runs(&plan.block(t), plan, cols, |dest, _| {
                mine.extend(result[dest].iter().flat_map(|v| v.to_le_bytes()));
            });
        }
    }
    let all = ranks.all_gather(&mine);
    drop(mine);
    for (rank, bytes) in all.iter().enumerate() {
        if rank == ranks.rank() {
            continue;
        }
        let mut values = bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        for t in share(rank) {
            let block: Vec<f64> = values.by_ref().take(block_len(t)).collect();
            if block.len() != block_len(t) {
                return Err(Error::internal(format!(
                    "rank {rank} sent too few values for block {t} of a pass"
                )));
            }
            if plan.parts > 1 {
                partials[t as usize] = Some(block);
            } else {
                scatter(&block, &plan.block(t), plan, cols, result);
            }
        }
    }
    reservation.shrink(2 * exchanged);
    Ok(())
}

struct StreamBody<'a> {
    kernel: &'a dyn ChunkKernel,
    plan: &'a PassTasks,
    cols: usize,
    result: Mutex<Vec<f64>>,
    partials: Mutex<Vec<Option<Vec<f64>>>>,
}

impl StreamBody<'_> {
    fn new_block(&self, task: usize) -> Vec<f64> {
        let rows: u64 = block_extents(&self.plan.block(task as u64), self.plan)
            .iter()
            .product();
        vec![0.0; rows as usize * self.cols]
    }

    fn finish_block(&self, task: usize, acc: Vec<f64>) {
        if self.plan.parts > 1 {
            self.partials.lock().unwrap_or_else(|p| p.into_inner())[task] = Some(acc);
        } else {
            let mut result = self.result.lock().unwrap_or_else(|p| p.into_inner());
            scatter(
                &acc,
                &self.plan.block(task as u64),
                self.plan,
                self.cols,
                &mut result,
            );
        }
    }
}

impl<T: Element> TaskBody<T> for StreamBody<'_> {
    fn run(&self, index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let task = io.task();
        let graph = io.graph();
        let mut acc = self.new_block(index);
        let mut converted = Vec::new();
        for k in 0..task.reads.len() {
            let region = graph.region(task.reads[k]);
            let chunk = io.input(k)?;
            let data: &[f64] = if T::DTYPE == DType::F64 {
                bytemuck::cast_slice(chunk.as_slice())
            } else {
                converted.clear();
                converted.extend(chunk.as_slice().iter().map(|v| v.to_f64()));
                &converted
            };
            self.kernel.accumulate(&region, data, &mut acc);
        }
        self.finish_block(index, acc);
        Ok(None)
    }
}
