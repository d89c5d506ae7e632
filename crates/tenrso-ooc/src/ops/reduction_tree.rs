//! [`ReductionTree`]: partials combined in a tree of fixed fan-in laid over
//! their order, whatever order they arrive in.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How many partials one node of a [`ReductionTree`] combines.
pub(crate) const FAN_IN: u64 = 64;

/// Partials `0..count` combined [`FAN_IN`] at a time, level by level, into
/// one: node `g` of a level combines partials `g × FAN_IN ..` of the level
/// below, in order. The tree is fixed by `count` alone, so the result is
/// bitwise the same whatever order (thread, timing) the partials come in;
/// and a node is combined as soon as its last child arrives, so the tree
/// holds only the nodes still waiting for children: with tasks taken in
/// order, `O(FAN_IN × depth)` partials, never one per chunk.
pub(crate) struct ReductionTree<P> {
    count: u64,
    combine: fn(&[P]) -> P,
    state: Mutex<TreeState<P>>,
}

struct TreeState<P> {
    /// Per level, the nodes with some children arrived: their slots.
    open: Vec<BTreeMap<u64, Vec<Option<P>>>>,
    root: Option<P>,
}

impl<P: Clone> ReductionTree<P> {
    /// A tree over `count` partials, whose nodes apply `combine` to their
    /// children in order.
    pub(crate) fn new(count: u64, combine: fn(&[P]) -> P) -> Self {
        Self {
            count,
            combine,
            state: Mutex::new(TreeState {
                open: Vec::new(),
                root: None,
            }),
        }
    }

    /// Number of partials the tree combines.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Adds partial `index` (each index once).
    pub(crate) fn add(&self, index: u64, partial: P) {
        self.add_at(0, index, partial);
    }

    /// Adds node `index` of tree level `level` (a level-0 node is a
    /// partial), combined elsewhere from the same children as here: how
    /// the [`frontier`](Self::frontier) of a tree over a run of the
    /// partials joins this one.
    pub(crate) fn add_at(&self, level: usize, index: u64, partial: P) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut width = self.count;
        for _ in 0..level {
            width = width.div_ceil(FAN_IN);
        }
        let (mut level, mut index, mut partial) = (level, index, partial);
        loop {
            if width <= 1 {
                state.root = Some(partial);
                return;
            }
            if state.open.len() <= level {
                state.open.resize_with(level + 1, BTreeMap::new);
            }
            let node = index / FAN_IN;
            let children = FAN_IN.min(width - node * FAN_IN) as usize;
            let slots = state.open[level]
                .entry(node)
                .or_insert_with(|| vec![None; children]);
            slots[(index % FAN_IN) as usize] = Some(partial);
            if slots.iter().any(Option::is_none) {
                return;
            }
            let slots = state.open[level].remove(&node).unwrap_or_default();
            let children: Vec<P> = slots.into_iter().flatten().collect();
            partial = (self.combine)(&children);
            index = node;
            width = width.div_ceil(FAN_IN);
            level += 1;
        }
    }

    /// Every node held, as `(level, index, partial)`: for a tree given a
    /// contiguous run of the partials, the largest nodes combined from that
    /// run alone. Adding every rank's frontier with
    /// [`add_at`](Self::add_at) to a new tree gives the same root, bit for
    /// bit, as adding every partial to one.
    pub(crate) fn frontier(&self) -> Vec<(usize, u64, P)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut nodes = Vec::new();
        for (level, open) in state.open.iter().enumerate() {
            for (node, slots) in open {
                for (slot, p) in slots.iter().enumerate() {
                    if let Some(p) = p {
                        nodes.push((level, node * FAN_IN + slot as u64, p.clone()));
                    }
                }
            }
        }
        if let Some(root) = &state.root {
            let (mut level, mut width) = (0, self.count);
            while width > 1 {
                width = width.div_ceil(FAN_IN);
                level += 1;
            }
            nodes.push((level, 0, root.clone()));
        }
        nodes
    }

    /// The combination of every partial; `None` when some are missing (or
    /// there are none).
    pub(crate) fn finish(&self) -> Option<P> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.root.clone()
    }

    /// Partials and nodes held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .open
            .iter()
            .flat_map(|l| l.values())
            .map(Vec::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(xs: &[f64]) -> f64 {
        xs.iter().sum()
    }

    #[test]
    fn any_arrival_order_gives_the_same_bits() {
        for count in [1u64, 2, 63, 64, 65, 4095, 4097, 10_000] {
            let values: Vec<f64> = (0..count).map(|i| 1.0 / (i as f64 + 3.0)).collect();
            let in_order = ReductionTree::new(count, sum);
            for (i, v) in values.iter().enumerate() {
                in_order.add(i as u64, *v);
            }
            let shuffled = ReductionTree::new(count, sum);
            let mut order: Vec<u64> = (0..count).collect();
            // A fixed scramble: reversed pairs of blocks.
            order.reverse();
            order.chunks_mut(7).for_each(|c| c.rotate_left(3 % c.len()));
            for i in order {
                shuffled.add(i, values[i as usize]);
            }
            let a = in_order.finish().unwrap();
            let b = shuffled.finish().unwrap();
            assert_eq!(a.to_bits(), b.to_bits(), "count {count}");
            assert!((a - values.iter().sum::<f64>()).abs() < 1e-9);
        }
        assert!(ReductionTree::new(0, sum).finish().is_none());
    }

    #[test]
    fn frontiers_of_contiguous_runs_join_to_the_same_bits() {
        for count in [1u64, 5, 64, 65, 4097, 300_000] {
            let values: Vec<f64> = (0..count).map(|i| 1.0 / (i as f64 + 7.0)).collect();
            let whole = ReductionTree::new(count, sum);
            for (i, v) in values.iter().enumerate() {
                whole.add(i as u64, *v);
            }
            let expected = whole.finish().unwrap().to_bits();
            for ranks in [1u64, 2, 3, 4, 7] {
                let joined = ReductionTree::new(count, sum);
                for r in 0..ranks {
                    let part = ReductionTree::new(count, sum);
                    for i in count * r / ranks..count * (r + 1) / ranks {
                        part.add(i, values[i as usize]);
                    }
                    let frontier = part.frontier();
                    assert!(frontier.len() <= 2 * 4 * FAN_IN as usize);
                    for (level, index, p) in frontier {
                        joined.add_at(level, index, p);
                    }
                }
                let got = joined.finish().unwrap().to_bits();
                assert_eq!(got, expected, "count {count}, {ranks} ranks");
            }
        }
    }

    #[test]
    fn in_order_arrivals_hold_one_path_of_nodes() {
        let count = 1_000_000u64;
        let tree = ReductionTree::new(count, sum);
        let mut most = 0;
        for i in 0..count {
            tree.add(i, 1.0);
            if i % 997 == 0 {
                most = most.max(tree.held());
            }
        }
        assert_eq!(tree.finish(), Some(count as f64));
        // Four levels of at most 64 slots each.
        assert!(most <= 4 * FAN_IN as usize, "{most}");
    }
}
