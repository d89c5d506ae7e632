//! The tile search of a [`ContractionStep`]: candidate tile extents aligned
//! with the chunks, grown greedily while the modelled time falls and one
//! task fits its share of the memory limit.

use std::collections::BTreeMap;

use crate::plan::contraction_step::{ContractionStep, MODEL, StepCost};
use crate::plan::einsum_spec::Label;

impl ContractionStep {
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
    pub(super) fn choose_tiles(&mut self, memory_limit: u64) {
        let labels: Vec<Label> = self.sizes.keys().copied().collect();
        let candidates: BTreeMap<Label, Vec<u64>> =
            labels.iter().map(|&l| (l, self.candidates(l))).collect();
        let mut level: BTreeMap<Label, usize> = labels.iter().map(|&l| (l, 0)).collect();
        let tiles_at = |level: &BTreeMap<Label, usize>| -> BTreeMap<Label, u64> {
            level.iter().map(|(l, &i)| (*l, candidates[l][i])).collect()
        };
        let budget = MODEL.task_budget(memory_limit);
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
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    (a / gcd(a, b)).saturating_mul(b)
}

#[cfg(test)]
mod tests {
    use super::lcm;
    use crate::plan::OperandLayout;
    use crate::plan::contraction_step::tests::{labels, matmul};

    #[test]
    fn matmul_tiles_are_chunk_multiples_within_the_budget() {
        let n = 16384;
        let step = matmul(n, 1 << 30);
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
    fn lcm_saturates() {
        assert_eq!(lcm(4, 6), 12);
        assert_eq!(lcm(u64::MAX, u64::MAX - 1), u64::MAX);
    }
}
