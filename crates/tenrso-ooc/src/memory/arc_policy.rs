//! [`AdaptiveReplacement`]: the Adaptive Replacement Cache (ARC) policy of
//! Megiddo and Modha (2003).

use std::collections::BTreeMap;

use crate::memory::{ChunkKey, ChunkMap, EvictionPolicy};

/// Which of ARC's four lists a key is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    /// Cached, used once since it entered (recency).
    T1,
    /// Cached, used at least twice (frequency).
    T2,
    /// Evicted from T1: remembered, not cached.
    B1,
    /// Evicted from T2: remembered, not cached.
    B2,
}

/// Adaptive Replacement Cache: two LRU lists of cached chunks, those seen
/// once (T1) and those seen again (T2), and two ghost lists of chunks
/// recently evicted from each (B1, B2). A miss on a ghost of B1 says T1 was
/// too small and grows its target share `p`; a miss on a ghost of B2 shrinks
/// it. The victim is T1's least recent chunk while T1 exceeds its target,
/// else T2's.
///
/// The cache's capacity is counted in chunks: the number cached when the
/// cache first had to evict (chunks of one array have one size).
///
/// ```
/// use tenrso_ooc::memory::{ChunkKey, PolicyKind, simulate};
/// let k = |i| ChunkKey::new(0, i);
/// // A hot pair reused between one-off scans: ARC keeps the pair.
/// let mut trace = Vec::new();
/// for round in 0..20 {
///     trace.extend([k(0), k(1), k(0), k(1)]);
///     trace.extend((0..4).map(|i| k(100 + round * 4 + i)));
/// }
/// let arc = simulate(PolicyKind::Arc.build(&trace), &trace, 4);
/// let lru = simulate(PolicyKind::Lru.build(&trace), &trace, 4);
/// assert!(arc.hits > lru.hits);
/// ```
#[derive(Debug, Default)]
pub struct AdaptiveReplacement {
    clock: u64,
    /// Each remembered key: its list and the time of its last use.
    lists: ChunkMap<(List, u64)>,
    /// Ghosts of each ghost list by the time they were evicted, oldest first.
    b1: BTreeMap<u64, ChunkKey>,
    b2: BTreeMap<u64, ChunkKey>,
    t1_len: usize,
    t2_len: usize,
    /// Target size of T1, between 0 and the capacity.
    p: f64,
    /// Capacity in chunks, learned at the first eviction.
    capacity: usize,
    /// The key inserted last: its first access belongs to the insertion
    /// and does not promote it to T2.
    fresh: Option<ChunkKey>,
}

impl AdaptiveReplacement {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn set(&mut self, key: ChunkKey, list: List) {
        let now = self.tick();
        if let Some((old, stamp)) = self.lists.insert(key, (list, now)) {
            self.unlink(key, old, stamp);
        }
        match list {
            List::T1 => self.t1_len += 1,
            List::T2 => self.t2_len += 1,
            List::B1 => {
                self.b1.insert(now, key);
            }
            List::B2 => {
                self.b2.insert(now, key);
            }
        }
    }

    fn unlink(&mut self, key: ChunkKey, list: List, stamp: u64) {
        match list {
            List::T1 => self.t1_len -= 1,
            List::T2 => self.t2_len -= 1,
            List::B1 => {
                self.b1.remove(&stamp);
            }
            List::B2 => {
                self.b2.remove(&stamp);
            }
        }
        let _ = key;
    }

    /// Keeps the ghost lists within ARC's bounds: |T1| + |B1| ≤ c and the
    /// four lists together ≤ 2c.
    fn trim_ghosts(&mut self) {
        let c = self.capacity.max(1);
        while self.t1_len + self.b1.len() > c && self.drop_oldest(List::B1) {}
        while self.t1_len + self.t2_len + self.b1.len() + self.b2.len() > 2 * c
            && (self.drop_oldest(List::B2) || self.drop_oldest(List::B1))
        {}
    }

    fn drop_oldest(&mut self, list: List) -> bool {
        let ghosts = if list == List::B1 {
            &mut self.b1
        } else {
            &mut self.b2
        };
        match ghosts.pop_first() {
            Some((_, key)) => {
                self.lists.remove(&key);
                true
            }
            None => false,
        }
    }

    fn least_recent(&self, candidates: &[ChunkKey], list: List) -> Option<ChunkKey> {
        candidates
            .iter()
            .filter_map(|k| match self.lists.get(k) {
                Some(&(l, stamp)) if l == list => Some((stamp, *k)),
                _ => None,
            })
            .min()
            .map(|(_, k)| k)
    }
}

impl EvictionPolicy for AdaptiveReplacement {
    fn name(&self) -> &'static str {
        "arc"
    }

    fn on_insert(&mut self, key: ChunkKey) {
        let c = self.capacity.max(1) as f64;
        let (b1, b2) = (self.b1.len().max(1) as f64, self.b2.len().max(1) as f64);
        let list = match self.lists.get(&key).map(|(l, _)| *l) {
            Some(List::B1) => {
                self.p = (self.p + (b2 / b1).max(1.0)).min(c);
                List::T2
            }
            Some(List::B2) => {
                self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
                List::T2
            }
            Some(cached) => cached,
            None => List::T1,
        };
        self.set(key, list);
        self.fresh = Some(key);
        self.trim_ghosts();
    }

    fn on_access(&mut self, key: ChunkKey) {
        if self.fresh.take() == Some(key) {
            return;
        }
        match self.lists.get(&key).map(|(l, _)| *l) {
            Some(List::T1 | List::T2) => self.set(key, List::T2),
            // Accessed without being inserted (a cache that reports only
            // accesses): treat as an insertion.
            _ => {
                self.on_insert(key);
                self.fresh = None;
            }
        }
    }

    fn on_remove(&mut self, key: ChunkKey) {
        match self.lists.get(&key).map(|(l, _)| *l) {
            Some(List::T1) => self.set(key, List::B1),
            Some(List::T2) => self.set(key, List::B2),
            _ => {}
        }
        self.trim_ghosts();
    }

    fn victim(&mut self, candidates: &[ChunkKey]) -> Option<ChunkKey> {
        self.capacity = self.capacity.max(self.t1_len + self.t2_len);
        let from_t1 = self.least_recent(candidates, List::T1);
        let from_t2 = self.least_recent(candidates, List::T2);
        let prefer_t1 = self.t1_len > 0 && (self.t1_len as f64 > self.p || from_t2.is_none());
        let chosen = if prefer_t1 {
            from_t1.or(from_t2)
        } else {
            from_t2.or(from_t1)
        };
        // Keys the policy never saw (none in a well-behaved cache): any.
        chosen.or_else(|| candidates.iter().min().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u64) -> ChunkKey {
        ChunkKey::new(0, i)
    }

    fn load(arc: &mut AdaptiveReplacement, key: ChunkKey) {
        arc.on_insert(key);
        arc.on_access(key);
    }

    #[test]
    fn a_second_use_moves_a_chunk_from_recency_to_frequency() {
        let mut arc = AdaptiveReplacement::default();
        load(&mut arc, k(1));
        load(&mut arc, k(2));
        arc.on_access(k(1));
        assert_eq!(arc.lists[&k(1)].0, List::T2);
        assert_eq!(arc.lists[&k(2)].0, List::T1);
        // T1 exceeds its target (p = 0): its least recent chunk goes.
        assert_eq!(arc.victim(&[k(1), k(2)]), Some(k(2)));
    }

    #[test]
    fn a_ghost_hit_in_b1_grows_the_recency_target() {
        let mut arc = AdaptiveReplacement::default();
        load(&mut arc, k(1));
        load(&mut arc, k(2));
        assert_eq!(arc.victim(&[k(1), k(2)]), Some(k(1)));
        arc.on_remove(k(1));
        assert_eq!(arc.lists[&k(1)].0, List::B1);
        load(&mut arc, k(1));
        assert!(arc.p >= 1.0);
        assert_eq!(arc.lists[&k(1)].0, List::T2);
    }

    #[test]
    fn ghost_lists_stay_within_twice_the_capacity() {
        let mut arc = AdaptiveReplacement::default();
        for i in 0..4 {
            load(&mut arc, k(i));
        }
        for i in 4..100 {
            let cached: Vec<ChunkKey> = arc
                .lists
                .iter()
                .filter(|(_, (l, _))| matches!(l, List::T1 | List::T2))
                .map(|(k, _)| *k)
                .collect();
            let v = arc.victim(&cached).unwrap();
            arc.on_remove(v);
            load(&mut arc, k(i));
            assert!(arc.lists.len() <= 8, "{} remembered", arc.lists.len());
        }
    }
}
