//! [`ContractionStep`]: one pairwise (or single-operand) contraction of an
//! einsum as batched GEMM, with its tiles chosen under the memory budget.

use std::collections::BTreeMap;
use std::fmt;

use crate::plan::einsum_spec::{Label, labels_text};

/// Throughput figures the cost model uses: per-thread GEMM rate, stored read
/// and write rates, the fixed cost of reading one chunk and of one GEMM
/// call. Rough on purpose: they rank plans, they do not predict times.
const FLOPS_PER_THREAD: f64 = 20e9;
const READ_BYTES_PER_SEC: f64 = 2e9;
const WRITE_BYTES_PER_SEC: f64 = 1e9;
const COPY_BYTES_PER_SEC: f64 = 4e9;
/// Per chunk a contraction task reads: load, cache bookkeeping, assembly.
const SECONDS_PER_CHUNK_READ: f64 = 100e-6;
/// Planning and starting one more run (a rechunk before a contraction).
const SECONDS_PER_RUN: f64 = 0.05;
/// Per chunk a rechunk moves (measured lower: its tasks read few chunks each).
const SECONDS_PER_CHUNK_MOVED: f64 = 30e-6;
const SECONDS_PER_GEMM_CALL: f64 = 5e-6;
/// Tasks the tiles are sized for: each task may use this fraction of the
/// limit, so that two run at once with room left for the chunk cache. Fixed
/// (not the thread count) so that tiles — and with them the order of every
/// partial sum — do not depend on how many threads run.
const TASK_SHARE_OF_LIMIT: (u64, u64) = (2, 5);
const PLANNED_WORKERS: f64 = 2.0;
/// Buffers above this size come from fresh memory mappings (glibc's mmap
/// threshold as the CLI sets it), so each allocation page-faults all of its
/// pages anew; smaller ones reuse heap memory.
const FRESH_MAPPING_BYTES: u64 = 32 << 20;
/// Rate at which fresh pages are faulted in and zeroed (measured on 2 cores
/// with both workers allocating).
const FAULT_BYTES_PER_SEC: f64 = 1e9;
/// What the chunk graph holds per chunk read it lists and per task (see
/// `ChunkGraph::footprint`), with room for its per-chunk maps.
const PLAN_BYTES_PER_READ: u64 = 144;
const PLAN_BYTES_PER_TASK: u64 = 128;

/// Modelled seconds to rechunk an operand of `bytes` stored in `chunks`
/// chunks into `new_chunks`: plan and start a run, read it once, write it
/// once.
pub fn rechunk_seconds(bytes: u64, chunks: u64, new_chunks: u64) -> f64 {
    SECONDS_PER_RUN
        + bytes as f64 / READ_BYTES_PER_SEC
        + bytes as f64 / WRITE_BYTES_PER_SEC
        + (chunks + new_chunks) as f64 * SECONDS_PER_CHUNK_MOVED
}

/// An operand of a step: the index of each axis (`None` for a size-1 axis
/// broadcast against a larger dimension), its shape and stored chunking.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOperand {
    /// The index of each axis.
    pub labels: Vec<Option<Label>>,
    /// The shape.
    pub shape: Vec<u64>,
    /// The stored chunk shape.
    pub chunks: Vec<u64>,
    /// Memory needed to load one chunk (decode buffers included).
    pub chunk_load_bytes: u64,
}

impl StepOperand {
    /// The distinct indices, in axis order.
    pub fn distinct_labels(&self) -> Vec<Label> {
        let mut out: Vec<Label> = Vec::new();
        for l in self.labels.iter().flatten() {
            if !out.contains(l) {
                out.push(*l);
            }
        }
        out
    }

    fn elements(&self) -> u64 {
        product(self.shape.iter().copied())
    }

    fn chunk_elements(&self) -> u64 {
        self.chunks
            .iter()
            .zip(&self.shape)
            .map(|(c, s)| *c.min(s))
            .fold(1u64, u64::saturating_mul)
    }

    fn has_repeated_labels(&self) -> bool {
        self.distinct_labels().len() != self.labels.iter().flatten().count()
    }
}

/// How an operand's tile enters the GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperandLayout {
    /// The assembled tile already is `[batch][rows][cols]` row-major.
    Direct,
    /// The assembled tile is `[batch][cols][rows]`: used transposed.
    Transposed,
    /// The tile is packed (permuted, diagonal taken, summed indices added
    /// up) into `[batch][rows][cols]`.
    Packed,
}

/// What a step is estimated to cost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepCost {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes read from the operands (re-reads included).
    pub bytes_read: u64,
    /// Bytes of the result written.
    pub bytes_written: u64,
    /// Chunk reads.
    pub chunk_reads: u64,
    /// Memory one task needs: its tiles, packing buffers, one output chunk
    /// being written, and one input chunk being loaded.
    pub task_bytes: u64,
    /// Output tiles (tasks).
    pub tasks: u64,
    /// Modelled seconds (for ranking plans).
    pub seconds: f64,
}

/// One contraction: `C[batch, left, right] = Σ X[batch, left, contracted] ·
/// Y[batch, contracted, right]` where indices of one operand that appear
/// nowhere else are summed while its tiles are packed. With one operand it
/// is a diagonal / sum / permutation of it.
///
/// Every output tile is one task: it keeps the tile of C resident and
/// streams matching tiles of X and Y along the contracted indices, in a
/// fixed order. Tiles are multiples of the stored chunks (an output tile is
/// whole output chunks), sized to maximise the work per byte read within a
/// share of the memory limit that does not depend on the thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractionStep {
    /// One or two operands.
    pub inputs: Vec<StepOperand>,
    /// The result's indices, in order.
    pub output: Vec<Label>,
    /// The stored chunk shape of the result (`[1]` for a scalar).
    pub output_chunks: Vec<u64>,
    /// Size of every index.
    pub sizes: BTreeMap<Label, u64>,
    /// Bytes per element.
    pub itemsize: u64,
    /// Indices in both operands and the result.
    pub batch: Vec<Label>,
    /// Indices of the first operand only, kept.
    pub left: Vec<Label>,
    /// Indices of the second operand only, kept.
    pub right: Vec<Label>,
    /// Indices of both operands, summed.
    pub contracted: Vec<Label>,
    /// Per operand, indices only it has, summed while packing.
    pub summed: Vec<Vec<Label>>,
    /// Tile extent of every index.
    pub tiles: BTreeMap<Label, u64>,
    /// How each operand's tile enters the GEMM.
    pub layouts: Vec<OperandLayout>,
    /// The cost with these tiles.
    pub cost: StepCost,
    /// The least memory one task can need (every tile at its smallest).
    pub min_task_bytes: u64,
}

/// The result indices of contracting `x` with `y` when `keep` are needed
/// afterwards: batch, then `x`'s kept indices, then `y`'s, each in operand
/// order — the GEMM's natural layout, so intermediates need no permutation.
pub fn natural_output(x: &[Label], y: &[Label], keep: &[Label]) -> Vec<Label> {
    let kept = |l: &Label| keep.contains(l);
    let mut out: Vec<Label> = x
        .iter()
        .filter(|l| y.contains(l) && kept(l))
        .copied()
        .collect();
    out.extend(x.iter().filter(|l| !y.contains(l) && kept(l)));
    out.extend(y.iter().filter(|l| !x.contains(l) && kept(l)));
    out
}

impl ContractionStep {
    /// Plans the step producing `output` from `inputs` (one or two), with
    /// the result chunked as `output_chunks` (default: the operands'
    /// chunking along each index, halved until a chunk is at most
    /// `target_chunk_bytes`), tiles grown from the smallest while a task
    /// fits its share of `memory_limit`.
    ///
    /// # Panics
    /// If an output index is in no operand or there are not one or two
    /// operands (the einsum planner never builds such steps).
    pub fn plan(
        inputs: Vec<StepOperand>,
        output: Vec<Label>,
        output_chunks: Option<Vec<u64>>,
        sizes: &BTreeMap<Label, u64>,
        itemsize: u64,
        memory_limit: u64,
        target_chunk_bytes: u64,
    ) -> Self {
        assert!(
            matches!(inputs.len(), 1 | 2),
            "a step has one or two operands"
        );
        let x = inputs[0].distinct_labels();
        let y = inputs
            .get(1)
            .map(|o| o.distinct_labels())
            .unwrap_or_default();
        let kept = |l: &Label| output.contains(l);
        assert!(
            output.iter().all(|l| x.contains(l) || y.contains(l)),
            "every output index comes from an operand"
        );
        let batch: Vec<Label> = x
            .iter()
            .filter(|l| y.contains(l) && kept(l))
            .copied()
            .collect();
        let left: Vec<Label> = x
            .iter()
            .filter(|l| !y.contains(l) && kept(l))
            .copied()
            .collect();
        let right: Vec<Label> = y
            .iter()
            .filter(|l| !x.contains(l) && kept(l))
            .copied()
            .collect();
        let contracted: Vec<Label> = x
            .iter()
            .filter(|l| y.contains(l) && !kept(l))
            .copied()
            .collect();
        let mut summed = vec![
            x.iter()
                .filter(|l| !y.contains(l) && !kept(l))
                .copied()
                .collect::<Vec<_>>(),
        ];
        if inputs.len() == 2 {
            summed.push(
                y.iter()
                    .filter(|l| !x.contains(l) && !kept(l))
                    .copied()
                    .collect(),
            );
        }
        let sizes: BTreeMap<Label, u64> = x.iter().chain(&y).map(|l| (*l, sizes[l])).collect();
        let output_chunks = output_chunks.unwrap_or_else(|| {
            default_output_chunks(&inputs, &output, &sizes, itemsize, target_chunk_bytes)
        });
        let mut step = Self {
            layouts: Vec::new(),
            inputs,
            output,
            output_chunks,
            sizes,
            itemsize,
            batch,
            left,
            right,
            contracted,
            summed,
            tiles: BTreeMap::new(),
            cost: StepCost::default(),
            min_task_bytes: 0,
        };
        step.layouts = (0..step.inputs.len()).map(|k| step.layout_of(k)).collect();
        step.choose_tiles(memory_limit);
        step
    }

    /// Rows, inner and columns groups of operand `k` in GEMM terms.
    fn gemm_groups(&self, k: usize) -> (&[Label], &[Label]) {
        if k == 0 {
            (&self.left, &self.contracted)
        } else {
            (&self.contracted, &self.right)
        }
    }

    fn layout_of(&self, k: usize) -> OperandLayout {
        let op = &self.inputs[k];
        if self.inputs.len() == 1 || op.has_repeated_labels() || !self.summed[k].is_empty() {
            return OperandLayout::Packed;
        }
        let (rows, cols) = self.gemm_groups(k);
        let seq: Vec<Label> = op.labels.iter().flatten().copied().collect();
        let concat = |a: &[Label], b: &[Label]| -> Vec<Label> {
            self.batch.iter().chain(a).chain(b).copied().collect()
        };
        if seq == concat(rows, cols) {
            OperandLayout::Direct
        } else if seq == concat(cols, rows) {
            OperandLayout::Transposed
        } else {
            OperandLayout::Packed
        }
    }

    /// The result's stored shape (`[1]` for a scalar).
    pub fn output_shape(&self) -> Vec<u64> {
        if self.output.is_empty() {
            vec![1]
        } else {
            self.output.iter().map(|l| self.sizes[l]).collect()
        }
    }

    /// The tile shape of the result, in its index order (`[1]` for a scalar).
    pub fn output_tile(&self) -> Vec<u64> {
        if self.output.is_empty() {
            vec![1]
        } else {
            self.output.iter().map(|l| self.tiles[l]).collect()
        }
    }

    /// The result's indices in GEMM order: batch, left, right.
    pub fn natural_order(&self) -> Vec<Label> {
        if self.inputs.len() == 1 {
            return self.output.clone();
        }
        self.batch
            .iter()
            .chain(&self.left)
            .chain(&self.right)
            .copied()
            .collect()
    }

    /// The indices streamed inside a task, outermost first: contracted, then
    /// each operand's summed indices.
    pub fn reduction_labels(&self) -> Vec<Label> {
        self.contracted
            .iter()
            .chain(self.summed.iter().flatten())
            .copied()
            .collect()
    }

    fn tile(&self, tiles: &BTreeMap<Label, u64>, l: &Label) -> u64 {
        tiles[l].min(self.sizes[l])
    }

    fn tile_count(&self, tiles: &BTreeMap<Label, u64>, l: &Label) -> u64 {
        self.sizes[l].div_ceil(self.tile(tiles, l))
    }

    /// Number of tiles over the indices of `group`.
    fn tile_counts(&self, tiles: &BTreeMap<Label, u64>, group: &[Label]) -> u64 {
        product(group.iter().map(|l| self.tile_count(tiles, l)))
    }

    /// How often operand `k` is read: once per tile of the other operand's
    /// kept indices.
    fn times_read(&self, tiles: &BTreeMap<Label, u64>, k: usize) -> u64 {
        match (self.inputs.len(), k) {
            (2, 0) => self.tile_counts(tiles, &self.right),
            (2, _) => self.tile_counts(tiles, &self.left),
            _ => 1,
        }
    }

    /// Elements of operand `k`'s packed `[batch][rows][cols]` tile, when it
    /// is packed for a GEMM.
    fn packed_elements(&self, tiles: &BTreeMap<Label, u64>, k: usize) -> Option<u64> {
        (self.inputs.len() == 2 && self.layouts[k] == OperandLayout::Packed).then(|| {
            let (rows, cols) = self.gemm_groups(k);
            product([
                self.group_elements(tiles, &self.batch),
                self.group_elements(tiles, rows),
                self.group_elements(tiles, cols),
            ])
        })
    }

    /// Elements of operand `k`'s assembled tile.
    fn operand_tile_elements(&self, tiles: &BTreeMap<Label, u64>, k: usize) -> u64 {
        self.inputs[k]
            .labels
            .iter()
            .map(|l| l.map_or(1, |l| self.tile(tiles, &l)))
            .fold(1u64, u64::saturating_mul)
    }

    fn group_elements(&self, tiles: &BTreeMap<Label, u64>, group: &[Label]) -> u64 {
        product(group.iter().map(|l| self.tile(tiles, l)))
    }

    /// Bytes of the tiles and packing buffers one task holds with the
    /// chosen tiles (its scratch memory, output chunk buffers aside).
    pub fn tile_bytes(&self) -> u64 {
        self.tile_elements(&self.tiles)
            .saturating_mul(self.itemsize)
    }

    fn tile_elements(&self, tiles: &BTreeMap<Label, u64>) -> u64 {
        let out = product(self.output.iter().map(|l| self.tile(tiles, l)));
        let permute = self.inputs.len() == 2 && self.natural_order() != self.output;
        let mut elements = out.saturating_mul(if permute { 2 } else { 1 });
        for k in 0..self.inputs.len() {
            elements = elements
                .saturating_add(self.operand_tile_elements(tiles, k))
                .saturating_add(self.packed_elements(tiles, k).unwrap_or(0));
        }
        elements
    }

    /// Bytes of the largest chunk of any operand.
    fn largest_input_chunk(&self) -> u64 {
        self.inputs
            .iter()
            .map(|o| o.chunk_elements().saturating_mul(self.itemsize))
            .max()
            .unwrap_or(0)
    }

    /// Memory one task needs with `tiles`: tiles and packing buffers, an
    /// output chunk being cut out of the tile and encoded (compressed: up to
    /// three times its size in codec buffers), an input chunk
    /// pinned while it is copied (plus the copy) and one being loaded, and
    /// its share of the plan's own bookkeeping (every chunk read of every
    /// task is listed, which grows with re-reads and small tiles).
    fn task_bytes(&self, tiles: &BTreeMap<Label, u64>) -> u64 {
        let out_chunk = product(self.output_chunks.iter().copied());
        let load = self
            .inputs
            .iter()
            .map(|o| o.chunk_load_bytes)
            .max()
            .unwrap_or(0);
        let (_, chunk_reads) = self.reads(tiles);
        let tasks = self.tile_counts(tiles, &self.output);
        let plan = chunk_reads
            .saturating_mul(PLAN_BYTES_PER_READ)
            .saturating_add(tasks.saturating_mul(PLAN_BYTES_PER_TASK));
        self.tile_elements(tiles)
            .saturating_add(out_chunk.saturating_mul(4))
            .saturating_mul(self.itemsize)
            .saturating_add(self.largest_input_chunk().saturating_mul(2))
            .saturating_add(load)
            .saturating_add(plan)
    }

    /// Bytes read from the operands and chunk reads with `tiles`: the first
    /// operand is read once per tile of the second's kept indices and vice
    /// versa.
    fn reads(&self, tiles: &BTreeMap<Label, u64>) -> (u64, u64) {
        let (mut bytes, mut chunks) = (0u64, 0u64);
        for (k, op) in self.inputs.iter().enumerate() {
            let times = self.times_read(tiles, k);
            bytes = bytes.saturating_add(product([op.elements(), self.itemsize, times]));
            chunks = chunks.saturating_add(
                op.elements()
                    .div_ceil(op.chunk_elements().max(1))
                    .saturating_mul(times),
            );
        }
        (bytes, chunks)
    }

    /// Bytes of buffers large enough to be fresh mappings, over all tasks:
    /// each task's output tile (and its permuted copy), and at every step
    /// along the contracted indices each operand's assembled and packed
    /// tiles.
    fn fresh_mapping_bytes(&self, tiles: &BTreeMap<Label, u64>, tasks: u64) -> f64 {
        let fresh = |elements: u64| {
            let bytes = elements.saturating_mul(self.itemsize);
            if bytes + (64 << 10) >= FRESH_MAPPING_BYTES {
                bytes as f64
            } else {
                0.0
            }
        };
        let count = |group: &[Label]| self.tile_counts(tiles, group);
        let out = product(self.output.iter().map(|l| self.tile(tiles, l)));
        let permute = self.inputs.len() == 2 && self.natural_order() != self.output;
        let mut per_task = fresh(out) * if permute { 2.0 } else { 1.0 };
        let steps = count(&self.contracted) as f64;
        for k in 0..self.inputs.len() {
            let block = fresh(self.operand_tile_elements(tiles, k));
            let packed = self.packed_elements(tiles, k).map_or(0.0, fresh);
            per_task += steps * (block * count(&self.summed[k]) as f64 + packed);
        }
        per_task * tasks as f64
    }

    fn estimate(&self, tiles: &BTreeMap<Label, u64>) -> StepCost {
        let count = |group: &[Label]| self.tile_counts(tiles, group);
        let all: f64 = self.sizes.values().map(|&s| s as f64).product();
        let flops = if self.inputs.len() == 2 {
            2.0 * all
        } else {
            all
        };
        let tasks = count(&self.output);
        let (bytes_read, chunk_reads) = self.reads(tiles);
        let mut copied = 0.0;
        for (k, op) in self.inputs.iter().enumerate() {
            let times = self.times_read(tiles, k);
            let copies = if self.layouts[k] == OperandLayout::Packed {
                2.0
            } else {
                1.0
            };
            copied += (op.elements() as f64) * (self.itemsize as f64) * (times as f64) * copies;
        }
        let bytes_written = product(self.output_shape()).saturating_mul(self.itemsize);
        let gemm_calls = if self.inputs.len() == 2 {
            product([
                product(self.batch.iter().map(|l| self.sizes[l])),
                count(&self.left),
                count(&self.right),
                count(&self.contracted),
            ])
        } else {
            tasks.saturating_mul(count(&self.summed[0]))
        };
        let parallel = (tasks as f64).min(PLANNED_WORKERS);
        let faults = self.fresh_mapping_bytes(tiles, tasks);
        let seconds = flops / (FLOPS_PER_THREAD * parallel)
            + faults / (FAULT_BYTES_PER_SEC * parallel)
            + bytes_read as f64 / READ_BYTES_PER_SEC
            + bytes_written as f64 / WRITE_BYTES_PER_SEC
            + copied / (COPY_BYTES_PER_SEC * parallel)
            + chunk_reads as f64 * SECONDS_PER_CHUNK_READ
            + gemm_calls as f64 * SECONDS_PER_GEMM_CALL / parallel;
        StepCost {
            flops,
            bytes_read,
            bytes_written,
            chunk_reads,
            task_bytes: self.task_bytes(tiles),
            tasks,
            seconds,
        }
    }

    /// Tile extents allowed for index `l`, smallest first: multiples of the
    /// chunks along it (whole output chunks for a result index), doubling,
    /// then the whole extent.
    fn candidates(&self, l: Label) -> Vec<u64> {
        let size = self.sizes[&l];
        // Tiles aligned with every operand's chunks along `l` read each
        // chunk in one tile; when the chunkings disagree so much that their
        // common multiple is large, align with the largest chunk and accept
        // that some chunks are read by two tiles.
        let (mut common, mut largest) = (1, 1);
        for op in &self.inputs {
            for (axis, a) in op.labels.iter().enumerate() {
                if *a == Some(l) {
                    let c = op.chunks[axis].min(size);
                    common = lcm(common, c);
                    largest = largest.max(c);
                }
            }
        }
        let input_align = if common <= size && common <= 4 * largest {
            common
        } else {
            largest
        };
        let align = match self.output.iter().position(|o| *o == l) {
            Some(p) => {
                let c = self.output_chunks[p].min(size);
                let both = lcm(c, input_align);
                if both <= size { both } else { c }
            }
            None => input_align.min(size),
        };
        let mut out = Vec::new();
        let mut t = align.max(1);
        while t < size {
            out.push(t);
            t *= 2;
        }
        out.push(size);
        out
    }

    /// Grows the tiles greedily from the smallest: at each round the index
    /// whose next tile size lowers the modelled time most, while one task
    /// fits its share of the limit.
    fn choose_tiles(&mut self, memory_limit: u64) {
        let labels: Vec<Label> = self.sizes.keys().copied().collect();
        let candidates: BTreeMap<Label, Vec<u64>> =
            labels.iter().map(|&l| (l, self.candidates(l))).collect();
        let mut level: BTreeMap<Label, usize> = labels.iter().map(|&l| (l, 0)).collect();
        let tiles_at = |level: &BTreeMap<Label, usize>| -> BTreeMap<Label, u64> {
            level.iter().map(|(l, &i)| (*l, candidates[l][i])).collect()
        };
        let budget = memory_limit / TASK_SHARE_OF_LIMIT.1 * TASK_SHARE_OF_LIMIT.0;
        let mut tiles = tiles_at(&level);
        self.min_task_bytes = self.task_bytes(&tiles);
        let mut cost = self.estimate(&tiles);
        loop {
            let mut best: Option<(Label, StepCost)> = None;
            for &l in &labels {
                if level[&l] + 1 >= candidates[&l].len() {
                    continue;
                }
                let mut next = level.clone();
                *next.get_mut(&l).expect("every index has a level") += 1;
                let t = tiles_at(&next);
                if self.task_bytes(&t) > budget {
                    continue;
                }
                let c = self.estimate(&t);
                let better = best.as_ref().map_or(cost.seconds, |(_, b)| b.seconds);
                if c.seconds < better * (1.0 - 1e-9) {
                    best = Some((l, c));
                }
            }
            let Some((l, c)) = best else { break };
            *level.get_mut(&l).expect("every index has a level") += 1;
            tiles = tiles_at(&level);
            cost = c;
        }
        self.tiles = tiles;
        self.cost = cost;
    }

    /// The subscripts of the step, e.g. `ij,jk->ik`.
    pub fn subscripts(&self) -> String {
        let ins: Vec<String> = self
            .inputs
            .iter()
            .map(|o| {
                o.labels
                    .iter()
                    .map(|l| l.map_or("1".to_string(), |l| l.to_string()))
                    .collect()
            })
            .collect();
        format!("{}->{}", ins.join(","), labels_text(&self.output))
    }
}

impl fmt::Display for ContractionStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tiles: Vec<String> = self
            .tiles
            .iter()
            .map(|(l, t)| format!("{l}={}", t.min(&self.sizes[l])))
            .collect();
        write!(f, "{} tiles {}", self.subscripts(), tiles.join(" "))
    }
}

/// The default chunking of a step's result: along each index the chunk of
/// the first operand axis carrying it, the largest extent halved until a
/// chunk holds at most `target_bytes`.
fn default_output_chunks(
    inputs: &[StepOperand],
    output: &[Label],
    sizes: &BTreeMap<Label, u64>,
    itemsize: u64,
    target_bytes: u64,
) -> Vec<u64> {
    if output.is_empty() {
        return vec![1];
    }
    let mut chunks: Vec<u64> = output
        .iter()
        .map(|l| {
            inputs
                .iter()
                .find_map(|op| {
                    op.labels
                        .iter()
                        .position(|a| *a == Some(*l))
                        .map(|axis| op.chunks[axis])
                })
                .unwrap_or(1)
                .min(sizes[l])
        })
        .collect();
    while product(chunks.iter().copied()).saturating_mul(itemsize) > target_bytes {
        let (axis, &largest) = chunks
            .iter()
            .enumerate()
            .max_by_key(|&(k, &c)| (c, std::cmp::Reverse(k)))
            .expect("non-empty");
        if largest <= 1 {
            break;
        }
        chunks[axis] = largest.div_ceil(2);
    }
    chunks
}

/// The product of `values`, saturating at `u64::MAX` (an outer product of
/// large operands must give a huge size, not wrap).
fn product(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(1u64, u64::saturating_mul)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    (a / gcd(a, b)).saturating_mul(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(labels: &str, shape: &[u64], chunks: &[u64]) -> StepOperand {
        StepOperand {
            labels: labels.chars().map(|c| Some(Label::Letter(c))).collect(),
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            chunk_load_bytes: 2 * chunks.iter().product::<u64>() * 8,
        }
    }

    fn labels(s: &str) -> Vec<Label> {
        s.chars().map(Label::Letter).collect()
    }

    fn sizes(pairs: &[(char, u64)]) -> BTreeMap<Label, u64> {
        pairs.iter().map(|&(c, s)| (Label::Letter(c), s)).collect()
    }

    #[test]
    fn matmul_tiles_are_chunk_multiples_within_the_budget() {
        let n = 16384;
        let step = ContractionStep::plan(
            vec![
                op("ij", &[n, n], &[1024, 1024]),
                op("jk", &[n, n], &[1024, 1024]),
            ],
            labels("ik"),
            None,
            &sizes(&[('i', n), ('j', n), ('k', n)]),
            8,
            1 << 30,
            8 << 20,
        );
        assert_eq!(
            step.layouts,
            vec![OperandLayout::Direct, OperandLayout::Direct]
        );
        assert_eq!(step.contracted, labels("j"));
        for t in step.tiles.values() {
            assert_eq!(t % 1024, 0);
        }
        assert!(step.cost.task_bytes <= (1 << 30) * 2 / 5);
        // Big output tiles: each operand is read only a few times.
        assert!(step.cost.bytes_read <= 8 * 2 * n * n * 8, "{step}");
        assert!(step.min_task_bytes < step.cost.task_bytes);
    }

    #[test]
    fn classifies_indices_and_layouts() {
        let step = ContractionStep::plan(
            vec![
                op("bji", &[4, 5, 6], &[2, 5, 6]),
                op("bjk", &[4, 5, 7], &[4, 5, 7]),
            ],
            labels("bik"),
            None,
            &sizes(&[('b', 4), ('i', 6), ('j', 5), ('k', 7)]),
            8,
            1 << 20,
            1 << 20,
        );
        assert_eq!(step.batch, labels("b"));
        assert_eq!(step.left, labels("i"));
        assert_eq!(step.right, labels("k"));
        assert_eq!(
            step.layouts,
            vec![OperandLayout::Transposed, OperandLayout::Direct]
        );
        let summing = ContractionStep::plan(
            vec![
                op("ijk", &[4, 5, 6], &[4, 5, 6]),
                op("jl", &[5, 3], &[5, 3]),
            ],
            labels("il"),
            None,
            &sizes(&[('i', 4), ('j', 5), ('k', 6), ('l', 3)]),
            8,
            1 << 20,
            1 << 20,
        );
        assert_eq!(summing.summed[0], labels("k"));
        assert_eq!(summing.layouts[0], OperandLayout::Packed);
        assert_eq!(
            natural_output(&labels("ijk"), &labels("jl"), &labels("lk")),
            labels("kl")
        );
    }

    #[test]
    fn default_output_chunks_follow_the_operands() {
        let c = default_output_chunks(
            &[op("ij", &[4096, 4096], &[512, 256])],
            &labels("ji"),
            &sizes(&[('i', 4096), ('j', 4096)]),
            8,
            8 << 20,
        );
        assert_eq!(c, vec![256, 512]);
        let c = default_output_chunks(
            &[op("ij", &[4096, 4096], &[4096, 4096])],
            &labels("ij"),
            &sizes(&[('i', 4096), ('j', 4096)]),
            8,
            8 << 20,
        );
        assert_eq!(c, vec![1024, 1024]);
    }
}
