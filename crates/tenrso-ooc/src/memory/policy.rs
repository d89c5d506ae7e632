//! Eviction policies of the chunk cache, and a simulator to compare them on
//! recorded access traces.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use crate::core::{Error, Result};
use crate::memory::{AdaptiveReplacement, Learned};

/// Identifies one chunk of one array in a run: the array's number in the
/// run's graph and the chunk's C-order index in that array's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    /// The array's number in the run.
    pub array: u32,
    /// The chunk's C-order index in the array's chunk grid.
    pub index: u64,
}

impl ChunkKey {
    /// The key of chunk `index` of array `array`.
    pub const fn new(array: u32, index: u64) -> Self {
        Self { array, index }
    }
}

/// A hash map keyed by [`ChunkKey`] with a fast non-cryptographic hash (the
/// Fx multiply-rotate): caches, policies and plans look keys up for every
/// chunk access, and SipHash dominated runs with thousands of small chunks.
pub type ChunkMap<V> = std::collections::HashMap<ChunkKey, V, BuildKeyHasher>;

/// Builds [`KeyHasher`]s for [`ChunkMap`].
pub type BuildKeyHasher = std::hash::BuildHasherDefault<KeyHasher>;

/// The Fx hash: fast and good enough for keys that are small integers.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Chooses which cached chunk to give up when memory is needed.
///
/// The cache calls the hooks as chunks come, are used and go; `victim` picks
/// among the chunks that may be evicted now (not pinned).
pub trait EvictionPolicy: Send {
    /// A short name (`lru`, `lfu`, `min`, `arc`, `learned`).
    fn name(&self) -> &'static str;
    /// `key` entered the cache (loaded, prefetched or produced); an access
    /// that caused the load is reported separately with `on_access`.
    fn on_insert(&mut self, key: ChunkKey);
    /// `key` was requested (the cache had it, or has just loaded it).
    fn on_access(&mut self, key: ChunkKey);
    /// `key` left the cache.
    fn on_remove(&mut self, key: ChunkKey);
    /// The chunk to evict among `candidates` (non-empty).
    fn victim(&mut self, candidates: &[ChunkKey]) -> Option<ChunkKey>;

    /// True when the policy knows the future accesses. Then the cache lets it
    /// choose among all chunks, clean or dirty (spilling a chunk needed much
    /// later beats dropping one needed next); otherwise clean chunks go first.
    fn knows_future(&self) -> bool {
        false
    }

    /// Where in the future `key` is used next (a position in the schedule;
    /// smaller is sooner), for policies that know the future; `None` when
    /// unknown or never again.
    fn next_use(&self, key: ChunkKey) -> Option<u64> {
        let _ = key;
        None
    }
}

/// Which eviction policy to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// Least frequently used (ties: least recently used).
    Lfu,
    /// Belady's MIN: evict the chunk whose next use is farthest in the
    /// future, known from the plan's schedule. Optimal for equal-sized
    /// chunks; falls back to LRU order for chunks the schedule never uses.
    #[default]
    Min,
    /// Adaptive Replacement Cache ([`AdaptiveReplacement`]).
    Arc,
    /// LRU and LFU weighed by online learning ([`Learned`]).
    Learned,
}

impl FromStr for PolicyKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lru" => Ok(Self::Lru),
            "lfu" => Ok(Self::Lfu),
            "min" | "belady" => Ok(Self::Min),
            "arc" => Ok(Self::Arc),
            "learned" | "lecar" => Ok(Self::Learned),
            _ => Err(Error::invalid(format!(
                "unknown cache policy `{s}`: expected lru, lfu, min, arc or learned"
            ))),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lru => "lru",
            Self::Lfu => "lfu",
            Self::Min => "min",
            Self::Arc => "arc",
            Self::Learned => "learned",
        })
    }
}

impl PolicyKind {
    /// Every policy, in the order reports list them.
    pub const ALL: [Self; 5] = [Self::Lru, Self::Lfu, Self::Arc, Self::Learned, Self::Min];

    /// A fresh policy; MIN is driven by `schedule`, the future access sequence
    /// (the others ignore it).
    pub fn build(self, schedule: &[ChunkKey]) -> Box<dyn EvictionPolicy> {
        match self {
            Self::Lru => Box::new(Lru::default()),
            Self::Lfu => Box::new(Lfu::default()),
            Self::Min => Box::new(Min::new(schedule)),
            Self::Arc => Box::new(AdaptiveReplacement::default()),
            Self::Learned => Box::new(Learned::default()),
        }
    }
}

/// Least recently used.
#[derive(Debug, Default)]
pub struct Lru {
    clock: u64,
    last: ChunkMap<u64>,
}

impl EvictionPolicy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }
    fn on_insert(&mut self, key: ChunkKey) {
        self.on_access(key);
    }
    fn on_access(&mut self, key: ChunkKey) {
        self.clock += 1;
        self.last.insert(key, self.clock);
    }
    fn on_remove(&mut self, key: ChunkKey) {
        self.last.remove(&key);
    }
    fn victim(&mut self, candidates: &[ChunkKey]) -> Option<ChunkKey> {
        candidates
            .iter()
            .min_by_key(|k| (self.last.get(k).copied().unwrap_or(0), **k))
            .copied()
    }
}

/// Least frequently used; ties broken by least recent use.
#[derive(Debug, Default)]
pub struct Lfu {
    clock: u64,
    stats: ChunkMap<(u64, u64)>,
}

impl EvictionPolicy for Lfu {
    fn name(&self) -> &'static str {
        "lfu"
    }
    fn on_insert(&mut self, key: ChunkKey) {
        self.clock += 1;
        self.stats.entry(key).or_insert((0, 0)).1 = self.clock;
    }
    fn on_access(&mut self, key: ChunkKey) {
        self.clock += 1;
        let e = self.stats.entry(key).or_insert((0, 0));
        e.0 += 1;
        e.1 = self.clock;
    }
    fn on_remove(&mut self, key: ChunkKey) {
        // Frequencies are kept across evictions: a chunk that comes back
        // keeps its history (the usual "LFU with aging-free counts").
        if let Some(e) = self.stats.get_mut(&key) {
            e.1 = 0;
        }
    }
    fn victim(&mut self, candidates: &[ChunkKey]) -> Option<ChunkKey> {
        candidates
            .iter()
            .min_by_key(|k| (self.stats.get(k).copied().unwrap_or((0, 0)), **k))
            .copied()
    }
}

/// Belady's MIN, driven by the known future access sequence.
///
/// Each access advances the policy along the schedule; the victim is the
/// candidate used farthest ahead (or never again).
#[derive(Debug, Default)]
pub struct Min {
    /// For each key, the schedule positions where it is used, in order.
    uses: ChunkMap<VecDeque<u64>>,
    lru: Lru,
}

impl Min {
    /// A MIN policy for the access sequence `schedule`.
    pub fn new(schedule: &[ChunkKey]) -> Self {
        let mut uses: ChunkMap<VecDeque<u64>> = ChunkMap::default();
        for (pos, key) in schedule.iter().enumerate() {
            uses.entry(*key).or_default().push_back(pos as u64);
        }
        Self {
            uses,
            lru: Lru::default(),
        }
    }

    fn consume(&mut self, key: ChunkKey) {
        if let Some(q) = self.uses.get_mut(&key) {
            q.pop_front();
        }
    }
}

impl EvictionPolicy for Min {
    fn name(&self) -> &'static str {
        "min"
    }
    fn knows_future(&self) -> bool {
        true
    }
    fn next_use(&self, key: ChunkKey) -> Option<u64> {
        self.uses.get(&key).and_then(|q| q.front().copied())
    }
    fn on_insert(&mut self, key: ChunkKey) {
        self.lru.on_insert(key);
    }
    fn on_access(&mut self, key: ChunkKey) {
        self.consume(key);
        self.lru.on_access(key);
    }
    fn on_remove(&mut self, key: ChunkKey) {
        self.lru.on_remove(key);
    }
    fn victim(&mut self, candidates: &[ChunkKey]) -> Option<ChunkKey> {
        let next_use = |k: &ChunkKey| {
            self.uses
                .get(k)
                .and_then(|q| q.front().copied())
                .unwrap_or(u64::MAX)
        };
        let farthest = candidates.iter().map(next_use).max()?;
        let tied: Vec<ChunkKey> = candidates
            .iter()
            .copied()
            .filter(|k| next_use(k) == farthest)
            .collect();
        self.lru.victim(&tied)
    }
}

/// Hits and misses of a policy replaying a trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulationResult {
    /// Accesses served from the cache.
    pub hits: u64,
    /// Accesses that had to load the chunk.
    pub misses: u64,
}

/// Replays `trace` through a cache of `capacity` equal-sized chunks managed
/// by `policy`, counting hits and misses.
///
/// ```
/// use tenrso_ooc::memory::{ChunkKey, PolicyKind, simulate};
/// let k = |i| ChunkKey::new(0, i);
/// let trace = [k(1), k(2), k(3), k(1), k(2), k(3)];
/// let lru = simulate(PolicyKind::Lru.build(&trace), &trace, 2);
/// let min = simulate(PolicyKind::Min.build(&trace), &trace, 2);
/// assert_eq!((lru.misses, min.misses), (6, 4));
/// ```
pub fn simulate(
    mut policy: Box<dyn EvictionPolicy>,
    trace: &[ChunkKey],
    capacity: usize,
) -> SimulationResult {
    let mut cached: Vec<ChunkKey> = Vec::new();
    let mut result = SimulationResult::default();
    for &key in trace {
        if cached.contains(&key) {
            result.hits += 1;
            policy.on_access(key);
            continue;
        }
        result.misses += 1;
        if capacity == 0 {
            policy.on_insert(key);
            policy.on_access(key);
            policy.on_remove(key);
            continue;
        }
        if cached.len() >= capacity
            && let Some(victim) = policy.victim(&cached)
        {
            cached.retain(|k| *k != victim);
            policy.on_remove(victim);
        }
        cached.push(key);
        policy.on_insert(key);
        policy.on_access(key);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(v: &[u64]) -> Vec<ChunkKey> {
        v.iter().map(|&i| ChunkKey::new(0, i)).collect()
    }

    #[test]
    fn lru_and_lfu_pick_as_named() {
        let mut lru = Lru::default();
        let mut lfu = Lfu::default();
        for k in keys(&[1, 2, 1, 1, 3, 2]) {
            lru.on_access(k);
            lfu.on_access(k);
        }
        let c = keys(&[1, 2, 3]);
        assert_eq!(lru.victim(&c), Some(ChunkKey::new(0, 1))); // used longest ago
        assert_eq!(lfu.victim(&c), Some(ChunkKey::new(0, 3))); // used once
    }

    #[test]
    fn min_evicts_the_farthest_next_use() {
        let trace = keys(&[1, 2, 3, 2, 1]);
        let mut min = Min::new(&trace);
        for k in &trace[..3] {
            min.on_insert(*k);
            min.on_access(*k);
        }
        // Next uses: 2 at position 3, 1 at position 4, 3 never.
        assert_eq!(min.victim(&keys(&[1, 2, 3])), Some(ChunkKey::new(0, 3)));
        assert_eq!(min.victim(&keys(&[1, 2])), Some(ChunkKey::new(0, 1)));
    }

    proptest! {
        /// Belady's MIN is optimal: never more misses than any other policy.
        #[test]
        fn min_never_misses_more_than_any_policy(
            trace in prop::collection::vec(0u64..12, 1..300),
            capacity in 1usize..8,
        ) {
            let trace = keys(&trace);
            let min = simulate(PolicyKind::Min.build(&trace), &trace, capacity);
            prop_assert_eq!(min.hits + min.misses, trace.len() as u64);
            for kind in PolicyKind::ALL {
                let other = simulate(kind.build(&trace), &trace, capacity);
                prop_assert!(min.misses <= other.misses, "min {:?} {} {:?}", min, kind, other);
                prop_assert_eq!(other.hits + other.misses, trace.len() as u64);
            }
        }
    }
}
