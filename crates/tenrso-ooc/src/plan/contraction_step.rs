//! [`ContractionStep`]: one pairwise (or single-operand) contraction of an
//! einsum as batched GEMM: its indices, operand layouts, working set and
//! modelled cost for given tiles. The tiles themselves are chosen in
//! `tile_search`, the prices come from `cost_model`.

use std::collections::BTreeMap;
use std::fmt;

use crate::plan::cost_model::{CostModel, StepWork};
use crate::plan::einsum_spec::{Label, labels_text};
use crate::plan::output_chunks::default_output_chunks;
use crate::plan::tiling_params::TilingParams;

/// The figures every step is planned with.
pub(super) const MODEL: CostModel = CostModel::DEFAULT;

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
    /// The assembled tile of the first operand is `[batch][lead][cols][rows]`,
    /// where `lead` are its first `lead` kept indices, `cols` the
    /// contracted ones and `rows` its other kept ones: each slice is used
    /// transposed where it lies, as if `lead` were batch indices (the
    /// output tile's natural order puts them first too). Saves packing a
    /// tensor whose contracted indices sit between its kept ones, e.g. `x`
    /// in `ijk,jl->ilk`.
    Slices {
        /// Leading kept indices looped over.
        lead: usize,
        /// Each slice of the output is computed transposed, `Yᵀ · slice`,
        /// so that the output's natural order is `[batch][lead][right][rows]`
        /// (chosen when that is the result's order, as `ilk` above: no
        /// permutation of the output tile, and the slice is read as
        /// stored).
        swapped: bool,
    },
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
        sizes: &BTreeMap<Label, u64>,
        params: &TilingParams,
    ) -> Self {
        let TilingParams {
            output_chunks,
            itemsize,
            memory_limit,
            target_chunk_bytes,
        } = params.clone();
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
            return OperandLayout::Direct;
        }
        if seq == concat(cols, rows) {
            return OperandLayout::Transposed;
        }
        if k == 0 {
            // (Untransposed slices would be `Direct`.)
            for lead in 1..rows.len() {
                let (first, rest) = rows.split_at(lead);
                let mut sliced = concat(first, cols);
                sliced.extend(rest);
                if seq == sliced {
                    let mut swapped_order = concat(first, &self.right);
                    swapped_order.extend(rest);
                    return OperandLayout::Slices {
                        lead,
                        swapped: self.output == swapped_order,
                    };
                }
            }
        }
        OperandLayout::Packed
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

    /// How operand `k` enters the GEMM, in words (for `explain`): `as
    /// stored`, `transposed`, `slices over i (products transposed)` or
    /// `packed`.
    pub fn layout_text(&self, k: usize) -> String {
        match self.layouts.get(k) {
            Some(OperandLayout::Direct) => "as stored".to_string(),
            Some(OperandLayout::Transposed) => "transposed".to_string(),
            Some(OperandLayout::Slices { lead, swapped }) => format!(
                "slices over {}{}",
                labels_text(&self.left[..*lead]),
                if *swapped {
                    " (products transposed)"
                } else {
                    ""
                }
            ),
            Some(OperandLayout::Packed) | None => "packed".to_string(),
        }
    }

    /// The result's indices in GEMM order: batch, left, right (batch, the
    /// leading left ones, right, the other left ones for swapped
    /// [`OperandLayout::Slices`]).
    pub fn natural_order(&self) -> Vec<Label> {
        if self.inputs.len() == 1 {
            return self.output.clone();
        }
        let (first, rest) = match self.layouts.first() {
            Some(OperandLayout::Slices {
                lead,
                swapped: true,
            }) => self.left.split_at(*lead),
            _ => (&self.left[..], &[][..]),
        };
        self.batch
            .iter()
            .chain(first)
            .chain(&self.right)
            .chain(rest)
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

    /// Bytes of operand `k`'s assembled tile and its packed copy, of those
    /// [`tile_bytes`](Self::tile_bytes) counts.
    pub fn operand_tile_bytes(&self, k: usize) -> u64 {
        self.operand_tile_elements(&self.tiles, k)
            .saturating_add(self.packed_elements(&self.tiles, k).unwrap_or(0))
            .saturating_mul(self.itemsize)
    }

    /// Whether this is a plain product of two matrices that both enter the
    /// GEMM as stored (one row, one contracted and one column index; no
    /// batch, summed or broadcast index): then the operands' tiles are never
    /// assembled, their chunks are multiplied pair by pair where they lie in
    /// the cache.
    pub fn multiplies_chunk_pairs(&self) -> bool {
        self.inputs.len() == 2
            && self.batch.is_empty()
            && [&self.left, &self.contracted, &self.right]
                .iter()
                .all(|labels| labels.len() == 1)
            && (0..2).all(|k| {
                matches!(
                    self.layouts[k],
                    OperandLayout::Direct | OperandLayout::Transposed
                ) && self.summed[k].is_empty()
                    && self.inputs[k].labels.len() == 2
                    && self.inputs[k].labels.iter().all(Option::is_some)
            })
    }

    /// How many operands (the first ones) are copied into assembled tiles:
    /// all, except in a plain product, which multiplies their chunks where
    /// they lie ([`multiplies_chunk_pairs`](Self::multiplies_chunk_pairs)).
    fn assembled_operands(&self) -> usize {
        if self.multiplies_chunk_pairs() {
            0
        } else {
            self.inputs.len()
        }
    }

    /// Bytes of the chunks a task holds for operand `k` beyond its tile,
    /// when its chunks are multiplied where they lie
    /// ([`multiplies_chunk_pairs`](Self::multiplies_chunk_pairs)): none
    /// when the tiles cover whole chunks, else those of the chunks the
    /// tile's edges cut (at most one more chunk along each axis).
    fn chunks_beyond_tile(&self, tiles: &BTreeMap<Label, u64>, k: usize) -> u64 {
        let op = &self.inputs[k];
        let spanned =
            op.labels
                .iter()
                .zip(&op.chunks)
                .zip(&op.shape)
                .map(|((label, &chunk), &size)| {
                    let tile = label.map_or(1, |l| self.tile(tiles, &l));
                    let chunk = chunk.max(1);
                    let covered = if tile % chunk == 0 {
                        tile
                    } else {
                        (tile.div_ceil(chunk) + 1).saturating_mul(chunk)
                    };
                    covered.min(size.next_multiple_of(chunk))
                });
        product(spanned)
            .saturating_sub(self.operand_tile_elements(tiles, k))
            .saturating_mul(self.itemsize)
    }

    /// The smallest chunk extent of any operand along index `l`.
    fn smallest_chunk(&self, l: &Label) -> u64 {
        self.inputs
            .iter()
            .flat_map(|op| op.labels.iter().zip(&op.chunks))
            .filter(|(label, _)| **label == Some(*l))
            .map(|(_, &chunk)| chunk.max(1))
            .min()
            .unwrap_or(1)
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
    /// task is listed, which grows with re-reads and small tiles). A plain
    /// product copies no input chunk: it holds the chunks under its
    /// operands' tiles instead ([`multiplies_chunk_pairs`](Self::multiplies_chunk_pairs)).
    pub(super) fn task_bytes(&self, tiles: &BTreeMap<Label, u64>) -> u64 {
        let out_chunk = product(self.output_chunks.iter().copied());
        let load = self
            .inputs
            .iter()
            .map(|o| o.chunk_load_bytes)
            .max()
            .unwrap_or(0);
        let (_, chunk_reads) = self.reads(tiles);
        let tasks = self.tile_counts(tiles, &self.output);
        let plan = MODEL.plan_bytes(chunk_reads, tasks);
        let inputs_held = if self.multiplies_chunk_pairs() {
            (0..2).map(|k| self.chunks_beyond_tile(tiles, k)).sum()
        } else {
            self.largest_input_chunk().saturating_mul(2)
        };
        self.tile_elements(tiles)
            .saturating_add(out_chunk.saturating_mul(4))
            .saturating_mul(self.itemsize)
            .saturating_add(inputs_held)
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

    /// Bytes of buffers large enough to be fresh mappings, over all tasks
    /// (the page-fault model of [`CostModel::faulted_bytes`]):
    /// each task's output tile (and its permuted copy), and at every step
    /// along the contracted indices each operand's assembled and packed
    /// tiles (none in a plain product: see
    /// [`multiplies_chunk_pairs`](Self::multiplies_chunk_pairs)).
    fn fresh_mapping_bytes(&self, tiles: &BTreeMap<Label, u64>, tasks: u64) -> f64 {
        let fresh = |elements: u64| MODEL.faulted_bytes(elements.saturating_mul(self.itemsize));
        let count = |group: &[Label]| self.tile_counts(tiles, group);
        let out = product(self.output.iter().map(|l| self.tile(tiles, l)));
        let permute = self.inputs.len() == 2 && self.natural_order() != self.output;
        let mut per_task = fresh(out) * if permute { 2.0 } else { 1.0 };
        let steps = count(&self.contracted) as f64;
        for k in 0..self.assembled_operands() {
            let block = fresh(self.operand_tile_elements(tiles, k));
            let packed = self.packed_elements(tiles, k).map_or(0.0, fresh);
            per_task += steps * (block * count(&self.summed[k]) as f64 + packed);
        }
        per_task * tasks as f64
    }

    pub(super) fn estimate(&self, tiles: &BTreeMap<Label, u64>) -> StepCost {
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
        for (k, op) in self
            .inputs
            .iter()
            .enumerate()
            .take(self.assembled_operands())
        {
            let times = self.times_read(tiles, k);
            let copies = if self.layouts[k] == OperandLayout::Packed {
                2.0
            } else {
                1.0
            };
            copied += (op.elements() as f64) * (self.itemsize as f64) * (times as f64) * copies;
        }
        let bytes_written = product(self.output_shape()).saturating_mul(self.itemsize);
        let gemm_calls = if self.multiplies_chunk_pairs() {
            // One call per pair of chunks, whatever the tiles.
            product(
                [&self.left, &self.contracted, &self.right]
                    .into_iter()
                    .flatten()
                    .map(|l| self.sizes[l].div_ceil(self.smallest_chunk(l))),
            )
        } else if self.inputs.len() == 2 {
            product([
                product(self.batch.iter().map(|l| self.sizes[l])),
                count(&self.left),
                count(&self.right),
                count(&self.contracted),
            ])
        } else {
            tasks.saturating_mul(count(&self.summed[0]))
        };
        let seconds = MODEL.seconds(&StepWork {
            flops,
            faulted_bytes: self.fresh_mapping_bytes(tiles, tasks),
            bytes_read,
            bytes_written,
            copied_bytes: copied,
            chunk_reads,
            gemm_calls,
            tasks,
        });
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

/// The product of `values`, saturating at `u64::MAX` (an outer product of
/// large operands must give a huge size, not wrap).
pub(super) fn product(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(1u64, u64::saturating_mul)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::plan) fn op(labels: &str, shape: &[u64], chunks: &[u64]) -> StepOperand {
        StepOperand {
            labels: labels.chars().map(|c| Some(Label::Letter(c))).collect(),
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            chunk_load_bytes: 2 * chunks.iter().product::<u64>() * 8,
        }
    }

    pub(in crate::plan) fn labels(s: &str) -> Vec<Label> {
        s.chars().map(Label::Letter).collect()
    }

    pub(in crate::plan) fn sizes(pairs: &[(char, u64)]) -> BTreeMap<Label, u64> {
        pairs.iter().map(|&(c, s)| (Label::Letter(c), s)).collect()
    }

    /// `ij,jk->ik` on `n`² operands in 1024² chunks under `limit`.
    pub(in crate::plan) fn matmul(n: u64, limit: u64) -> ContractionStep {
        ContractionStep::plan(
            vec![
                op("ij", &[n, n], &[1024, 1024]),
                op("jk", &[n, n], &[1024, 1024]),
            ],
            labels("ik"),
            &sizes(&[('i', n), ('j', n), ('k', n)]),
            &TilingParams::new(8, limit).with_target_chunk_bytes(8 << 20),
        )
    }

    #[test]
    fn plain_products_budget_the_chunks_they_hold_and_no_copies() {
        let step = matmul(8192, 256 << 20);
        assert!(step.multiplies_chunk_pairs());
        // Tiles of whole chunks hold no chunk beyond them, and nothing is
        // copied: 256 MiB takes output tiles of 2048 x 1024, each operand
        // read 4 or 8 times (1024² tiles, counting a copied chunk, read
        // both 8 times).
        let t = sizes(&[('i', 2048), ('j', 1024), ('k', 1024)]);
        assert_eq!(step.chunks_beyond_tile(&t, 0), 0);
        assert_eq!(step.chunks_beyond_tile(&t, 1), 0);
        assert_eq!(step.tiles, t, "{step}");
        assert_eq!(step.cost.bytes_read, 6 << 30);
        // A tile cutting chunks holds the chunks it cuts: `j` tiles of 1024
        // over chunks of 1536 span up to two of them.
        let cut = ContractionStep::plan(
            vec![
                op("ij", &[4096, 6144], &[1024, 1024]),
                op("jk", &[6144, 4096], &[1536, 1024]),
            ],
            labels("ik"),
            &sizes(&[('i', 4096), ('j', 6144), ('k', 4096)]),
            &TilingParams::new(8, 1 << 30),
        );
        let t = sizes(&[('i', 1024), ('j', 1024), ('k', 1024)]);
        assert_eq!(cut.chunks_beyond_tile(&t, 0), 0);
        assert_eq!(cut.chunks_beyond_tile(&t, 1), (3072 - 1024) * 1024 * 8);
    }

    #[test]
    fn plain_products_keep_many_tasks_and_the_contracted_tile_small() {
        // One GEMM call per chunk pair whatever the tiles: the contracted
        // tile stays one chunk (its chunks need not all be loaded before
        // the first call), and the output tiles stop growing while tasks
        // are few enough to leave a worker idle at the end.
        for (n, limit, tasks) in [(8192, 1 << 30, 16), (16384, 1 << 30, 16)] {
            let step = matmul(n, limit);
            assert_eq!(step.tiles[&Label::Letter('j')], 1024, "{step}");
            assert_eq!(step.cost.tasks, tasks, "{step}");
        }
    }

    #[test]
    fn classifies_indices_and_layouts() {
        let step = ContractionStep::plan(
            vec![
                op("bji", &[4, 5, 6], &[2, 5, 6]),
                op("bjk", &[4, 5, 7], &[4, 5, 7]),
            ],
            labels("bik"),
            &sizes(&[('b', 4), ('i', 6), ('j', 5), ('k', 7)]),
            &TilingParams::new(8, 1 << 20).with_target_chunk_bytes(1 << 20),
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
            &sizes(&[('i', 4), ('j', 5), ('k', 6), ('l', 3)]),
            &TilingParams::new(8, 1 << 20).with_target_chunk_bytes(1 << 20),
        );
        assert_eq!(summing.summed[0], labels("k"));
        assert_eq!(summing.layouts[0], OperandLayout::Packed);
        // The contracted index between two kept ones: sliced, not packed.
        let ttm = ContractionStep::plan(
            vec![
                op("ijk", &[4, 5, 6], &[4, 5, 6]),
                op("jl", &[5, 3], &[5, 3]),
            ],
            labels("ilk"),
            &sizes(&[('i', 4), ('j', 5), ('k', 6), ('l', 3)]),
            &TilingParams::new(8, 1 << 20).with_target_chunk_bytes(1 << 20),
        );
        assert_eq!(
            ttm.layouts,
            vec![
                OperandLayout::Slices {
                    lead: 1,
                    swapped: true
                },
                OperandLayout::Direct
            ]
        );
        assert_eq!(ttm.natural_order(), labels("ilk"));
        assert_eq!(
            natural_output(&labels("ijk"), &labels("jl"), &labels("lk")),
            labels("kl")
        );
    }
}
