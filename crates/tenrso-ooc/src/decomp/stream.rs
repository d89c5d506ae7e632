//! [`stream_accumulate`]: one pass over a stored tensor through the executor,
//! adding each chunk's [`ChunkKernel`] contribution into an in-memory matrix
//! in a fixed order.

use std::sync::{Arc, Mutex};

use crate::core::{Block, ByteSize, Element, Error, Result, Shape};
use crate::decomp::chunk_kernels::ChunkKernel;
use crate::dispatch_dtype;
use crate::decomp::Matrix;
use crate::exec::{Progress, Session, TaskBody, TaskIo};
use crate::ops::run_plan::{explain_for, explain_or_run};
use crate::plan::{ArrayRole, ChunkGraph, TaskNode};
use crate::store::ZarrArray;
use crate::DType;

/// A pass splits its work into at least this many tasks when the output
/// blocks alone give fewer (a fixed number, so the summation order never
/// depends on the thread count).
const MIN_TASKS: u64 = 8;

/// Output blocks at most this large may be split over several tasks whose
/// partial sums are added at the end.
const SPLIT_MAX_BYTES: u64 = 1 << 20;

/// Streams every chunk of `x` once, adding `kernel`'s contribution of each
/// into a matrix with one row per element of the extents of `out_modes`
/// (ascending) and `kernel.cols()` columns.
///
/// Tasks own disjoint row blocks (the chunks sharing their coordinates on
/// `out_modes`), so no two tasks add into the same rows; when there are
/// fewer than [`MIN_TASKS`] small blocks, each block's chunks are split over
/// a fixed number of tasks whose partial sums are added in task order. The
/// result is bitwise the same for any thread count.
///
/// The result matrix is reserved from the session's pool for the pass.
///
/// # Errors
/// [`Error::MemoryLimit`] when the result and one task do not fit; store and
/// executor errors.
pub(crate) fn stream_accumulate(
    session: &Session,
    x: &Arc<ZarrArray>,
    out_modes: &[usize],
    kernel: &dyn ChunkKernel,
    label: &str,
    progress: &dyn Progress,
) -> Result<Matrix> {
    let grid = x.chunk_grid().clone();
    let ndim = grid.ndim();
    let cols = kernel.cols();
    let other_modes: Vec<usize> = (0..ndim).filter(|m| !out_modes.contains(m)).collect();
    let pick = |dims: &[u64], modes: &[usize]| -> Vec<u64> { modes.iter().map(|m| dims[*m]).collect() };
    let out_extents = pick(grid.shape().dims(), out_modes);
    let rows: u64 = out_extents.iter().product();
    let block_grid = Shape::new(pick(grid.grid_shape(), out_modes));
    let member_grid = Shape::new(pick(grid.grid_shape(), &other_modes));
    let blocks = block_grid.num_elements();
    let members = member_grid.num_elements();
    let block_rows: u64 = pick(grid.chunk_shape(), out_modes).iter().product();
    let block_bytes = block_rows * cols as u64 * 8;
    let parts = if blocks < MIN_TASKS && block_bytes <= SPLIT_MAX_BYTES {
        MIN_TASKS.div_ceil(blocks.max(1)).min(members.max(1))
    } else {
        1
    };

    let mut graph = ChunkGraph::new(label.to_string(), x.dtype());
    let in_id = graph.add_array(
        x.path().display().to_string(),
        ArrayRole::Input(x.clone()),
        grid.clone(),
    );
    let convert = if x.dtype() == DType::F64 { 0 } else { grid.chunk_elements() };
    let scratch = 8 * (block_rows * cols as u64 + kernel.scratch_elements(grid.chunk_shape()) + convert);
    let mut task_blocks = Vec::new();
    for b in 0..blocks {
        let block = block_grid.unravel(b);
        for p in 0..parts {
            let range = (members * p / parts)..(members * (p + 1) / parts);
            let mut reads = Vec::with_capacity((range.end - range.start) as usize);
            for k in range {
                let member = member_grid.unravel(k);
                let mut coords = vec![0u64; ndim];
                for (i, m) in out_modes.iter().enumerate() {
                    coords[*m] = block[i];
                }
                for (i, m) in other_modes.iter().enumerate() {
                    coords[*m] = member[i];
                }
                reads.push(graph.key(in_id, &coords));
            }
            let work_bytes = reads.iter().map(|k| graph.chunk_bytes(*k)).sum();
            graph.tasks.push(TaskNode {
                stage: 0,
                reads,
                write: None,
                scratch_bytes: scratch,
                pinned_bytes: x.chunk_nbytes(),
                work_bytes,
            });
            task_blocks.push(block.clone());
        }
    }

    // The result (and the split tasks' partial sums) live for the whole pass.
    let held = 8 * rows * cols as u64 + if parts > 1 { blocks * parts * block_bytes } else { 0 };
    let plan = explain_for(session, &graph);
    if held + plan.min_working_set > session.memory_limit() {
        return Err(Error::MemoryLimit {
            required: held + plan.min_working_set,
            limit: session.memory_limit(),
            what: format!(
                "{label} (its {} result in memory and one task of {})",
                ByteSize(held),
                ByteSize(plan.min_working_set)
            ),
        });
    }
    let mut reservation = session.pool().reservation(label.to_string());
    reservation.grow(held)?;
    let body = StreamBody {
        kernel,
        out_chunk: pick(grid.chunk_shape(), out_modes),
        out_extents: &out_extents,
        cols,
        task_blocks: &task_blocks,
        split: parts > 1,
        result: Mutex::new(vec![0.0; (rows as usize) * cols]),
        partials: Mutex::new(vec![None; if parts > 1 { task_blocks.len() } else { 0 }]),
    };
    let report = dispatch_dtype!(x.dtype(), T => explain_or_run::<T>(session, &graph, Some(plan), &body, false, progress))?;
    if report.run.is_none() {
        return Err(Error::invalid("internal: a decomposition pass was only explained"));
    }
    let mut result = body.result.into_inner().unwrap_or_else(|p| p.into_inner());
    if parts > 1 {
        let partials = body.partials.into_inner().unwrap_or_else(|p| p.into_inner());
        for (b, group) in partials.chunks(parts as usize).enumerate() {
            let mut sum: Option<Vec<f64>> = None;
            for partial in group.iter().flatten() {
                match &mut sum {
                    None => sum = Some(partial.clone()),
                    Some(s) => s.iter_mut().zip(partial).for_each(|(a, p)| *a += p),
                }
            }
            if let Some(sum) = sum {
                let out_chunk = pick(grid.chunk_shape(), out_modes);
                scatter(&sum, &task_blocks[b * parts as usize], &out_chunk, &out_extents, cols, &mut result);
            }
        }
    }
    drop(reservation);
    Matrix::from_vec(rows as usize, cols, result)
}

/// The extents of the output block at chunk coordinates `block` (clipped at
/// the array's edge).
fn block_extents(block: &[u64], out_chunk: &[u64], out_extents: &[u64]) -> Vec<u64> {
    block
        .iter()
        .zip(out_chunk)
        .zip(out_extents)
        .map(|((b, c), e)| (*c).min(e - b * c))
        .collect()
}

/// Adds a block's rows (C order over its extents) into the full result.
fn scatter(acc: &[f64], block: &[u64], out_chunk: &[u64], out_extents: &[u64], cols: usize, result: &mut [f64]) {
    let extents = Shape::new(block_extents(block, out_chunk, out_extents));
    let full = Shape::new(out_extents.to_vec());
    let origin: Vec<u64> = block.iter().zip(out_chunk).map(|(b, c)| b * c).collect();
    for (t, row) in acc.chunks_exact(cols.max(1)).enumerate() {
        let local = extents.unravel(t as u64);
        let index: Vec<u64> = local.iter().zip(&origin).map(|(l, o)| l + o).collect();
        let dest = full.linear_index(&index) as usize * cols;
        for (d, s) in result[dest..dest + cols].iter_mut().zip(row) {
            *d += s;
        }
    }
}

struct StreamBody<'a> {
    kernel: &'a dyn ChunkKernel,
    out_chunk: Vec<u64>,
    out_extents: &'a [u64],
    cols: usize,
    task_blocks: &'a [Vec<u64>],
    split: bool,
    result: Mutex<Vec<f64>>,
    partials: Mutex<Vec<Option<Vec<f64>>>>,
}

impl<T: Element> TaskBody<T> for StreamBody<'_> {
    fn run(&self, index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let task = io.task();
        let graph = io.graph();
        let block = &self.task_blocks[index];
        let rows: u64 = block_extents(block, &self.out_chunk, self.out_extents)
            .iter()
            .product();
        let mut acc = vec![0.0; rows as usize * self.cols];
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
        if self.split {
            self.partials.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(acc);
        } else {
            let mut result = self.result.lock().unwrap_or_else(|p| p.into_inner());
            scatter(&acc, block, &self.out_chunk, self.out_extents, self.cols, &mut result);
        }
        Ok(None)
    }
}
