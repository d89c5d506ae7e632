//! [`AccessPredictor`]: guesses the next regions of an unplanned access
//! pattern (a slicing loop, a sliding window, a repeated scan) from the
//! regions read so far.

use std::collections::HashMap;

use crate::core::Region;

/// How the predictor found its guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// The last reads moved by one constant step (sequential or strided,
    /// along any axes): the next moves by the same step.
    Stride,
    /// The last region was read before: what followed it then follows again
    /// (a repeated scan, a loop over the same tiles).
    Repeat,
}

/// Predicts the next regions read from the regions read so far.
///
/// It looks for a constant step between the last three reads (same shape,
/// same non-zero offset), and otherwise for the region that followed the
/// last one the previous time it was read. Random access gives no
/// prediction. It counts its predictions of the very next read and how
/// many came true.
///
/// ```
/// use tenrso_ooc::Region;
/// use tenrso_ooc::memory::{AccessPredictor, Pattern};
/// let mut p = AccessPredictor::new(vec![100, 8]);
/// for i in 0..3 {
///     p.observe(&Region::new(vec![10 * i, 0], vec![10, 8]));
/// }
/// let (pattern, next) = p.predict(2).unwrap();
/// assert_eq!(pattern, Pattern::Stride);
/// assert_eq!(next, vec![Region::new(vec![30, 0], vec![10, 8]), Region::new(vec![40, 0], vec![10, 8])]);
/// ```
#[derive(Debug, Clone)]
pub struct AccessPredictor {
    shape: Vec<u64>,
    /// The last three regions read, oldest first.
    recent: Vec<Region>,
    /// For each region read, the one read after it (last time).
    successor: HashMap<Region, Region>,
    /// The guess made for the next read, to score it.
    pending: Option<Region>,
    predictions: u64,
    correct: u64,
}

/// Most regions the successor table remembers.
const SUCCESSORS_KEPT: usize = 1 << 16;

impl AccessPredictor {
    /// A predictor for reads of an array of `shape`.
    pub fn new(shape: Vec<u64>) -> Self {
        Self {
            shape,
            recent: Vec::with_capacity(3),
            successor: HashMap::new(),
            pending: None,
            predictions: 0,
            correct: 0,
        }
    }

    /// Records a read of `region`.
    pub fn observe(&mut self, region: &Region) {
        if let Some(guess) = self.pending.take() {
            self.predictions += 1;
            if guess == *region {
                self.correct += 1;
            }
        }
        if let Some(last) = self.recent.last() {
            if self.successor.len() >= SUCCESSORS_KEPT {
                self.successor.clear();
            }
            self.successor.insert(last.clone(), region.clone());
        }
        if self.recent.len() == 3 {
            self.recent.remove(0);
        }
        self.recent.push(region.clone());
        self.pending = self.predict(1).and_then(|(_, mut next)| next.pop());
    }

    /// The next `depth` regions expected (fewer at the array's edge), and
    /// how they were found; `None` when no pattern is seen.
    pub fn predict(&self, depth: usize) -> Option<(Pattern, Vec<Region>)> {
        if let Some(step) = self.stride() {
            let last = self.recent.last()?;
            let mut next = Vec::new();
            let mut start: Vec<i64> = last.start().iter().map(|s| *s as i64).collect();
            for _ in 0..depth {
                for (s, d) in start.iter_mut().zip(&step) {
                    *s += d;
                }
                let fits = start
                    .iter()
                    .zip(last.shape())
                    .zip(&self.shape)
                    .all(|((s, n), extent)| *s >= 0 && (*s as u64) + n <= *extent);
                if !fits {
                    break;
                }
                next.push(Region::new(
                    start.iter().map(|s| *s as u64).collect::<Vec<_>>(),
                    last.shape().to_vec(),
                ));
            }
            return (!next.is_empty()).then_some((Pattern::Stride, next));
        }
        let mut next = Vec::new();
        let mut at = self.recent.last()?;
        for _ in 0..depth {
            match self.successor.get(at) {
                Some(following) => {
                    next.push(following.clone());
                    at = following;
                }
                None => break,
            }
        }
        (!next.is_empty()).then_some((Pattern::Repeat, next))
    }

    /// The constant step of the last three reads, if there is one.
    fn stride(&self) -> Option<Vec<i64>> {
        let [a, b, c] = self.recent.as_slice() else {
            return None;
        };
        if a.shape() != b.shape() || b.shape() != c.shape() {
            return None;
        }
        let delta = |x: &Region, y: &Region| -> Vec<i64> {
            x.start()
                .iter()
                .zip(y.start())
                .map(|(p, q)| *q as i64 - *p as i64)
                .collect()
        };
        let step = delta(a, b);
        (step == delta(b, c) && step.iter().any(|d| *d != 0)).then_some(step)
    }

    /// Predictions of the next read made so far, and how many came true.
    pub fn accuracy(&self) -> (u64, u64) {
        (self.predictions, self.correct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: &[u64], shape: &[u64]) -> Region {
        Region::new(start.to_vec(), shape.to_vec())
    }

    #[test]
    fn a_strided_walk_is_predicted_after_three_reads() {
        let mut p = AccessPredictor::new(vec![64, 64]);
        // Tiles down the diagonal, step (8, 8).
        for i in 0..8 {
            p.observe(&r(&[8 * i, 8 * i], &[8, 8]));
        }
        // Three reads to learn the step, then every guess is right: reads
        // 4 to 8 were predicted.
        assert_eq!(p.accuracy(), (5, 5));
        // At the edge: nothing beyond the array.
        assert_eq!(p.predict(3), None);
    }

    #[test]
    fn a_repeated_scan_is_predicted_from_the_last_pass() {
        let mut p = AccessPredictor::new(vec![40, 4]);
        let tiles = [0u64, 30, 10, 20];
        for _pass in 0..3 {
            for t in tiles {
                p.observe(&r(&[t, 0], &[10, 4]));
            }
        }
        let (predictions, correct) = p.accuracy();
        // The first pass teaches; the later ones are predicted.
        assert!(correct >= 7, "{correct} of {predictions}");
        let (pattern, next) = p.predict(2).unwrap();
        assert_eq!(pattern, Pattern::Repeat);
        assert_eq!(next, vec![r(&[0, 0], &[10, 4]), r(&[30, 0], &[10, 4])]);
    }

    #[test]
    fn random_reads_rarely_predict() {
        let mut p = AccessPredictor::new(vec![1000, 1]);
        let mut x = 7u64;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            p.observe(&r(&[(x >> 33) % 990, 0], &[10, 1]));
        }
        let (predictions, correct) = p.accuracy();
        assert!(
            correct * 10 <= predictions.max(1),
            "{correct} of {predictions}"
        );
    }
}
