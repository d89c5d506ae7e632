//! [`RegionTrace`]: a recorded sequence of region reads of one array, and
//! its replay through each eviction policy, with and without prediction.

use std::fmt::Write as _;
use std::path::Path;

use crate::core::{ChunkGrid, Error, Region, Result};
use crate::memory::{AccessPredictor, ChunkKey, EvictionPolicy, PolicyKind};

/// The regions an unplanned workload read, in order, with the array's
/// shape and chunking.
///
/// The text form, one item per line (`#` starts a comment):
///
/// ```text
/// # a slicing loop over rows
/// array 1024,256
/// chunks 128,256
/// 0,0 8,256
/// 8,0 8,256
/// ```
///
/// ```
/// use tenrso_ooc::memory::RegionTrace;
/// let trace: RegionTrace = "array 16,4\nchunks 4,4\n0,0 2,4\n2,0 2,4\n4,0 2,4\n".parse()?;
/// assert_eq!(trace.regions.len(), 3);
/// let keys: Vec<u64> = trace.chunk_keys().iter().map(|k| k.index).collect();
/// assert_eq!(keys, vec![0, 0, 1]);
/// assert_eq!(trace.to_string().parse::<RegionTrace>()?, trace);
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RegionTrace {
    /// What was recorded (the comment lines).
    pub description: String,
    /// The array's chunk grid.
    pub grid: ChunkGrid,
    /// The regions read, in order.
    pub regions: Vec<Region>,
}

impl RegionTrace {
    /// Reads a trace file.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::InvalidArgument`] naming the line at fault.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        text.parse()
            .map_err(|e| Error::invalid(format!("trace {}: {e}", path.display())))
    }

    /// The chunks read, in order (a region touching several chunks reads
    /// them in C order).
    pub fn chunk_keys(&self) -> Vec<ChunkKey> {
        let mut keys = Vec::new();
        for region in &self.regions {
            keys.extend(self.keys_of(region));
        }
        keys
    }

    fn keys_of<'a>(&'a self, region: &Region) -> impl Iterator<Item = ChunkKey> + 'a {
        let touching = self.grid.chunks_touching(region);
        ChunkGrid::iter_region(&touching)
            .map(|c| ChunkKey::new(0, self.grid.chunk_linear_index(&c)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Replays the trace through a cache of `capacity` chunks run by
    /// `policy`; with `prefetch_depth > 0`, after each read the chunks of
    /// the regions an [`AccessPredictor`] expects next are loaded too
    /// (at most half the capacity, evicting by the policy), as
    /// [`CachedArray`](crate::memory::CachedArray) does.
    pub fn replay(
        &self,
        mut policy: Box<dyn EvictionPolicy>,
        capacity: usize,
        prefetch_depth: usize,
    ) -> ReplayResult {
        let mut cache = ReplayCache {
            cached: Vec::new(),
            unused_prefetch: Vec::new(),
            capacity,
            result: ReplayResult::default(),
        };
        let mut predictor = AccessPredictor::new(self.grid.shape().dims().to_vec());
        for region in &self.regions {
            for key in self.keys_of(region) {
                cache.access(&mut *policy, key);
            }
            predictor.observe(region);
            if prefetch_depth == 0 {
                continue;
            }
            if let Some((_, next)) = predictor.predict(prefetch_depth) {
                // Never more ahead than half the cache: the rest keeps
                // what is being read now.
                let budget = capacity / 2;
                for key in next.iter().flat_map(|r| self.keys_of(r)).take(budget) {
                    cache.prefetch(&mut *policy, key);
                }
            }
        }
        let (predictions, correct) = predictor.accuracy();
        cache.result.predictions = predictions;
        cache.result.correct_predictions = correct;
        cache.result
    }

    /// Every policy's replay at `capacity` chunks, without prediction, in
    /// [`PolicyKind::ALL`]'s order; MIN knows the trace's future.
    pub fn compare_policies(&self, capacity: usize) -> Vec<(PolicyKind, ReplayResult)> {
        let keys = self.chunk_keys();
        PolicyKind::ALL
            .into_iter()
            .map(|kind| (kind, self.replay(kind.build(&keys), capacity, 0)))
            .collect()
    }
}

/// Hits, misses and prefetches of one replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayResult {
    /// Chunk reads served by the cache.
    pub hits: u64,
    /// Chunk reads that had to load the chunk.
    pub misses: u64,
    /// Chunks loaded ahead on a prediction.
    pub prefetched: u64,
    /// Of those, read before being evicted.
    pub prefetches_used: u64,
    /// Predictions of the next region read, and how many came true.
    pub predictions: u64,
    /// See `predictions`.
    pub correct_predictions: u64,
}

impl ReplayResult {
    /// Hits over reads.
    pub fn hit_ratio(&self) -> f64 {
        self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }
}

struct ReplayCache {
    cached: Vec<ChunkKey>,
    unused_prefetch: Vec<ChunkKey>,
    capacity: usize,
    result: ReplayResult,
}

impl ReplayCache {
    fn access(&mut self, policy: &mut dyn EvictionPolicy, key: ChunkKey) {
        if let Some(i) = self.unused_prefetch.iter().position(|k| *k == key) {
            self.unused_prefetch.swap_remove(i);
            self.result.prefetches_used += 1;
        }
        if self.cached.contains(&key) {
            self.result.hits += 1;
            policy.on_access(key);
            return;
        }
        self.result.misses += 1;
        if self.insert(policy, key) {
            policy.on_access(key);
        } else {
            policy.on_access(key);
            policy.on_remove(key);
        }
    }

    fn prefetch(&mut self, policy: &mut dyn EvictionPolicy, key: ChunkKey) {
        if self.cached.contains(&key) || !self.insert(policy, key) {
            return;
        }
        self.result.prefetched += 1;
        self.unused_prefetch.push(key);
    }

    /// Makes room and inserts; false (after telling the policy) when the
    /// cache holds nothing.
    fn insert(&mut self, policy: &mut dyn EvictionPolicy, key: ChunkKey) -> bool {
        if self.capacity == 0 {
            policy.on_insert(key);
            return false;
        }
        if self.cached.len() >= self.capacity
            && let Some(victim) = policy.victim(&self.cached)
        {
            self.cached.retain(|k| *k != victim);
            self.unused_prefetch.retain(|k| *k != victim);
            policy.on_remove(victim);
        }
        policy.on_insert(key);
        self.cached.push(key);
        true
    }
}

impl std::str::FromStr for RegionTrace {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let numbers = |field: &str, line: usize| -> Result<Vec<u64>> {
            field
                .split(',')
                .map(|n| n.trim().parse::<u64>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| {
                    Error::invalid(format!("line {line}: `{field}` is not a list of integers"))
                })
        };
        let mut description = String::new();
        let (mut shape, mut chunks, mut regions) = (None, None, Vec::new());
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if let Some(comment) = line.strip_prefix('#') {
                let _ = writeln!(description, "{}", comment.trim());
                continue;
            }
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (None, ..) => {}
                (Some("array"), Some(dims), None) => shape = Some(numbers(dims, n)?),
                (Some("chunks"), Some(dims), None) => chunks = Some(numbers(dims, n)?),
                (Some(start), Some(extent), None) => {
                    let (start, extent) = (numbers(start, n)?, numbers(extent, n)?);
                    if start.len() != extent.len() {
                        return Err(Error::invalid(format!(
                            "line {n}: the start has {} axes and the extent {}",
                            start.len(),
                            extent.len()
                        )));
                    }
                    let region = Region::new(start, extent);
                    if let Some(shape) = &shape {
                        region
                            .check_within(shape)
                            .map_err(|e| Error::invalid(format!("line {n}: {e}")))?;
                    }
                    regions.push(region);
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "line {n}: expected `array SHAPE`, `chunks SHAPE` or `START EXTENT`"
                    )));
                }
            }
        }
        let (Some(shape), Some(chunks)) = (shape, chunks) else {
            return Err(Error::invalid("a trace needs `array` and `chunks` lines"));
        };
        if regions.iter().any(|r| r.ndim() != shape.len()) {
            return Err(Error::invalid("a region's rank differs from the array's"));
        }
        Ok(Self {
            description: description.trim_end().to_string(),
            grid: ChunkGrid::new(shape, chunks)?,
            regions,
        })
    }
}

impl std::fmt::Display for RegionTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        for line in self.description.lines() {
            writeln!(f, "# {line}")?;
        }
        writeln!(f, "array {}", join(self.grid.shape().dims()))?;
        writeln!(f, "chunks {}", join(self.grid.chunk_shape()))?;
        for r in &self.regions {
            writeln!(f, "{} {}", join(r.start()), join(r.shape()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_traces_name_the_line() {
        for (text, want) in [
            ("array 4\nchunks 2\n0 9\n", "line 3"),
            ("array 4\nchunks 2\nx 1\n", "line 3"),
            ("chunks 2\n0 1\n", "`array`"),
            ("array 4\nchunks 2\n0 1 2\n", "line 3"),
            (
                "array 4,4\nchunks 2,2\n0,0 1\n",
                "line 3: the start has 2 axes",
            ),
            ("array 4\nchunks 2,2\n", "chunk"),
        ] {
            let err = text.parse::<RegionTrace>().unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn replay_without_prediction_matches_the_simulator() {
        let trace: RegionTrace = "array 64\nchunks 4\n0 4\n8 4\n0 4\n16 4\n8 4\n0 8\n"
            .parse()
            .unwrap();
        let keys = trace.chunk_keys();
        for kind in PolicyKind::ALL {
            let replay = trace.replay(kind.build(&keys), 2, 0);
            let sim = crate::memory::simulate(kind.build(&keys), &keys, 2);
            assert_eq!(
                (replay.hits, replay.misses),
                (sim.hits, sim.misses),
                "{kind}"
            );
        }
    }

    #[test]
    fn prediction_turns_a_scan_into_hits() {
        let mut text = String::from("array 400,4\nchunks 10,4\n");
        for i in 0..40 {
            text.push_str(&format!("{},0 10,4\n", 10 * i));
        }
        let trace: RegionTrace = text.parse().unwrap();
        let plain = trace.replay(PolicyKind::Lru.build(&[]), 4, 0);
        let ahead = trace.replay(PolicyKind::Lru.build(&[]), 4, 2);
        assert_eq!(plain.hits, 0);
        // Reads 4 onwards were predicted and loaded ahead.
        assert_eq!(ahead.misses, 3);
        assert_eq!(ahead.prefetches_used, 37);
        assert_eq!((ahead.predictions, ahead.correct_predictions), (37, 37));
    }
}
