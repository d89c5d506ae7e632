//! [`Transpose`] and [`Rechunk`]: move data to a new axis order or chunking
//! under the memory limit, directly or through an intermediate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::shape::join_dims;
use crate::core::{Block, ChunkGrid, ChunkSet, Element, Error, Region, Result, Shape};
use crate::exec::{Session, TaskBody, TaskIo};
use crate::io::{ArrayRef, IntoArrayRef};
use crate::memory::ChunkKey;
use crate::ops::planned::{Job, explain_for, job_record, plan_graph};
use crate::ops::streamed::{self, elements};
use crate::ops::{OpReport, OutputOptions, Planned};
use crate::plan::{
    ArrayId, ArrayRole, ChunkGraph, GridWalk, OutputArray, PlanReport, StreamTotals, TaskNode,
    rechunking_plan,
};
use crate::store::{ArraySpec, Compression};

/// Writes an array with its axes permuted to a new array: axis `k` of the
/// output is axis `perm[k]` of the input (NumPy's `transpose(perm)`).
/// Output chunks default to the input's chunks permuted (each output chunk
/// is one input chunk); other chunkings are planned as in [`Rechunk`].
///
/// ```
/// # use tenrso_ooc::{DType, exec::Session, ops::{Fill, Generate, Transpose}, store::ArraySpec};
/// # let dir = tempfile::tempdir()?;
/// let session = Session::default();
/// let spec = ArraySpec::new(vec![4, 6], vec![2, 3], DType::F64);
/// let x = Generate::new(dir.path().join("x"), spec, Fill::Range).plan(&session)?.run()?.array;
/// let planned = Transpose::new(&x, [1, 0], dir.path().join("t")).plan(&session)?;
/// assert_eq!(planned.explain().bytes_written, 4 * 6 * 8);
/// planned.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Transpose {
    input: ArrayRef,
    perm: Vec<usize>,
    out: PathBuf,
    output: OutputOptions,
}

impl Transpose {
    /// Permutes `input`'s axes by `perm` into a new array at `out`.
    pub fn new(
        input: &impl IntoArrayRef,
        perm: impl Into<Vec<usize>>,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            input: input.array_ref(),
            perm: perm.into(),
            out: out.into(),
            output: OutputOptions::default(),
        }
    }

    /// Sets the output's chunk shape, compression and resumption.
    pub fn with_output_options(mut self, output: OutputOptions) -> Self {
        self.output = output;
        self
    }

    /// Plans the transpose.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad permutation or chunk shape.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, PlanReport, OpReport>> {
        self.output.check_fixed_codec("transpose")?;
        let (input, perm) = (&self.input, &self.perm[..]);
        let ndim = input.shape().len();
        let mut seen = vec![false; ndim];
        if perm.len() != ndim
            || perm
                .iter()
                .any(|&p| p >= ndim || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(format!(
                "axes {perm:?} are not a permutation of the {ndim} axes of the input"
            )));
        }
        let target = self.output.chunk_shape.clone().unwrap_or_else(|| {
            perm.iter()
                .map(|&p| input.chunk_grid().chunk_shape()[p])
                .collect()
        });
        let name = format!("transpose to axes {perm:?}");
        let destination = Destination {
            out: &self.out,
            opts: &self.output,
            node_local: false,
            scratch: false,
        };
        reorganize(session, input, perm, &target, destination, name)
    }
}

/// Copies an array to a new array with another chunk shape.
///
/// The planner compares two plans by the bytes they move, both computed
/// before running by replaying their chunk accesses through a model of the
/// cache: a direct one (each output chunk assembled from the input chunks it
/// touches, read through the cache) and a two-stage one through an
/// intermediate whose chunking follows rechunker's algorithm (it lives in the
/// cache and spills when it does not fit).
#[derive(Debug, Clone)]
pub struct Rechunk {
    input: ArrayRef,
    out: PathBuf,
    output: OutputOptions,
    node_local: bool,
    scratch: bool,
}

impl Rechunk {
    /// Rechunks `input` to `chunks` into a new array at `out`.
    pub fn new(
        input: &impl IntoArrayRef,
        chunks: impl Into<Vec<u64>>,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            input: input.array_ref(),
            out: out.into(),
            output: OutputOptions::default().with_chunk_shape(chunks),
            node_local: false,
            scratch: false,
        }
    }

    /// Writes an intermediate in the spill area (see
    /// [`OutputArray::scratch`]); under several ranks (`distributed`), each
    /// writes its chunks into its own copy at `out` (node-local scratch).
    pub(crate) fn intermediate(mut self, distributed: bool) -> Self {
        self.node_local = distributed;
        self.scratch = true;
        self
    }

    /// Sets the output's compressor.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.output.compression = compression;
        self
    }

    /// Resumes an interrupted rechunk into the same output.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.output.resume = resume;
        self
    }

    /// Plans the rechunk.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad chunk shape.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, PlanReport, OpReport>> {
        self.output.check_fixed_codec("rechunk")?;
        let target = self.output.chunk_shape.clone().unwrap_or_default();
        let identity: Vec<usize> = (0..self.input.shape().len()).collect();
        let name = format!("rechunk to {}", join_dims(&target));
        reorganize(
            session,
            &self.input,
            &identity,
            &target,
            Destination {
                out: &self.out,
                opts: &self.output,
                node_local: self.node_local,
                scratch: self.scratch,
            },
            name,
        )
    }
}

/// Where a reorganized array goes.
struct Destination<'a> {
    out: &'a Path,
    opts: &'a OutputOptions,
    /// Each rank's own copy (see [`OutputArray::node_local`]).
    node_local: bool,
    /// An intermediate in the spill area (see [`OutputArray::scratch`]).
    scratch: bool,
}

fn reorganize<'s>(
    session: &'s Session,
    input: &ArrayRef,
    perm: &[usize],
    target: &[u64],
    destination: Destination<'_>,
    name: String,
) -> Result<Planned<'s, PlanReport, OpReport>> {
    let Destination {
        out,
        opts,
        node_local,
        scratch,
    } = destination;
    let out_shape: Vec<u64> = perm.iter().map(|&p| input.shape()[p]).collect();
    let out_grid = ChunkGrid::new(out_shape.clone(), target.to_vec())?;
    let spec = ArraySpec::new(out_shape.clone(), target.to_vec(), input.dtype())
        .with_compression(opts.compression)
        .with_fill_value(input.fill_value());
    spec.validate()?;
    let output = if node_local {
        OutputArray::node_local(out, spec)
    } else {
        OutputArray::new(out, spec)
    };
    let output = Arc::new(if scratch {
        output.into_scratch()
    } else {
        output
    });
    let direct = direct_plan(
        input,
        perm,
        &out_grid,
        &output,
        &name,
        session.memory_limit(),
    )?;
    // A staged plan keeps its intermediate in one process's cache: under
    // several ranks each reads the input chunks its output chunks need.
    let staged = if session.ranks().is_distributed() {
        None
    } else {
        staged_plan(session, input, perm, &out_grid, &output, &name, &direct)
    };
    // Bytes moved, spills counting twice (written, read back); plans that do
    // not fit come last.
    let cost = |r: &PlanReport| {
        (
            !r.fits(),
            r.bytes_read + r.bytes_written + 2 * r.bytes_spilled,
        )
    };
    let direct_plan = explain_for(session, &direct);
    let staged = staged.map(|g| {
        let p = explain_for(session, &g);
        (g, p)
    });
    let (graph, plan) = match staged {
        Some((g, p)) if cost(&p) < cost(&direct_plan) => (g, p),
        _ => (direct, direct_plan),
    };
    let body = Arc::new(Assemble {
        perm: perm.to_vec(),
    });
    // Direct or staged, the output is the same: the job is the operation.
    let job = Job {
        resume: opts.resume,
        record: Some(job_record(&name, &[&**input])),
    };
    plan_graph(session, graph, Some(plan), job, body)
}

/// The input region (input axes) that output region `r` (output axes) reads.
fn input_region(perm: &[usize], r: &Region) -> Region {
    let mut start = vec![0; perm.len()];
    let mut shape = vec![0; perm.len()];
    for (k, &p) in perm.iter().enumerate() {
        start[p] = r.start()[k];
        shape[p] = r.shape()[k];
    }
    Region::new(start, shape)
}

/// One task per output chunk, reading the input chunks it touches.
fn direct_plan(
    input: &ArrayRef,
    perm: &[usize],
    out_grid: &ChunkGrid,
    output: &Arc<OutputArray>,
    name: &str,
    limit: u64,
) -> Result<ChunkGraph> {
    let mut graph = ChunkGraph::new(format!("{name} (direct)"), input.dtype());
    let in_id = graph.add_array(
        input.path().display().to_string(),
        ArrayRole::Input(input.clone()),
        input.chunk_grid().clone(),
    );
    let out_id = graph.add_array(
        output.path.display().to_string(),
        ArrayRole::Output(output.clone()),
        out_grid.clone(),
    );
    let itemsize = input.dtype().size() as u64;
    let in_grid = input.chunk_grid().clone();
    let streams = streamed::streams(&**input);
    let (slab_scratch, in_chunk_bytes) = (
        input.stream_working_set(streamed::slab_rows(&**input))
            + 2 * streamed::slab_bytes(&**input),
        input.chunk_nbytes(),
    );
    let task = {
        let (in_grid, out_grid, perm) = (in_grid.clone(), out_grid.clone(), perm.to_vec());
        move |out_index: u64| {
            let key = ChunkKey::new(out_id, out_index);
            let region = out_grid.chunk_region(&out_grid.chunk_coords(out_index));
            let bytes = region.num_elements() * itemsize;
            let wanted = input_region(&perm, &region);
            let reads: Vec<ChunkKey> = ChunkGrid::iter_region(&in_grid.chunks_touching(&wanted))
                .map(|c| ChunkKey::new(in_id, in_grid.chunk_linear_index(&c)))
                .collect();
            // One input chunk that is exactly the output chunk is permuted
            // straight into the output block (a large one streamed a slab
            // of rows at a time); otherwise pieces are extracted and
            // permuted one by one.
            let whole = reads.len() == 1
                && in_grid.chunk_region(&in_grid.chunk_coords(reads[0].index)) == wanted;
            if whole && streams {
                return TaskNode {
                    stage: 0,
                    reads: Vec::new(),
                    streams: reads,
                    write: Some(key),
                    // The output block, the slab being read, and its copy as
                    // a block and permuted.
                    scratch_bytes: bytes + slab_scratch,
                    pinned_bytes: 0,
                    work_bytes: bytes,
                };
            }
            TaskNode {
                stage: 0,
                reads,
                streams: Vec::new(),
                write: Some(key),
                scratch_bytes: if whole {
                    bytes
                } else {
                    // Each piece (and its permuted copy) is at most the
                    // smaller of an input chunk and the output chunk.
                    bytes + 2 * in_chunk_bytes.min(bytes)
                },
                pinned_bytes: in_chunk_bytes,
                work_bytes: bytes,
            }
        }
    };
    // Output chunks made of whole input chunks read each input chunk once:
    // their tasks are streamed, only those over stored input chunks.
    let whole_chunks = perm.iter().enumerate().all(|(k, &p)| {
        out_grid.chunk_shape()[k].is_multiple_of(in_grid.chunk_shape()[p])
            || out_grid.chunk_shape()[k] >= out_grid.shape().dims()[k]
    });
    if whole_chunks {
        let stored = input.stored_chunk_set()?;
        let tasks = if stored.is_all() {
            ChunkSet::all(out_grid.num_chunks())
        } else {
            let mut tasks = ChunkSet::builder(out_grid.num_chunks());
            for index in stored.iter() {
                let start = in_grid
                    .chunk_region(&in_grid.chunk_coords(index))
                    .start()
                    .to_vec();
                let out_chunk: Vec<u64> = perm
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| start[p] / out_grid.chunk_shape()[k])
                    .collect();
                tasks.insert(out_grid.chunk_linear_index(&out_chunk));
            }
            tasks.finish()
        };
        let bytes = input.stored_nbytes(&stored);
        let totals = StreamTotals {
            work_bytes: bytes,
            bytes_read: bytes,
            bytes_written: bytes,
            absent_chunks: stored.absent(),
        };
        let largest = if out_grid.num_chunks() > 0 {
            task(0)
        } else {
            TaskNode::default()
        };
        graph.stream = Some(Arc::new(GridWalk::new(tasks, largest, totals, task)));
        return Ok(graph);
    }
    graph.check_listing(out_grid.num_chunks(), in_grid.num_chunks(), limit)?;
    for index in 0..out_grid.num_chunks() {
        graph.tasks.push(task(index));
    }
    Ok(graph)
}

/// Two stages through a temporary array in output axes whose chunks follow
/// rechunker's plan; `None` when it would not differ from the direct plan.
fn staged_plan(
    session: &Session,
    input: &ArrayRef,
    perm: &[usize],
    out_grid: &ChunkGrid,
    output: &Arc<OutputArray>,
    name: &str,
    direct: &ChunkGraph,
) -> Option<ChunkGraph> {
    let itemsize = input.dtype().size() as u64;
    let shape = out_grid.shape().dims().to_vec();
    let source: Vec<u64> = perm
        .iter()
        .map(|&p| input.chunk_grid().chunk_shape()[p])
        .collect();
    let target = out_grid.chunk_shape().to_vec();
    // Blocks of half of what the workers leave to the cache (a worker
    // counted with its pinned input and a load beside it: larger blocks
    // were measured to spill and re-read more).
    let per_task = |t: &TaskNode| {
        let load = t.reads.iter().map(|k| direct.load_bytes(*k)).max();
        direct.task_reservation(t) + t.pinned_bytes + load.unwrap_or(0)
    };
    let per_worker = match &direct.stream {
        Some(stream) if !stream.is_empty() => per_task(&stream.largest()),
        Some(_) => 0,
        None => direct.tasks.iter().map(per_task).max().unwrap_or(0),
    };
    let free = session
        .memory_limit()
        .saturating_sub(session.threads() as u64 * per_worker + direct.footprint());
    let chunk_bytes = |c: &[u64]| c.iter().product::<u64>() * itemsize;
    let max_bytes = (free / 2)
        .max(chunk_bytes(&source))
        .max(chunk_bytes(&target));
    let (read, int, write) = rechunking_plan(&shape, &source, &target, itemsize, max_bytes);
    if int == target || int == source {
        return None;
    }
    let int_grid = ChunkGrid::new(shape.clone(), int).ok()?;
    let mut graph = ChunkGraph::new(format!("{name} (via intermediate)"), input.dtype());
    let int_chunks = int_grid.num_chunks();
    graph
        .check_listing(
            int_chunks.saturating_add(out_grid.num_chunks()),
            int_chunks.saturating_add(input.chunk_grid().num_chunks()),
            session.memory_limit(),
        )
        .ok()?;
    let in_id = graph.add_array(
        input.path().display().to_string(),
        ArrayRole::Input(input.clone()),
        input.chunk_grid().clone(),
    );
    let tmp_id = graph.add_array("intermediate", ArrayRole::Temporary, int_grid.clone());
    let out_id = graph.add_array(
        output.path.display().to_string(),
        ArrayRole::Output(output.clone()),
        out_grid.clone(),
    );
    // Stage 0: intermediate chunks, grouped by read block so that the input
    // chunks of a block are reused from the cache.
    for key in grouped(&graph, tmp_id, &int_grid, &read) {
        let region = graph.region(key);
        let bytes = region.num_elements() * itemsize;
        graph.tasks.push(TaskNode {
            stage: 0,
            reads: graph.chunks_touching(in_id, &input_region(perm, &region)),
            streams: Vec::new(),
            write: Some(key),
            // The piece and its permuted copy, each at most the smaller of
            // an input chunk and the written chunk.
            scratch_bytes: bytes + 2 * input.chunk_nbytes().min(bytes),
            pinned_bytes: input.chunk_nbytes(),
            work_bytes: bytes,
        });
    }
    // Stage 1: output chunks grouped by write block.
    let int_bytes = int_grid.chunk_elements() * itemsize;
    for key in grouped(&graph, out_id, out_grid, &write) {
        let region = graph.region(key);
        let bytes = region.num_elements() * itemsize;
        graph.tasks.push(TaskNode {
            stage: 1,
            reads: graph.chunks_touching(tmp_id, &region),
            streams: Vec::new(),
            write: Some(key),
            scratch_bytes: bytes + 2 * int_bytes,
            pinned_bytes: int_bytes,
            work_bytes: bytes,
        });
    }
    Some(graph)
}

/// The chunks of `grid` (array `id`) ordered block by block (blocks of
/// `block` elements, in C order), C order within each block.
fn grouped(
    graph: &ChunkGraph,
    id: ArrayId,
    grid: &ChunkGrid,
    block: &[u64],
) -> Vec<crate::memory::ChunkKey> {
    let blocks =
        ChunkGrid::new(grid.shape().clone(), block.to_vec()).expect("block shape is valid");
    let mut keys = Vec::with_capacity(grid.num_chunks() as usize);
    let mut seen = vec![false; grid.num_chunks() as usize];
    for b in blocks.iter() {
        for c in ChunkGrid::iter_region(&grid.chunks_touching(&blocks.chunk_region(&b))) {
            let key = graph.key(id, &c);
            if !std::mem::replace(&mut seen[key.index as usize], true) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Fills each written chunk from the chunks it reads: from the input through
/// the permutation in stage 0, from the intermediate (same axes) in stage 1.
struct Assemble {
    perm: Vec<usize>,
}

impl Assemble {
    /// A whole input chunk streamed a slab of rows at a time, each slab
    /// permuted into place in the output block.
    fn run_streamed<T: Element>(&self, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let graph = io.graph();
        let task = io.task();
        let region = graph.region(task.write.expect("reorganizing tasks write a chunk"));
        let input = graph.region(task.streams[0]);
        let ArrayRole::Input(array) = &graph.arrays[task.streams[0].array as usize].role else {
            return Err(Error::internal("only inputs are streamed".to_string()));
        };
        let row: u64 = input.shape()[1..].iter().product();
        // Input axis 0, along which slabs run, is this output axis.
        let along = self.perm.iter().position(|&p| p == 0).unwrap_or(0);
        let mut out = Block::<T>::zeros(region.shape().to_vec());
        io.stream_rows(0, streamed::slab_rows(&**array), &mut |r0, bytes| {
            let values = elements::<T>(bytes)?;
            let mut shape = input.shape().to_vec();
            shape[0] = values.len() as u64 / row.max(1);
            let slab = Block::from_vec(shape, values.to_vec())?;
            let mut at = vec![0; region.ndim()];
            at[along] = r0;
            out.insert(&at, &slab.permuted(&self.perm));
            Ok(())
        })?;
        Ok(Some(out))
    }
}

impl<T: Element> TaskBody<T> for Assemble {
    fn run(&self, _index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        if !io.task().streams.is_empty() {
            return self.run_streamed(io);
        }
        let task = io.task();
        let write = task.write.expect("reorganizing tasks write a chunk");
        let region = io.graph().region(write);
        let from_input = matches!(
            io.graph().arrays[task.reads[0].array as usize].role,
            ArrayRole::Input(_)
        );
        let identity: Vec<usize> = (0..self.perm.len()).collect();
        let perm = if from_input { &self.perm } else { &identity };
        let wanted = input_region(perm, &region);
        if let [key] = task.reads[..]
            && io.graph().region(key) == wanted
        {
            // One chunk is exactly the output chunk: permute it directly.
            let chunk = io.input(0)?;
            return Ok(Some(if perm == &identity {
                (*chunk).clone()
            } else {
                chunk.permuted(perm)
            }));
        }
        let mut out = Block::<T>::zeros(region.shape().to_vec());
        for (k, key) in task.reads.iter().enumerate() {
            let chunk = io.input(k)?;
            let chunk_region = io.graph().region(*key);
            let overlap = chunk_region
                .intersect(&wanted)
                .expect("read chunks overlap the region");
            let part = chunk.extract(&overlap.relative_to(chunk_region.start()));
            let part = if perm == &identity {
                part
            } else {
                part.permuted(perm)
            };
            let at: Vec<u64> = perm
                .iter()
                .map(|&p| overlap.start()[p] - wanted.start()[p])
                .collect();
            out.insert(&at, &part);
        }
        debug_assert_eq!(
            Shape::new(out.shape().to_vec()).num_elements(),
            region.num_elements()
        );
        Ok(Some(out))
    }
}
