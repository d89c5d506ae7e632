//! [`Learned`]: an eviction policy that learns online how to weigh recency
//! against frequency (LeCaR: Vietri et al., "Driving Cache Replacement with
//! ML-based LeCaR", HotStorage 2018).

use std::collections::VecDeque;

use crate::memory::{ChunkKey, ChunkMap, EvictionPolicy, Lfu, Lru};

/// The two experts the policy weighs.
const LRU: usize = 0;
const LFU: usize = 1;

/// Regret-minimising mix of LRU and LFU.
///
/// Each eviction follows one expert, drawn with the current weights (a
/// deterministic stream, so replays repeat). The evicted chunk is remembered
/// in that expert's history; a miss on a remembered chunk is that expert's
/// mistake, and its weight is multiplied by `exp(-λ·dᵗ)`, where `t` counts
/// accesses since the eviction (recent mistakes weigh most) and `d` is
/// chosen so a mistake older than the cache's capacity in accesses weighs
/// 0.005 of a fresh one. Where recency and frequency disagree the weight
/// moves to whichever is making fewer mistakes on this workload, and moves
/// back when the workload changes.
///
/// ```
/// use tenrso_ooc::memory::{ChunkKey, PolicyKind, simulate};
/// let k = |i| ChunkKey::new(0, i);
/// // Frequency wins: a hot set reused between scans longer than the cache.
/// let mut trace = Vec::new();
/// for round in 0..50 {
///     trace.extend((0..3).flat_map(|_| [k(0), k(1), k(2)]));
///     trace.extend((0..6).map(|i| k(100 + round * 6 + i)));
/// }
/// let learned = simulate(PolicyKind::Learned.build(&trace), &trace, 5);
/// let lru = simulate(PolicyKind::Lru.build(&trace), &trace, 5);
/// assert!(learned.hits > lru.hits);
/// ```
#[derive(Debug)]
pub struct Learned {
    lru: Lru,
    lfu: Lfu,
    /// Weight of each expert; they sum to 1.
    weights: [f64; 2],
    /// Accesses so far.
    time: u64,
    /// Chunks evicted on an expert's advice: which experts advised it, when.
    history: ChunkMap<(u8, u64)>,
    /// History keys in eviction order, to bound the history.
    history_order: VecDeque<ChunkKey>,
    /// Keys currently cached (the capacity estimate).
    cached: usize,
    /// Most chunks seen cached at once.
    capacity: usize,
    /// The last victim proposed and the experts that proposed it.
    proposed: Option<(ChunkKey, u8)>,
    rng: u64,
}

impl Default for Learned {
    fn default() -> Self {
        Self {
            lru: Lru::default(),
            lfu: Lfu::default(),
            weights: [0.5, 0.5],
            time: 0,
            history: ChunkMap::default(),
            history_order: VecDeque::new(),
            cached: 0,
            capacity: 1,
            proposed: None,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl Learned {
    /// The learning rate λ.
    pub const LEARNING_RATE: f64 = 0.45;

    /// The current weights of (LRU, LFU).
    pub fn weights(&self) -> (f64, f64) {
        (self.weights[LRU], self.weights[LFU])
    }

    /// A uniform draw in [0, 1) (SplitMix64).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Penalises the experts that evicted `key` if it is in the history.
    fn learn_from_miss(&mut self, key: ChunkKey) {
        let Some((experts, evicted_at)) = self.history.remove(&key) else {
            return;
        };
        let discount = 0.005f64.powf(1.0 / self.capacity.max(1) as f64);
        let age = self.time.saturating_sub(evicted_at) as f64;
        let regret = discount.powf(age);
        for expert in [LRU, LFU] {
            if experts & (1 << expert) != 0 {
                self.weights[expert] *= (-Self::LEARNING_RATE * regret).exp();
            }
        }
        let total = self.weights[LRU] + self.weights[LFU];
        for w in &mut self.weights {
            // Neither expert is ever ruled out entirely.
            *w = (*w / total).clamp(0.01, 0.99);
        }
        let total = self.weights[LRU] + self.weights[LFU];
        for w in &mut self.weights {
            *w /= total;
        }
    }

    fn remember(&mut self, key: ChunkKey, experts: u8) {
        if self.history.insert(key, (experts, self.time)).is_none() {
            self.history_order.push_back(key);
        }
        while self.history.len() > self.capacity.max(1) {
            match self.history_order.pop_front() {
                Some(old) => {
                    self.history.remove(&old);
                }
                None => break,
            }
        }
        // Keys removed from the history by a later hit stay in the order
        // queue until they reach its front; keep the queue bounded too.
        if self.history_order.len() > 4 * self.capacity.max(1) {
            let history = &self.history;
            self.history_order.retain(|k| history.contains_key(k));
        }
    }
}

impl EvictionPolicy for Learned {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn on_insert(&mut self, key: ChunkKey) {
        self.learn_from_miss(key);
        self.cached += 1;
        self.capacity = self.capacity.max(self.cached);
        self.lru.on_insert(key);
        self.lfu.on_insert(key);
    }

    fn on_access(&mut self, key: ChunkKey) {
        self.time += 1;
        self.lru.on_access(key);
        self.lfu.on_access(key);
    }

    fn on_remove(&mut self, key: ChunkKey) {
        self.cached = self.cached.saturating_sub(1);
        self.lru.on_remove(key);
        self.lfu.on_remove(key);
        if let Some((proposed, experts)) = self.proposed.take() {
            if proposed == key {
                self.remember(key, experts);
            } else {
                self.proposed = Some((proposed, experts));
            }
        }
    }

    fn victim(&mut self, candidates: &[ChunkKey]) -> Option<ChunkKey> {
        let by_lru = self.lru.victim(candidates)?;
        let by_lfu = self.lfu.victim(candidates)?;
        let (victim, experts) = if by_lru == by_lfu {
            (by_lru, (1 << LRU) | (1 << LFU))
        } else if self.draw() < self.weights[LRU] {
            (by_lru, 1 << LRU)
        } else {
            (by_lfu, 1 << LFU)
        };
        self.proposed = Some((victim, experts));
        Some(victim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PolicyKind, simulate};

    fn k(i: u64) -> ChunkKey {
        ChunkKey::new(0, i)
    }

    #[test]
    fn a_miss_on_a_chunk_lru_evicted_moves_weight_to_lfu() {
        let mut p = Learned::default();
        p.on_insert(k(1));
        p.on_access(k(1));
        p.on_access(k(1));
        p.on_insert(k(2));
        p.on_access(k(2));
        // LRU would evict 1 (older), LFU 2 (used once): force LRU's advice.
        p.weights = [1.0, 0.0];
        assert_eq!(p.victim(&[k(1), k(2)]), Some(k(1)));
        p.on_remove(k(1));
        p.weights = [0.5, 0.5];
        p.on_insert(k(1));
        let (lru, lfu) = p.weights();
        assert!(lfu > lru, "weights {lru} {lfu}");
        assert!((lru + lfu - 1.0).abs() < 1e-12);
    }

    #[test]
    fn replays_are_deterministic() {
        let trace: Vec<ChunkKey> = (0..500u64).map(|i| k((i * 7919) % 23)).collect();
        let a = simulate(PolicyKind::Learned.build(&trace), &trace, 6);
        let b = simulate(PolicyKind::Learned.build(&trace), &trace, 6);
        assert_eq!(a, b);
    }
}
