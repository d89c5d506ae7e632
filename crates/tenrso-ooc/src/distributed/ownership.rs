//! [`Ownership`]: the static rule that gives each task of a graph to one
//! rank.

use std::collections::HashSet;
use std::ops::Range;

use crate::plan::ChunkGraph;

/// How a graph's tasks are shared among ranks. Every rank computes the same
/// answer from the graph alone, so no rank tells another what to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Ownership {
    /// Each stage's tasks in contiguous runs, one per rank, balanced by
    /// their modelled work (by count for a streamed graph, whose tasks are
    /// alike): contiguous runs read neighbouring chunks.
    #[default]
    Balanced,
    /// The output tiles of a product laid on a grid of ranks, as in SUMMA:
    /// the rank in row `p`, column `q` owns the tiles of row block `p` and
    /// column block `q`, so it reads one row block of the left operand and
    /// one column block of the right one.
    Tiles(TileSplit),
}

/// The layout of a product's output tiles for [`Ownership::Tiles`]: which
/// axes of the written chunk grid index rows (the left operand's free
/// indices) and columns (the right one's), and each operand's bytes (which
/// choose the shape of the rank grid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSplit {
    /// Axes of the output tile grid from the left operand.
    pub row_axes: Vec<usize>,
    /// Axes of the output tile grid from the right operand.
    pub col_axes: Vec<usize>,
    /// Bytes of the left operand.
    pub row_bytes: u64,
    /// Bytes of the right operand.
    pub col_bytes: u64,
}

impl TileSplit {
    /// The rank grid (`rows × cols = ranks`) reading the least, with no
    /// more rank rows than tile rows nor rank columns than tile columns;
    /// `None` when no factorisation fits.
    pub fn rank_grid(&self, ranks: usize, tile_rows: u64, tile_cols: u64) -> Option<(u64, u64)> {
        let n = ranks as u64;
        (1..=n)
            .filter(|p| n.is_multiple_of(*p))
            .map(|p| (p, n / p))
            .filter(|&(p, q)| p <= tile_rows && q <= tile_cols)
            .min_by(|a, b| {
                let cost = |(p, q): (u64, u64)| {
                    self.row_bytes as f64 / p as f64 + self.col_bytes as f64 / q as f64
                };
                cost(*a).total_cmp(&cost(*b))
            })
    }
}

/// The tasks of one stage a rank owns, in task order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedTasks {
    /// A contiguous run of task indices.
    Range(Range<u64>),
    /// Task indices, ascending.
    List(Vec<u64>),
}

impl OwnedTasks {
    /// Number of tasks.
    pub fn len(&self) -> u64 {
        match self {
            Self::Range(r) => r.end - r.start,
            Self::List(l) => l.len() as u64,
        }
    }

    /// True when the rank owns none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `position`-th task owned (below [`len`](Self::len)).
    pub fn get(&self, position: u64) -> u64 {
        match self {
            Self::Range(r) => r.start + position,
            Self::List(l) => l[position as usize],
        }
    }

    /// The task indices owned.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).map(|p| self.get(p))
    }
}

impl Ownership {
    /// The tasks of `stage` (a range of `graph`'s task indices) that `rank`
    /// of `size` owns.
    ///
    /// ```
    /// use tenrso_ooc::DType;
    /// use tenrso_ooc::distributed::{OwnedTasks, Ownership};
    /// use tenrso_ooc::plan::{ChunkGraph, TaskNode};
    /// let mut graph = ChunkGraph::new("four tasks", DType::F64);
    /// graph.tasks = vec![TaskNode { work_bytes: 1, ..TaskNode::default() }; 4];
    /// let split = |rank| Ownership::Balanced.owned(&graph, 0..4, rank, 3);
    /// assert_eq!(split(0), OwnedTasks::Range(0..1));
    /// assert_eq!(split(2), OwnedTasks::Range(2..4));
    /// ```
    pub fn owned(
        &self,
        graph: &ChunkGraph,
        stage: Range<u64>,
        rank: usize,
        size: usize,
    ) -> OwnedTasks {
        if size <= 1 {
            return OwnedTasks::Range(stage);
        }
        match self {
            Self::Tiles(split) => match tiles_owned(graph, split, &stage, rank, size) {
                Some(list) => OwnedTasks::List(list),
                None => balanced(graph, stage, rank, size),
            },
            Self::Balanced => balanced(graph, stage, rank, size),
        }
    }
}

/// `rank`'s contiguous run of `count` alike tasks shared among `size`
/// ranks by count: rank `k` starts at `count·k/size`.
///
/// ```
/// use tenrso_ooc::distributed::contiguous_share;
/// assert_eq!(contiguous_share(10, 0, 3), 0..3);
/// assert_eq!(contiguous_share(10, 2, 3), 6..10);
/// ```
pub fn contiguous_share(count: u64, rank: usize, size: usize) -> Range<u64> {
    let (count, n) = (count as u128, size.max(1) as u128);
    let at = |k: u128| (count * k / n) as u64;
    at(rank as u128)..at(rank as u128 + 1)
}

/// Contiguous runs balanced by work (by count when streamed).
fn balanced(graph: &ChunkGraph, stage: Range<u64>, rank: usize, size: usize) -> OwnedTasks {
    if graph.stream.is_some() {
        let share = contiguous_share(stage.end - stage.start, rank, size);
        return OwnedTasks::Range(stage.start + share.start..stage.start + share.end);
    }
    let n = size as u128;
    let r = rank as u128;
    // Rank k starts at the first task whose work before it reaches k/n of
    // the stage's work.
    let tasks = &graph.tasks[stage.start as usize..stage.end as usize];
    let total: u128 = tasks.iter().map(|t| t.work_bytes.max(1) as u128).sum();
    let boundary = |k: u128| -> u64 {
        if k == 0 {
            return stage.start;
        }
        if k >= n {
            return stage.end;
        }
        let target = total * k / n;
        let mut before = 0u128;
        for (i, t) in tasks.iter().enumerate() {
            if before >= target {
                return stage.start + i as u64;
            }
            before += t.work_bytes.max(1) as u128;
        }
        stage.end
    };
    OwnedTasks::Range(boundary(r)..boundary(r + 1))
}

/// Tasks of `stage` whose written tile falls in `rank`'s block of the rank
/// grid; `None` when the graph's tasks do not write tiles of one array or
/// no grid fits.
fn tiles_owned(
    graph: &ChunkGraph,
    split: &TileSplit,
    stage: &Range<u64>,
    rank: usize,
    size: usize,
) -> Option<Vec<u64>> {
    let first = graph.task(stage.start).write?;
    let grid = graph.arrays[first.array as usize]
        .grid
        .grid_shape()
        .to_vec();
    let extent = |axes: &[usize]| axes.iter().map(|&a| grid[a]).product::<u64>();
    let (rows, cols) = (extent(&split.row_axes), extent(&split.col_axes));
    let (pr, pc) = split.rank_grid(size, rows, cols)?;
    let linear =
        |coords: &[u64], axes: &[usize]| axes.iter().fold(0u64, |at, &a| at * grid[a] + coords[a]);
    let mut owned = Vec::new();
    for index in stage.clone() {
        let key = graph.task(index).write?;
        if key.array != first.array {
            return None;
        }
        let coords = graph.coords(key);
        let (row, col) = (
            linear(&coords, &split.row_axes),
            linear(&coords, &split.col_axes),
        );
        let owner = (row * pr / rows) * pc + col * pc / cols;
        if owner == rank as u64 {
            owned.push(index);
        }
    }
    Some(owned)
}

/// What one rank does of a plan, as [`shares`] predicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankShare {
    /// The rank.
    pub rank: usize,
    /// Tasks it owns.
    pub tasks: u64,
    /// Bytes of distinct stored chunks its tasks read (each once; a
    /// streamed graph's share of its bytes, by task count).
    pub bytes_read: u64,
}

/// The ranges of task indices of each stage of `graph`.
pub(crate) fn stage_ranges(graph: &ChunkGraph) -> Vec<Range<u64>> {
    let count = graph.task_count();
    if graph.stream.is_some() {
        return std::iter::once(0..count)
            .filter(|r| !r.is_empty())
            .collect();
    }
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for (i, t) in graph.tasks.iter().enumerate() {
        match ranges.last_mut() {
            Some(r) if graph.tasks[r.start as usize].stage == t.stage => r.end = i as u64 + 1,
            _ => ranges.push(i as u64..i as u64 + 1),
        }
    }
    ranges
}

/// Each rank's share of `graph` run by `size` ranks: its tasks and the
/// stored chunks they read — the read volume of the ownership rule (for a
/// product on a rank grid, a row block of one operand and a column block
/// of the other).
pub fn shares(graph: &ChunkGraph, size: usize) -> Vec<RankShare> {
    let stages = stage_ranges(graph);
    (0..size.max(1))
        .map(|rank| {
            let owned: Vec<OwnedTasks> = stages
                .iter()
                .map(|s| graph.ownership.owned(graph, s.clone(), rank, size))
                .collect();
            let tasks: u64 = owned.iter().map(OwnedTasks::len).sum();
            let bytes_read = match &graph.stream {
                Some(stream) => {
                    let count = stream.len().max(1) as u128;
                    (stream.totals().bytes_read as u128 * tasks as u128 / count) as u64
                }
                None => {
                    let mut seen = HashSet::new();
                    let mut bytes = 0;
                    for o in &owned {
                        for i in o.iter() {
                            let task = &graph.tasks[i as usize];
                            for key in task.reads.iter().chain(&task.streams) {
                                let stored = matches!(
                                    graph.arrays[key.array as usize].role,
                                    crate::plan::ArrayRole::Input(_)
                                );
                                if stored && seen.insert(*key) {
                                    bytes += graph.chunk_bytes(*key);
                                }
                            }
                        }
                    }
                    bytes
                }
            };
            RankShare {
                rank,
                tasks,
                bytes_read,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ChunkGrid, DType};
    use crate::memory::ChunkKey;
    use crate::plan::{ArrayRole, OutputArray, TaskNode};
    use crate::store::ArraySpec;
    use std::sync::Arc;

    /// A graph writing each tile of a `rows × cols` grid once, with uneven
    /// work.
    fn tiles(rows: u64, cols: u64) -> ChunkGraph {
        let mut graph = ChunkGraph::new("tiles", DType::F64);
        let spec = ArraySpec::new(vec![rows * 4, cols * 4], vec![4, 4], DType::F64);
        let out = Arc::new(OutputArray::new("/nonexistent", spec));
        let grid = ChunkGrid::new(vec![rows * 4, cols * 4], vec![4, 4]).unwrap();
        let id = graph.add_array("out", ArrayRole::Output(out), grid.clone());
        for (i, _) in grid.iter().enumerate() {
            graph.tasks.push(TaskNode {
                write: Some(ChunkKey::new(id, i as u64)),
                work_bytes: 1 + (i as u64 * 7) % 5,
                ..TaskNode::default()
            });
        }
        graph
    }

    /// Every task has exactly one owner, for any rule and rank count.
    #[test]
    fn every_task_has_one_owner() {
        for (rows, cols) in [(1, 1), (3, 5), (4, 4), (7, 2)] {
            let mut graph = tiles(rows, cols);
            for rule in [
                Ownership::Balanced,
                Ownership::Tiles(TileSplit {
                    row_axes: vec![0],
                    col_axes: vec![1],
                    row_bytes: 100,
                    col_bytes: 300,
                }),
            ] {
                graph.ownership = rule.clone();
                for size in 1..=6 {
                    let mut owners = vec![0u32; graph.tasks.len()];
                    for rank in 0..size {
                        for t in rule
                            .owned(&graph, 0..graph.tasks.len() as u64, rank, size)
                            .iter()
                        {
                            owners[t as usize] += 1;
                        }
                    }
                    assert!(
                        owners.iter().all(|&o| o == 1),
                        "{rule:?} {size} ranks: {owners:?}"
                    );
                    let shares = shares(&graph, size);
                    let total: u64 = shares.iter().map(|s| s.tasks).sum();
                    assert_eq!(total, graph.tasks.len() as u64);
                }
            }
        }
    }

    /// The grid of ranks follows the operands' sizes and never has more
    /// rows or columns than there are tiles.
    #[test]
    fn the_rank_grid_reads_least() {
        let split = |row_bytes, col_bytes| TileSplit {
            row_axes: vec![0],
            col_axes: vec![1],
            row_bytes,
            col_bytes,
        };
        assert_eq!(split(100, 100).rank_grid(4, 8, 8), Some((2, 2)));
        // A large left operand is split among more rank rows.
        assert_eq!(split(1000, 10).rank_grid(4, 8, 8), Some((4, 1)));
        assert_eq!(split(10, 1000).rank_grid(4, 8, 8), Some((1, 4)));
        // One tile column: every rank in one column.
        assert_eq!(split(10, 1000).rank_grid(3, 8, 1), Some((3, 1)));
        assert_eq!(split(1, 1).rank_grid(5, 2, 2), None);
    }
}
