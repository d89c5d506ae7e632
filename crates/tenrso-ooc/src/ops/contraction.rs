//! One [`ContractionStep`] as a [`ChunkGraph`] and the task body that runs
//! it: output tiles resident, operand tiles streamed along the contracted
//! indices in a fixed order, multiplied by the build's GEMM kernel
//! ([`matmul_add`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::core::{
    Block, ChunkGrid, ChunkSet, Element, MatView, Region, Result, Shape, matmul_add,
    matmul_add_block,
};
use crate::exec::{TaskBody, TaskIo};
use crate::io::ArrayRef;
use crate::memory::ChunkKey;
use crate::plan::{
    ArrayId, ArrayRole, ChunkGraph, ContractionStep, Label, OperandLayout, OutputArray, TaskNode,
};

use crate::distributed::{Ownership, TileSplit};

/// A range of one index: start and length.
type Ranges = BTreeMap<Label, (u64, u64)>;

/// The graph of `step` reading `inputs` (in the step's operand order) and
/// writing `output`: one task per output tile, reading for each combination
/// of contracted tiles (in C order) each operand's chunks under it.
pub(crate) fn contraction_graph(
    step: &ContractionStep,
    inputs: &[ArrayRef],
    output: Arc<OutputArray>,
    name: &str,
    absent: Option<&AbsentTiles>,
) -> Result<ChunkGraph> {
    let dtype = inputs[0].dtype();
    let mut graph = ChunkGraph::new(name.to_string(), dtype);
    graph.read_in_place = true;
    graph.write_uncached = true;
    for a in inputs {
        graph.add_array(
            a.path().display().to_string(),
            ArrayRole::Input(a.clone()),
            a.chunk_grid().clone(),
        );
    }
    let tile_grid = ChunkGrid::new(step.output_shape(), step.output_tile())?;
    let out_id = graph.add_array(
        output.path.display().to_string(),
        ArrayRole::Output(output.clone()),
        tile_grid.clone(),
    );
    if let [x, y] = inputs {
        // Ranks own blocks of output tiles: a row block of `x`, a column
        // block of `y` each (batch indices go with the rows).
        let axes = |side: &[Label]| -> Vec<usize> {
            (0..step.output.len())
                .filter(|&i| side.contains(&step.output[i]))
                .collect()
        };
        let rows: Vec<Label> = step.batch.iter().chain(&step.left).copied().collect();
        graph.ownership = Ownership::Tiles(TileSplit {
            row_axes: axes(&rows),
            col_axes: axes(&step.right),
            row_bytes: x.nbytes(),
            col_bytes: y.nbytes(),
        });
    }
    let itemsize = dtype.size() as u64;
    let out_chunk_bytes = step.output_chunks.iter().product::<u64>() * itemsize;
    let pinned = inputs.iter().map(|a| a.chunk_nbytes()).max().unwrap_or(0);
    // A tile of several output chunks is written a chunk at a time (as
    // the executor decides).
    let cut_bytes = if output.spec.shard_shape.is_none()
        && tile_grid.chunk_shape() == output.spec.chunk_shape.as_slice()
    {
        0
    } else {
        out_chunk_bytes
    };
    let chunk_pairs = step.multiplies_chunk_pairs();
    for coords in tile_grid.iter() {
        let key = graph.key(out_id, &coords);
        let ranges = output_ranges(step, &graph.region(key));
        let mut reads = Vec::new();
        let mut work = 0;
        // Operands whose tile is assembled (or packed) at some contracted
        // step, instead of multiplied where its chunks lie in the cache.
        let mut assembled = vec![inputs.len() == 1; inputs.len()];
        // Chunks a plain product pins at one contracted step: all those
        // under both tiles.
        let mut pinned_at_once = pinned;
        for kc in tile_combinations(step, &step.contracted, &ranges) {
            if absent.is_some_and(|a| a.both_absent(step, &kc)) {
                continue;
            }
            if inputs.len() == 2 && !chunk_pairs {
                assembled[0] |= slices_in_place(step, &graph, &kc).is_none();
                assembled[1] |= second_in_one_chunk(step, &graph, &kc).is_none();
            }
            let step_reads = reads.len();
            for (k, _) in inputs.iter().enumerate() {
                for sc in tile_combinations(step, &step.summed[k], &kc) {
                    let region = operand_region(step, k, &sc);
                    work += region.num_elements() * itemsize;
                    reads.extend(graph.chunks_touching(k as ArrayId, &region));
                }
            }
            if chunk_pairs {
                let held = reads[step_reads..].iter().map(|k| graph.chunk_bytes(*k));
                pinned_at_once = pinned_at_once.max(held.sum());
            }
        }
        graph.tasks.push(TaskNode {
            stage: 0,
            reads,
            streams: Vec::new(),
            write: Some(key),
            // Tiles (less those of operands multiplied in place), the
            // output chunk cut out of the tile, and the copy of the part of
            // an input chunk being assembled.
            scratch_bytes: step
                .tile_bytes()
                .saturating_sub(in_place_bytes(step, &assembled))
                + cut_bytes
                + if assembled.contains(&true) { pinned } else { 0 },
            pinned_bytes: pinned_at_once,
            work_bytes: work,
        });
    }
    Ok(graph)
}

/// Bytes of the tiles [`ContractionStep::tile_bytes`] counts for operands
/// a task never assembles (`assembled[k]` false).
fn in_place_bytes(step: &ContractionStep, assembled: &[bool]) -> u64 {
    (0..assembled.len())
        .filter(|&k| !assembled[k])
        .map(|k| step.operand_tile_bytes(k))
        .sum()
}

/// The stored chunks of a product's two operands whose fill value is 0:
/// a pair of operand tiles both in chunks never written multiplies to zero,
/// so it is neither read nor multiplied.
#[derive(Debug, Clone)]
pub(crate) struct AbsentTiles {
    stored: Vec<(ChunkGrid, ChunkSet)>,
}

impl AbsentTiles {
    /// The stored chunks of `inputs`, when there are two, both fill with 0
    /// and some chunk is absent; `None` otherwise.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when a store cannot be listed.
    pub(crate) fn of(inputs: &[ArrayRef]) -> Result<Option<Self>> {
        if inputs.len() != 2 || inputs.iter().any(|a| a.fill_value() != 0.0) {
            return Ok(None);
        }
        let stored = inputs
            .iter()
            .map(|a| Ok((a.chunk_grid().clone(), a.stored_chunk_set()?)))
            .collect::<Result<Vec<_>>>()?;
        if stored.iter().any(|(_, set)| set.is_all()) {
            return Ok(None);
        }
        Ok(Some(Self { stored }))
    }

    /// True when both operands' tiles under contracted ranges `kc` lie in
    /// chunks never written.
    fn both_absent(&self, step: &ContractionStep, kc: &Ranges) -> bool {
        self.stored.iter().enumerate().all(|(k, (grid, set))| {
            tile_combinations(step, &step.summed[k], kc)
                .iter()
                .all(|sc| {
                    let region = operand_region(step, k, sc);
                    ChunkGrid::iter_region(&grid.chunks_touching(&region))
                        .all(|c| !set.contains(grid.chunk_linear_index(&c)))
                })
        })
    }
}

/// The ranges of the output indices of output tile `region`.
fn output_ranges(step: &ContractionStep, region: &Region) -> Ranges {
    step.output
        .iter()
        .enumerate()
        .map(|(k, l)| (*l, (region.start()[k], region.shape()[k])))
        .collect()
}

/// Every combination of tiles of `labels` (C order), each added to `base`.
fn tile_combinations(step: &ContractionStep, labels: &[Label], base: &Ranges) -> Vec<Ranges> {
    let mut out = vec![base.clone()];
    for l in labels {
        let (size, tile) = (step.sizes[l], step.tiles[l].min(step.sizes[l]));
        out = out
            .into_iter()
            .flat_map(|r| {
                (0..size.div_ceil(tile)).map(move |t| {
                    let mut r = r.clone();
                    let start = t * tile;
                    r.insert(*l, (start, tile.min(size - start)));
                    r
                })
            })
            .collect();
    }
    out
}

/// The region of operand `k` under `ranges` (broadcast axes: their one
/// element).
fn operand_region(step: &ContractionStep, k: usize, ranges: &Ranges) -> Region {
    let labels = &step.inputs[k].labels;
    let (start, shape): (Vec<u64>, Vec<u64>) = labels
        .iter()
        .map(|l| l.map_or((0, 1), |l| ranges[&l]))
        .unzip();
    Region::new(start, shape)
}

/// One loop of a strided accumulation: its extent and the steps it takes
/// through the destination and the source.
#[derive(Debug, Clone, Copy)]
struct Dim {
    extent: usize,
    dst: usize,
    src: usize,
}

/// `dst[Σ i·dst_stride] += src[Σ i·src_stride]` over every index of `dims`:
/// permutes (distinct destination strides), takes diagonals (an index
/// stepping along two source axes) and sums (destination stride 0) in one
/// pass. The loops nest in `dims`' order, so each destination element
/// gathers its terms in a fixed order.
fn accumulate<T: Element>(dst: &mut [T], src: &[T], dims: &[Dim]) {
    let Some((inner, outer)) = dims.split_last() else {
        dst[0] += src[0];
        return;
    };
    let mut index = vec![0usize; outer.len()];
    let (mut d, mut s) = (0usize, 0usize);
    loop {
        if inner.dst == 1 && inner.src == 1 {
            for (o, i) in dst[d..d + inner.extent]
                .iter_mut()
                .zip(&src[s..s + inner.extent])
            {
                *o += *i;
            }
        } else {
            for i in 0..inner.extent {
                dst[d + i * inner.dst] += src[s + i * inner.src];
            }
        }
        let mut k = outer.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            index[k] += 1;
            d += outer[k].dst;
            s += outer[k].src;
            if index[k] < outer[k].extent {
                break;
            }
            d -= outer[k].dst * outer[k].extent;
            s -= outer[k].src * outer[k].extent;
            index[k] = 0;
        }
    }
}

/// The loops that add an operand block (axes `labels`, shape `shape`) into a
/// destination laid out as `dst_labels` with `ranges`' extents; indices of
/// the block not in the destination are summed. Loops run from the largest
/// source stride to the smallest.
fn accumulate_dims(
    labels: &[Option<Label>],
    shape: &[u64],
    dst_labels: &[Label],
    ranges: &Ranges,
) -> Vec<Dim> {
    let src_strides = Shape::new(shape.to_vec()).strides();
    let dst_extents: Vec<u64> = dst_labels.iter().map(|l| ranges[l].1).collect();
    let dst_strides = Shape::new(dst_extents).strides();
    let mut seen: Vec<Label> = Vec::new();
    let mut dims = Vec::new();
    for l in labels.iter().flatten() {
        if seen.contains(l) {
            continue;
        }
        seen.push(*l);
        let src: u64 = labels
            .iter()
            .zip(&src_strides)
            .filter(|(a, _)| **a == Some(*l))
            .map(|(_, s)| *s)
            .sum();
        let dst = dst_labels
            .iter()
            .position(|d| d == l)
            .map_or(0, |p| dst_strides[p]);
        dims.push(Dim {
            extent: ranges[l].1 as usize,
            dst: dst as usize,
            src: src as usize,
        });
    }
    dims.sort_by_key(|d| std::cmp::Reverse(d.src));
    dims
}

/// Matrix `at` of a `[batch][rows][cols]` tile (stored `[batch][cols][rows]`
/// when `transposed`).
fn batch_matrix<T>(
    data: &[T],
    transposed: bool,
    rows: usize,
    cols: usize,
    at: usize,
) -> MatView<'_, T> {
    let part = &data[at * rows * cols..(at + 1) * rows * cols];
    if transposed {
        MatView::transposed(part, rows, cols)
    } else {
        MatView::row_major(part, rows, cols)
    }
}

/// Whether operand tiles in `layout` hold their matrices transposed.
fn is_transposed(layout: OperandLayout) -> bool {
    matches!(
        layout,
        OperandLayout::Transposed | OperandLayout::Slices { .. }
    )
}

/// Operand `k`'s tile for contracted ranges `kc`, when along every axis
/// from `outer` on it is exactly one stored chunk's extent: each slice over
/// its first `outer` axes then lies whole in one chunk and can be multiplied
/// where it lies in the cache, never copied. `None` for an operand with
/// broadcast axes.
fn tile_in_chunks(
    step: &ContractionStep,
    graph: &ChunkGraph,
    k: usize,
    kc: &Ranges,
    outer: usize,
) -> Option<Region> {
    if step.inputs[k].labels.iter().any(Option::is_none) {
        return None;
    }
    let region = operand_region(step, k, kc);
    let chunks = graph.arrays[k].grid.chunks_touching(&region);
    let first = graph.region(graph.key(k as ArrayId, chunks.start()));
    let whole = (outer..region.shape().len()).all(|a| {
        chunks.shape()[a] == 1
            && first.start()[a] == region.start()[a]
            && first.shape()[a] == region.shape()[a]
    });
    whole.then_some(region)
}

/// The stored chunk that is exactly the second operand's tile for
/// contracted ranges `kc`, when the tile enters the GEMM as stored.
fn second_in_one_chunk(
    step: &ContractionStep,
    graph: &ChunkGraph,
    kc: &Ranges,
) -> Option<ChunkKey> {
    let as_stored = matches!(
        step.layouts[1],
        OperandLayout::Direct | OperandLayout::Transposed
    );
    if !as_stored {
        // (A packed tile's region needs its summed indices too.)
        return None;
    }
    let region = tile_in_chunks(step, graph, 1, kc, 0)?;
    let chunks = graph.arrays[1].grid.chunks_touching(&region);
    Some(graph.key(1, chunks.start()))
}

/// The first operand's tile for contracted ranges `kc` and the number of
/// its leading axes that index its GEMM slices (batch indices, then the
/// leading kept ones of [`OperandLayout::Slices`]), when every slice lies
/// whole in one stored chunk ([`tile_in_chunks`]). `None` when a slice
/// straddles chunks or the tile must be packed.
fn slices_in_place(
    step: &ContractionStep,
    graph: &ChunkGraph,
    kc: &Ranges,
) -> Option<(Region, usize)> {
    let lead = match step.layouts[0] {
        OperandLayout::Direct | OperandLayout::Transposed => 0,
        OperandLayout::Slices { lead, .. } => lead,
        OperandLayout::Packed => return None,
    };
    let outer = step.batch.len() + lead;
    Some((tile_in_chunks(step, graph, 0, kc, outer)?, outer))
}

/// The part `[start, start + len)` along axes `rows` and `cols` (as used in
/// the GEMM) of a two-axis stored chunk covering `chunk`, as a matrix where
/// the chunk's elements lie (C order): used transposed when its rows run
/// along the chunk's second axis.
fn chunk_part<'a, T>(
    data: &'a [T],
    chunk: &Region,
    (rows, row_start, row_len): (usize, u64, u64),
    (cols, col_start, col_len): (usize, u64, u64),
) -> MatView<'a, T> {
    let at = |axis: usize, start: u64| (start - chunk.start()[axis]) as usize;
    let ld = chunk.shape()[1] as usize;
    let (row_len, col_len) = (row_len as usize, col_len as usize);
    if rows == 0 {
        let first = at(rows, row_start) * ld + at(cols, col_start);
        MatView::strided(&data[first..], row_len, col_len, ld)
    } else {
        let first = at(cols, col_start) * ld + at(rows, row_start);
        MatView::strided(&data[first..], col_len, row_len, ld).transpose()
    }
}

/// The rows of an output tile under one row of the first operand's stored
/// chunks, in a plain product ([`ContractionBody::multiply_chunk_pairs`]).
struct Band {
    /// First row (in the output).
    start: u64,
    /// Rows.
    len: u64,
    /// The chunks there (indices into the task's pinned chunks of the
    /// first operand), in contracted order.
    chunks: Vec<usize>,
}

/// Runs the tasks of a [`contraction_graph`].
pub(crate) struct ContractionBody {
    pub(crate) step: ContractionStep,
    /// Tile pairs to skip (see [`AbsentTiles`]).
    pub(crate) absent: Option<AbsentTiles>,
}

impl ContractionBody {
    fn extent(ranges: &Ranges, labels: &[Label]) -> usize {
        labels.iter().map(|l| ranges[l].1 as usize).product()
    }

    /// `c += x · y` for the contracted ranges `kc` of a plain matrix product
    /// ([`ContractionStep::multiplies_chunk_pairs`]), `c` being the output tile (`n`
    /// columns) starting at `ranges`: one GEMM call for each stored chunk
    /// under the first operand's tile and each chunk under the second's
    /// that shares contracted positions with it, on the parts of the two
    /// chunks in the tiles, where they lie in the cache, into the part of
    /// the tile they make. The tile's rows under different chunks of the
    /// first operand are computed by the task's threads side by side; the
    /// calls, and their order for each part of the tile, depend on the
    /// tiles and the chunks only, so the result's bits do not depend on
    /// the threads.
    fn multiply_chunk_pairs<T: Element>(
        &self,
        io: &mut TaskIo<'_, T>,
        kc: &Ranges,
        ranges: &Ranges,
        c: &mut [T],
        n: usize,
    ) -> Result<()> {
        let step = &self.step;
        let (row, inner, col) = (step.left[0], step.contracted[0], step.right[0]);
        let axis = |k: usize, label: Label| {
            step.inputs[k]
                .labels
                .iter()
                .position(|l| *l == Some(label))
                .expect("a plain product's operand has its indices")
        };
        let (x_rows, x_inner) = (axis(0, row), axis(0, inner));
        let (y_inner, y_cols) = (axis(1, inner), axis(1, col));
        // The chunks under both tiles, pinned for this contracted step
        // (the plan counts both tiles in each task's memory).
        let (x_tile, y_tile) = (operand_region(step, 0, kc), operand_region(step, 1, kc));
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (k, tile, pinned) in [(0, &x_tile, &mut xs), (1, &y_tile, &mut ys)] {
            for key in io.graph().chunks_touching(k as ArrayId, tile) {
                pinned.push((io.graph().region(key), io.chunk(key)?));
            }
        }
        let end = |r: &Region, a: usize| r.start()[a] + r.shape()[a];
        let (row0, col0) = (ranges[&row].0, ranges[&col].0);
        // The tile's rows under each row of the first operand's chunks,
        // top to bottom, with the chunks there (contracted positions in
        // order).
        let mut bands: Vec<Band> = Vec::new();
        for (i, (chunk, _)) in xs.iter().enumerate() {
            let part = chunk.intersect(&x_tile).expect("touching chunks overlap");
            let (start, len) = (part.start()[x_rows], part.shape()[x_rows]);
            match bands.iter_mut().find(|b| b.start == start) {
                Some(band) => band.chunks.push(i),
                None => bands.push(Band {
                    start,
                    len,
                    chunks: vec![i],
                }),
            }
        }
        bands.sort_by_key(|b| b.start);
        let multiply_band = |c: &mut [T], band: &Band, threads| {
            for &i in &band.chunks {
                let (x_chunk, x_data) = &xs[i];
                let x_part = x_chunk.intersect(&x_tile).expect("touching chunks overlap");
                for (y_chunk, y_data) in &ys {
                    let y_part = y_chunk.intersect(&y_tile).expect("touching chunks overlap");
                    let k_start = x_part.start()[x_inner].max(y_part.start()[y_inner]);
                    let k_end = end(&x_part, x_inner).min(end(&y_part, y_inner));
                    if k_start >= k_end {
                        continue;
                    }
                    let (c_start, c_len) = (y_part.start()[y_cols], y_part.shape()[y_cols]);
                    let x = chunk_part(
                        x_data.as_slice(),
                        x_chunk,
                        (x_rows, band.start, band.len),
                        (x_inner, k_start, k_end - k_start),
                    );
                    let y = chunk_part(
                        y_data.as_slice(),
                        y_chunk,
                        (y_inner, k_start, k_end - k_start),
                        (y_cols, c_start, c_len),
                    );
                    let at = (c_start - col0) as usize;
                    matmul_add_block(&mut c[at..], n, x, y, threads);
                }
            }
        };
        let threads = io.threads();
        if threads <= 1 || bands.len() == 1 {
            for band in &bands {
                let at = (band.start - row0) as usize * n;
                multiply_band(&mut c[at..], band, threads);
            }
            return Ok(());
        }
        // Bands cover disjoint rows of the tile: one share of them per
        // thread.
        let mut shares: Vec<Vec<(&mut [T], &Band)>> =
            (0..threads.min(bands.len())).map(|_| Vec::new()).collect();
        let mut rest = c;
        let mut next_row = row0;
        for (b, band) in bands.iter().enumerate() {
            let skip = (band.start - next_row) as usize * n;
            let (_, from_band) = std::mem::take(&mut rest).split_at_mut(skip);
            let (rows, after) =
                from_band.split_at_mut((band.len as usize * n).min(from_band.len()));
            rest = after;
            next_row = band.start + band.len;
            let count = shares.len();
            shares[b % count].push((rows, band));
        }
        std::thread::scope(|scope| {
            let multiply_band = &multiply_band;
            for share in shares {
                scope.spawn(move || {
                    for (rows, band) in share {
                        multiply_band(rows, band, 1);
                    }
                });
            }
        });
        Ok(())
    }

    /// Operand `k`'s tile for contracted ranges `kc` in GEMM layout, with its
    /// summed indices added up: the assembled block itself when its axes
    /// already are in GEMM order (or the transpose), else a packed copy.
    fn operand_tile<T: Element>(
        &self,
        io: &mut TaskIo<'_, T>,
        k: usize,
        kc: &Ranges,
    ) -> Result<Vec<T>> {
        let step = &self.step;
        let labels = &step.inputs[k].labels;
        if step.layouts[k] != OperandLayout::Packed {
            let block = io.assemble(k as ArrayId, &operand_region(step, k, kc))?;
            return Ok(block.into_vec());
        }
        let (rows, cols) = if k == 0 {
            (&step.left, &step.contracted)
        } else {
            (&step.contracted, &step.right)
        };
        let order: Vec<Label> = step.batch.iter().chain(rows).chain(cols).copied().collect();
        let distinct = labels.iter().flatten().count() == step.inputs[k].distinct_labels().len();
        if step.summed[k].is_empty() && distinct {
            // A pure permutation: the cache-blocked transpose of `Block`.
            let block = io.assemble(k as ArrayId, &operand_region(step, k, kc))?;
            let mut perm: Vec<usize> = (0..labels.len()).filter(|&a| labels[a].is_none()).collect();
            perm.extend(order.iter().map(|l| {
                labels
                    .iter()
                    .position(|a| *a == Some(*l))
                    .expect("every index of the order is an axis")
            }));
            return Ok(block.permuted(&perm).into_vec());
        }
        let mut packed = vec![T::ZERO; Self::extent(kc, &order)];
        for sc in tile_combinations(step, &step.summed[k], kc) {
            let region = operand_region(step, k, &sc);
            let block = io.assemble(k as ArrayId, &region)?;
            let dims = accumulate_dims(labels, region.shape(), &order, &sc);
            accumulate(&mut packed, block.as_slice(), &dims);
        }
        Ok(packed)
    }
}

impl<T: Element> TaskBody<T> for ContractionBody {
    fn run(&self, _index: usize, io: &mut TaskIo<'_, T>) -> Result<Option<Block<T>>> {
        let step = &self.step;
        let key = io.task().write.expect("contraction tasks write a tile");
        let region = io.graph().region(key);
        let ranges = output_ranges(step, &region);
        if step.inputs.len() == 1 {
            // Diagonals, sums and permutations straight into the tile.
            let mut out = vec![T::ZERO; region.num_elements() as usize];
            for sc in tile_combinations(step, &step.summed[0], &ranges) {
                let r = operand_region(step, 0, &sc);
                let block = io.assemble(0, &r)?;
                let dims = accumulate_dims(&step.inputs[0].labels, r.shape(), &step.output, &sc);
                accumulate(&mut out, block.as_slice(), &dims);
            }
            return Block::from_vec(region.shape().to_vec(), out).map(Some);
        }
        // The first operand's leading kept indices, looped over like batch
        // indices when its tile is multiplied slice by slice.
        let (lead, swapped) = match step.layouts[0] {
            OperandLayout::Slices { lead, swapped } => (lead, swapped),
            _ => (0, false),
        };
        let slices = Self::extent(&ranges, &step.left[..lead]);
        let b = Self::extent(&ranges, &step.batch);
        let m = Self::extent(&ranges, &step.left[lead..]);
        let n = Self::extent(&ranges, &step.right);
        let mut c = vec![T::ZERO; b * slices * m * n];
        let mut multiplied = false;
        for kc in tile_combinations(step, &step.contracted, &ranges) {
            if self
                .absent
                .as_ref()
                .is_some_and(|a| a.both_absent(step, &kc))
            {
                continue;
            }
            multiplied = true;
            if step.multiplies_chunk_pairs() {
                self.multiply_chunk_pairs(io, &kc, &ranges, &mut c, n)?;
                continue;
            }
            let kk = Self::extent(&kc, &step.contracted);
            // The second operand's tile: its stored chunk itself when the
            // tile is exactly one chunk, else assembled.
            let (y_pinned, y_packed);
            let y: &[T] = match second_in_one_chunk(step, io.graph(), &kc) {
                Some(key) => {
                    y_pinned = io.chunk(key)?;
                    y_pinned.as_slice()
                }
                None => {
                    y_packed = self.operand_tile(io, 1, &kc)?;
                    &y_packed
                }
            };
            let y_transposed = is_transposed(step.layouts[1]);
            let x_transposed = is_transposed(step.layouts[0]);
            let threads = io.threads();
            // `c[slice] += x · y[at]` for the slice `x` of the first
            // operand, or its transpose `c[slice] += y[at]ᵀ · xᵀ` for swapped
            // slices.
            let multiply = |c: &mut [T], x: &[T], slice: usize, at: usize| {
                let c = &mut c[slice * m * n..(slice + 1) * m * n];
                if swapped {
                    matmul_add(
                        c,
                        batch_matrix(y, !y_transposed, n, kk, at),
                        batch_matrix(x, !x_transposed, kk, m, 0),
                        threads,
                    );
                } else {
                    matmul_add(
                        c,
                        batch_matrix(x, x_transposed, m, kk, 0),
                        batch_matrix(y, y_transposed, kk, n, at),
                        threads,
                    );
                }
            };
            // Each output slice is one GEMM call per contracted tile, on the
            // same values wherever they lie: the same bits either way.
            if let Some((x_region, outer)) = slices_in_place(step, io.graph(), &kc) {
                let tile_outer = Shape::new(x_region.shape()[..outer].to_vec());
                for key in io.graph().chunks_touching(0, &x_region) {
                    let chunk = io.graph().region(key);
                    let overlap = chunk.intersect(&x_region).expect("touching chunks overlap");
                    let chunk_outer = Shape::new(chunk.shape()[..outer].to_vec());
                    let data = io.chunk(key)?;
                    let overlap_outer = Shape::new(overlap.shape()[..outer].to_vec());
                    for local in 0..overlap_outer.num_elements() {
                        let index = overlap_outer.unravel(local);
                        let at_tile: Vec<u64> = (0..outer)
                            .map(|a| index[a] + overlap.start()[a] - x_region.start()[a])
                            .collect();
                        let at_chunk: Vec<u64> = (0..outer)
                            .map(|a| index[a] + overlap.start()[a] - chunk.start()[a])
                            .collect();
                        let slice = tile_outer.linear_index(&at_tile) as usize;
                        let offset = chunk_outer.linear_index(&at_chunk) as usize;
                        let x = &data.as_slice()[offset * m * kk..(offset + 1) * m * kk];
                        multiply(&mut c, x, slice, slice / slices);
                    }
                }
                continue;
            }
            let x = self.operand_tile(io, 0, &kc)?;
            for at in 0..b {
                for slice in at * slices..(at + 1) * slices {
                    multiply(&mut c, &x[slice * m * kk..(slice + 1) * m * kk], slice, at);
                }
            }
        }
        if !multiplied && self.absent.is_some() {
            // Every product was of absent tiles: the tile is the output's
            // fill value (0), left unwritten.
            return Ok(None);
        }
        let natural = step.natural_order();
        let shape: Vec<u64> = natural.iter().map(|l| ranges[l].1).collect();
        let tile = Block::from_vec(shape, c)?;
        let tile = if natural == step.output {
            tile
        } else {
            let perm: Vec<usize> = step
                .output
                .iter()
                .map(|l| natural.iter().position(|n| n == l).expect("same indices"))
                .collect();
            tile.permuted(&perm)
        };
        // A scalar result is stored as one element.
        Block::from_vec(region.shape().to_vec(), tile.into_vec()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scratch and pinned bytes of each task of `ij,jk->ik` on 64 × 64
    /// operands stored in `x_chunks` and `y_chunks` (with `batched`,
    /// `bij,bjk->bik` over two such matrices, chunked one at a time), with
    /// tiles of 16 along every index but the batch one (1) and output chunks
    /// of the tile's shape.
    fn task_memory(batched: bool, x_chunks: [u64; 2], y_chunks: [u64; 2]) -> Vec<(u64, u64)> {
        use crate::core::DType;
        use crate::plan::{StepOperand, TilingParams};
        use crate::store::{ArraySpec, ZarrArray};
        let dir = tempfile::tempdir().unwrap();
        let letters = |s: &str| -> Vec<Label> { s.chars().map(Label::Letter).collect() };
        let (lead, batch, one): (&str, Vec<u64>, Vec<u64>) = if batched {
            ("b", vec![2], vec![1])
        } else {
            ("", vec![], vec![])
        };
        let mut inputs: Vec<ArrayRef> = Vec::new();
        let mut operands = Vec::new();
        for (name, labels, chunks) in [("x", "ij", x_chunks), ("y", "jk", y_chunks)] {
            let shape = [batch.clone(), vec![64, 64]].concat();
            let chunks = [one.clone(), chunks.to_vec()].concat();
            let spec = ArraySpec::new(shape.clone(), chunks.clone(), DType::F64);
            inputs.push(Arc::new(
                ZarrArray::create(dir.path().join(name), &spec).unwrap(),
            ));
            operands.push(StepOperand {
                labels: letters(&format!("{lead}{labels}"))
                    .into_iter()
                    .map(Some)
                    .collect(),
                shape,
                chunks: chunks.clone(),
                chunk_load_bytes: chunks.iter().product::<u64>() * 8,
            });
        }
        let mut sizes: BTreeMap<Label, u64> = letters("ijk").into_iter().map(|l| (l, 64)).collect();
        let mut tiles: BTreeMap<Label, u64> = letters("ijk").into_iter().map(|l| (l, 16)).collect();
        if batched {
            sizes.insert(Label::Letter('b'), 2);
            tiles.insert(Label::Letter('b'), 1);
        }
        let out_shape = [batch.clone(), vec![64, 64]].concat();
        let out_chunks = [one.clone(), vec![16, 16]].concat();
        let params = TilingParams::new(8, 1 << 30).with_output_chunks(out_chunks.clone());
        let mut step =
            ContractionStep::plan(operands, letters(&format!("{lead}ik")), &sizes, &params);
        step.tiles = tiles;
        let spec = ArraySpec::new(out_shape, out_chunks, DType::F64);
        let output = Arc::new(OutputArray::new(dir.path().join("out"), spec));
        let graph = contraction_graph(&step, &inputs, output, "test", None).unwrap();
        assert_eq!(graph.tasks.len(), if batched { 32 } else { 16 });
        graph
            .tasks
            .iter()
            .map(|t| (t.scratch_bytes, t.pinned_bytes))
            .collect()
    }

    #[test]
    fn tasks_reserve_no_tiles_for_operands_multiplied_in_place() {
        let tile = 16 * 16 * 8;
        let scratch =
            |memory: Vec<(u64, u64)>| -> Vec<u64> { memory.into_iter().map(|(s, _)| s).collect() };
        // Tiles that are stored chunks: only the output tile.
        assert_eq!(
            scratch(task_memory(true, [16, 16], [16, 16])),
            vec![tile; 32]
        );
        // The second operand's tiles straddle two chunks: its assembled
        // tile and the copy of a chunk's part too.
        assert_eq!(
            scratch(task_memory(true, [16, 16], [8, 16])),
            vec![tile + tile + tile; 32]
        );
        // The first one's, in 32 × 32 chunks: the same.
        assert_eq!(
            scratch(task_memory(true, [32, 32], [16, 16])),
            vec![tile + tile + 32 * 32 * 8; 32]
        );
    }

    #[test]
    fn plain_products_reserve_their_output_tile_and_pin_the_chunks_under_both_tiles() {
        let tile = 16 * 16 * 8;
        for (x_chunks, y_chunks, pinned) in [
            ([16, 16], [16, 16], 2 * tile),
            // Two 8 × 16 chunks under each tile of the second operand.
            ([16, 16], [8, 16], 2 * tile),
            // One 32 × 32 chunk under each tile of the first.
            ([32, 32], [16, 16], 4 * tile + tile),
        ] {
            assert_eq!(
                task_memory(false, x_chunks, y_chunks),
                vec![(tile, pinned); 16],
                "{x_chunks:?} and {y_chunks:?}"
            );
        }
    }

    #[test]
    fn accumulate_takes_diagonals_and_sums() {
        // src 3×3 = 0..9; diagonal (ii->i) and trace (ii->).
        let src: Vec<f64> = (0..9).map(f64::from).collect();
        let mut diag = vec![0.0; 3];
        accumulate(
            &mut diag,
            &src,
            &[Dim {
                extent: 3,
                dst: 1,
                src: 4,
            }],
        );
        assert_eq!(diag, vec![0.0, 4.0, 8.0]);
        let mut trace = vec![0.0];
        accumulate(
            &mut trace,
            &src,
            &[Dim {
                extent: 3,
                dst: 0,
                src: 4,
            }],
        );
        assert_eq!(trace, vec![12.0]);
        // Transpose then row sums: (ij->j) over a 3×3.
        let mut cols = vec![0.0; 3];
        let dims = [
            Dim {
                extent: 3,
                dst: 0,
                src: 3,
            },
            Dim {
                extent: 3,
                dst: 1,
                src: 1,
            },
        ];
        accumulate(&mut cols, &src, &dims);
        assert_eq!(cols, vec![9.0, 12.0, 15.0]);
    }
}
