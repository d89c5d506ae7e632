//! [`ChunkSet`]: which chunks of a grid hold data, in memory that grows with
//! the stored chunks, never with the grid.

/// A set of chunks of a grid, by linear index: the chunks an array stores
/// (the others are its fill value).
///
/// Held as nothing when every chunk is in it, as a sorted list while few
/// are, and as a bitmap with rank counts once a list would be larger: at
/// most `min(8 × stored, grid / 8)` bytes and a little more. A store that
/// declares 10¹¹ chunks and holds four takes 32 bytes.
///
/// ```
/// use tenrso_ooc::ChunkSet;
/// let mut set = ChunkSet::builder(1_000_000_000_000);
/// for index in [7, 3, 999_999_999_999] {
///     set.insert(index);
/// }
/// let set = set.finish();
/// assert_eq!(set.len(), 3);
/// assert_eq!(set.nth(1), Some(7));
/// assert!(set.contains(3) && !set.contains(4));
/// assert!(set.heap_bytes() < 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSet {
    universe: u64,
    repr: Repr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// Every chunk.
    All,
    /// Sorted, distinct indices.
    Sorted(Vec<u64>),
    /// One bit per chunk; `ranks[b]` counts the bits set before word
    /// `b × RANK_WORDS`.
    Bitmap {
        words: Vec<u64>,
        ranks: Vec<u64>,
        len: u64,
    },
}

/// Words of bitmap between two rank counts.
const RANK_WORDS: usize = 8;

impl ChunkSet {
    /// Every chunk of a grid of `universe` chunks.
    pub fn all(universe: u64) -> Self {
        Self {
            universe,
            repr: Repr::All,
        }
    }

    /// A builder of a set of chunks of a grid of `universe` chunks.
    pub fn builder(universe: u64) -> ChunkSetBuilder {
        ChunkSetBuilder {
            universe,
            indices: Vec::new(),
            bitmap: None,
        }
    }

    /// Chunks of the grid.
    pub fn universe(&self) -> u64 {
        self.universe
    }

    /// Chunks in the set.
    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::All => self.universe,
            Repr::Sorted(v) => v.len() as u64,
            Repr::Bitmap { len, .. } => *len,
        }
    }

    /// True when no chunk is in the set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every chunk of the grid is in the set.
    pub fn is_all(&self) -> bool {
        self.len() == self.universe
    }

    /// Chunks of the grid not in the set.
    pub fn absent(&self) -> u64 {
        self.universe - self.len()
    }

    /// Whether chunk `index` is in the set.
    pub fn contains(&self, index: u64) -> bool {
        match &self.repr {
            Repr::All => index < self.universe,
            Repr::Sorted(v) => v.binary_search(&index).is_ok(),
            Repr::Bitmap { words, .. } => words
                .get((index / 64) as usize)
                .is_some_and(|w| w >> (index % 64) & 1 == 1),
        }
    }

    /// The `k`-th chunk of the set in grid order (from 0).
    pub fn nth(&self, k: u64) -> Option<u64> {
        if k >= self.len() {
            return None;
        }
        match &self.repr {
            Repr::All => Some(k),
            Repr::Sorted(v) => Some(v[k as usize]),
            Repr::Bitmap { words, ranks, .. } => {
                let block = ranks.partition_point(|r| *r <= k) - 1;
                let mut left = k - ranks[block];
                for (w, &word) in words.iter().enumerate().skip(block * RANK_WORDS) {
                    let ones = u64::from(word.count_ones());
                    if left < ones {
                        let mut word = word;
                        for _ in 0..left {
                            word &= word - 1;
                        }
                        return Some(w as u64 * 64 + u64::from(word.trailing_zeros()));
                    }
                    left -= ones;
                }
                None
            }
        }
    }

    /// The chunks in the set, in grid order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).filter_map(|k| self.nth(k))
    }

    /// The chunks in either set (of grids of the same size).
    pub fn union(&self, other: &ChunkSet) -> ChunkSet {
        if self.is_all() || other.is_empty() {
            return self.clone();
        }
        if other.is_all() || self.is_empty() {
            return other.clone();
        }
        let mut both = ChunkSet::builder(self.universe.max(other.universe));
        self.iter().chain(other.iter()).for_each(|i| both.insert(i));
        both.finish()
    }

    /// Bytes the set holds on the heap.
    pub fn heap_bytes(&self) -> u64 {
        (match &self.repr {
            Repr::All => 0,
            Repr::Sorted(v) => v.capacity() * 8,
            Repr::Bitmap { words, ranks, .. } => (words.capacity() + ranks.capacity()) * 8,
        }) as u64
    }
}

/// Collects the chunks of a [`ChunkSet`] in any order (see
/// [`ChunkSet::builder`]).
#[derive(Debug)]
pub struct ChunkSetBuilder {
    universe: u64,
    indices: Vec<u64>,
    bitmap: Option<Vec<u64>>,
}

impl ChunkSetBuilder {
    /// Adds chunk `index` (ignored outside the grid; repeats are kept once).
    pub fn insert(&mut self, index: u64) {
        if index >= self.universe {
            return;
        }
        if let Some(words) = &mut self.bitmap {
            words[(index / 64) as usize] |= 1 << (index % 64);
            return;
        }
        self.indices.push(index);
        // A list longer than the bitmap (8 bytes per entry against one bit
        // per chunk) becomes the bitmap.
        if self.indices.len() as u64 > self.universe / 64 + 1 {
            let mut words = vec![0u64; self.universe.div_ceil(64) as usize];
            for i in self.indices.drain(..) {
                words[(i / 64) as usize] |= 1 << (i % 64);
            }
            self.indices = Vec::new();
            self.bitmap = Some(words);
        }
    }

    /// The set.
    pub fn finish(mut self) -> ChunkSet {
        let universe = self.universe;
        let repr = match self.bitmap.take() {
            Some(words) => {
                let mut ranks = Vec::with_capacity(words.len().div_ceil(RANK_WORDS));
                let mut len = 0u64;
                for (w, word) in words.iter().enumerate() {
                    if w % RANK_WORDS == 0 {
                        ranks.push(len);
                    }
                    len += u64::from(word.count_ones());
                }
                if len == universe {
                    Repr::All
                } else {
                    Repr::Bitmap { words, ranks, len }
                }
            }
            None => {
                self.indices.sort_unstable();
                self.indices.dedup();
                if self.indices.len() as u64 == universe {
                    Repr::All
                } else {
                    self.indices.shrink_to_fit();
                    Repr::Sorted(self.indices)
                }
            }
        };
        ChunkSet { universe, repr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_representation_agrees_with_a_sorted_list(
            universe in 1u64..3000,
            picks in proptest::collection::vec(0u64..3000, 0..400),
        ) {
            let mut builder = ChunkSet::builder(universe);
            for p in &picks {
                builder.insert(*p);
            }
            let set = builder.finish();
            let mut want: Vec<u64> = picks.iter().copied().filter(|p| *p < universe).collect();
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(set.len(), want.len() as u64);
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), want.clone());
            for i in 0..universe {
                prop_assert_eq!(set.contains(i), want.binary_search(&i).is_ok());
            }
            prop_assert_eq!(set.nth(want.len() as u64), None);
            // A list while it is smaller than the bitmap, then the bitmap
            // with its rank counts: 1.125 bits per chunk, rounded to words.
            let bitmap = (universe.div_ceil(64) + universe.div_ceil(512)) * 8;
            prop_assert!(set.heap_bytes() <= (8 * want.len() as u64).max(bitmap) + 8);
        }
    }

    #[test]
    fn dense_sets_are_bitmaps_and_full_sets_take_nothing() {
        let mut dense = ChunkSet::builder(1 << 20);
        for i in (0..1 << 20).step_by(2) {
            dense.insert(i);
        }
        let dense = dense.finish();
        assert!(matches!(dense.repr, Repr::Bitmap { .. }));
        assert_eq!(dense.nth(1000), Some(2000));
        assert!(dense.heap_bytes() < (1 << 20) / 8 * 2);
        let mut full = ChunkSet::builder(100);
        (0..100).rev().for_each(|i| full.insert(i));
        let full = full.finish();
        assert!(full.is_all());
        assert_eq!(full.heap_bytes(), 0);
        assert_eq!(ChunkSet::all(5).absent(), 0);
    }
}
