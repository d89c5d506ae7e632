//! [`CachedArray`]: an array read through a chunk cache for access nobody
//! planned (region reads, Python slicing), with an eviction policy and
//! prefetch of the regions an [`AccessPredictor`] expects next.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::core::{ChunkGrid, DType, Region, Result};
use crate::io::{ArrayRef, ReadableArray};
use crate::memory::{AccessPredictor, ChunkKey, ChunkMap, EvictionPolicy, PolicyKind};

/// How a [`CachedArray`] caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCacheOptions {
    /// Most bytes of decoded chunks held (loads under way come on top).
    pub capacity: u64,
    /// Which chunk to drop when full.
    pub policy: PolicyKind,
    /// Regions predicted ahead and loaded in the background (0: none).
    pub prefetch_depth: usize,
}

impl Default for ReadCacheOptions {
    /// 256 MiB, ARC (the best policy over the recorded traces; see
    /// `docs/benchmarks.md`), prefetch of the next two regions.
    fn default() -> Self {
        Self {
            capacity: 256 << 20,
            policy: PolicyKind::Arc,
            prefetch_depth: 2,
        }
    }
}

/// Counters of a [`CachedArray`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCacheStats {
    /// Chunk requests served from the cache (or from a load under way).
    pub hits: u64,
    /// Chunk requests that had to read the chunk.
    pub misses: u64,
    /// Chunks dropped to make room.
    pub evictions: u64,
    /// Chunks loaded ahead by prediction.
    pub prefetched: u64,
    /// Requests served by a chunk loaded ahead (the prefetch was right).
    pub prefetch_hits: u64,
    /// Predictions of the next region read, and how many came true.
    pub predictions: u64,
    /// See `predictions`.
    pub correct_predictions: u64,
}

impl ReadCacheStats {
    /// Hits over requests (0 without requests).
    pub fn hit_ratio(&self) -> f64 {
        self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }
}

enum Slot {
    /// Someone is reading it.
    Loading,
    /// Decoded bytes of the chunk (its clipped region, C order), and
    /// whether a prefetch loaded it and nobody has used it yet.
    Ready(Arc<Vec<u8>>, bool),
}

struct State {
    entries: ChunkMap<Slot>,
    bytes: u64,
    policy: Box<dyn EvictionPolicy>,
    stats: ReadCacheStats,
    predictor: AccessPredictor,
    trace: Option<Vec<Region>>,
}

struct Shared {
    inner: ArrayRef,
    options: ReadCacheOptions,
    state: Mutex<State>,
    loaded: Condvar,
}

/// An array read through a cache of decoded chunks.
///
/// Reads of any region are served chunk by chunk from the cache; missing
/// chunks are read from the array underneath and kept while the cache has
/// room, the [`PolicyKind`] choosing what to drop. After each read an
/// [`AccessPredictor`] guesses the next regions (a constant step, or what
/// followed last time) and a background thread loads their chunks, so a
/// slicing loop finds its next chunks decoded. The cache is read-only:
/// write through the array underneath (and make a new cache).
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::{DType, Region, exec::Session};
/// use tenrso_ooc::io::ArrayRef;
/// use tenrso_ooc::memory::{CachedArray, ReadCacheOptions};
/// use tenrso_ooc::ops::{Fill, Generate};
/// use tenrso_ooc::store::ArraySpec;
/// # let dir = tempfile::tempdir()?;
/// let spec = ArraySpec::new(vec![64, 64], vec![16, 64], DType::F64);
/// let x = Generate::new(dir.path().join("x"), spec, Fill::Range).plan(&Session::default())?.run()?.array;
/// let cached: ArrayRef = Arc::new(CachedArray::new(x, ReadCacheOptions::default()));
/// for i in 0..16 {
///     // Four rows at a time: a chunk serves four reads.
///     let rows = cached.read_region::<f64>(&Region::new(vec![4 * i, 0], vec![4, 64]))?;
///     assert_eq!(rows.as_slice()[0], (4 * i * 64) as f64);
/// }
/// let stats = cached.as_any().downcast_ref::<CachedArray>().unwrap().stats();
/// assert_eq!(stats.hits + stats.misses, 16);
/// assert!(stats.misses <= 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CachedArray {
    shared: Arc<Shared>,
    prefetch: Option<SyncSender<Vec<u64>>>,
}

impl std::fmt::Debug for CachedArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedArray")
            .field("inner", &self.shared.inner)
            .field("options", &self.shared.options)
            .finish()
    }
}

impl CachedArray {
    /// `inner` read through a cache with `options`.
    pub fn new(inner: ArrayRef, options: ReadCacheOptions) -> Self {
        let predictor = AccessPredictor::new(inner.shape().to_vec());
        let shared = Arc::new(Shared {
            inner,
            options,
            state: Mutex::new(State {
                entries: ChunkMap::default(),
                bytes: 0,
                policy: options.policy.build(&[]),
                stats: ReadCacheStats::default(),
                predictor,
                trace: None,
            }),
            loaded: Condvar::new(),
        });
        let prefetch = (options.prefetch_depth > 0).then(|| {
            let (send, receive) = sync_channel(64);
            let worker = Arc::clone(&shared);
            // The thread ends when the cache is dropped (the channel closes).
            let _detached = std::thread::Builder::new()
                .name("tenrso-prefetch".into())
                .spawn(move || prefetch_loop(&worker, &receive));
            send
        });
        Self { shared, prefetch }
    }

    /// The array underneath.
    pub fn inner(&self) -> &ArrayRef {
        &self.shared.inner
    }

    /// The cache's options.
    pub fn options(&self) -> ReadCacheOptions {
        self.shared.options
    }

    /// The counters so far.
    pub fn stats(&self) -> ReadCacheStats {
        let state = self.shared.lock();
        let (predictions, correct) = state.predictor.accuracy();
        ReadCacheStats {
            predictions,
            correct_predictions: correct,
            ..state.stats
        }
    }

    /// Bytes of chunks held.
    pub fn bytes(&self) -> u64 {
        self.shared.lock().bytes
    }

    /// Starts (or stops) recording the regions read.
    pub fn record_trace(&self, on: bool) {
        self.shared.lock().trace = on.then(Vec::new);
    }

    /// The regions read since recording started.
    pub fn take_trace(&self) -> Vec<Region> {
        self.shared
            .lock()
            .trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, chunk: &[u64]) -> ChunkKey {
        ChunkKey::new(0, self.inner.chunk_grid().chunk_linear_index(chunk))
    }

    /// Reads chunk `chunk`'s bytes from the array underneath.
    fn load(&self, chunk: &[u64]) -> Result<Vec<u8>> {
        let region = self.inner.chunk_grid().chunk_region(chunk);
        let mut bytes =
            vec![0u8; (region.num_elements() * self.inner.dtype().size() as u64) as usize];
        self.inner.read_region_into(&region, &mut bytes)?;
        Ok(bytes)
    }

    /// The chunk's bytes, from the cache or read (and kept if they fit).
    fn chunk(&self, chunk: &[u64]) -> Result<Arc<Vec<u8>>> {
        let key = self.key(chunk);
        let mut first_look = true;
        let mut guard = self.lock();
        loop {
            let state = &mut *guard;
            match state.entries.get_mut(&key) {
                Some(Slot::Ready(data, prefetched)) => {
                    let data = Arc::clone(data);
                    if std::mem::take(prefetched) && first_look {
                        state.stats.prefetch_hits += 1;
                    }
                    if first_look {
                        state.stats.hits += 1;
                    }
                    state.policy.on_access(key);
                    return Ok(data);
                }
                Some(Slot::Loading) => {
                    if first_look {
                        // A prefetch is reading it: served without a read here.
                        state.stats.hits += 1;
                        state.stats.prefetch_hits += 1;
                    }
                    first_look = false;
                }
                None => {
                    state.entries.insert(key, Slot::Loading);
                    state.stats.misses += 1;
                    drop(guard);
                    return self.finish_load(key, self.load(chunk), false);
                }
            }
            guard = self
                .loaded
                .wait_timeout(guard, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Stores a finished load (if it fits), wakes waiters, returns the data.
    fn finish_load(
        &self,
        key: ChunkKey,
        loaded: Result<Vec<u8>>,
        prefetched: bool,
    ) -> Result<Arc<Vec<u8>>> {
        let mut state = self.lock();
        let data = match loaded {
            Ok(bytes) => Arc::new(bytes),
            Err(err) => {
                state.entries.remove(&key);
                self.loaded.notify_all();
                return Err(err);
            }
        };
        let size = data.len() as u64;
        if size > self.options.capacity {
            state.entries.remove(&key);
        } else {
            make_room(&mut state, size, self.options.capacity);
            state
                .entries
                .insert(key, Slot::Ready(Arc::clone(&data), prefetched));
            state.bytes += size;
            state.policy.on_insert(key);
            if prefetched {
                state.stats.prefetched += 1;
            } else {
                state.policy.on_access(key);
            }
        }
        self.loaded.notify_all();
        Ok(data)
    }
}

/// Evicts chunks (by the policy) until `size` more bytes fit.
fn make_room(state: &mut State, size: u64, capacity: u64) {
    while state.bytes + size > capacity {
        let candidates: Vec<ChunkKey> = state
            .entries
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Ready(..)))
            .map(|(k, _)| *k)
            .collect();
        let Some(victim) = state.policy.victim(&candidates) else {
            return;
        };
        if let Some(Slot::Ready(data, _)) = state.entries.remove(&victim) {
            state.bytes -= data.len() as u64;
        }
        state.policy.on_remove(victim);
        state.stats.evictions += 1;
    }
}

fn prefetch_loop(shared: &Shared, chunks: &Receiver<Vec<u64>>) {
    while let Ok(chunk) = chunks.recv() {
        let key = shared.key(&chunk);
        {
            let mut state = shared.lock();
            if state.entries.contains_key(&key) {
                continue;
            }
            state.entries.insert(key, Slot::Loading);
        }
        // A failed prefetch is forgotten: the read that needs the chunk
        // reads it again and reports the error.
        let _ = shared.finish_load(key, shared.load(&chunk), true);
    }
}

/// Copies the part `overlap` of a C-order block covering `from` into a
/// C-order block covering `to`, `itemsize` bytes per element.
fn copy_overlap(
    src: &[u8],
    from: &Region,
    dst: &mut [u8],
    to: &Region,
    overlap: &Region,
    itemsize: usize,
) {
    let ndim = overlap.ndim();
    if ndim == 0 {
        dst[..itemsize].copy_from_slice(&src[..itemsize]);
        return;
    }
    let run = overlap.shape()[ndim - 1] as usize * itemsize;
    let offset = |block: &Region, index: &[u64]| -> usize {
        let mut linear = 0u64;
        for ((i, s), n) in index.iter().zip(block.start()).zip(block.shape()) {
            linear = linear * n + (i - s);
        }
        linear as usize * itemsize
    };
    let rows: u64 = overlap.shape()[..ndim - 1].iter().product();
    let mut index = overlap.start().to_vec();
    for _ in 0..rows {
        let (s, d) = (offset(from, &index), offset(to, &index));
        dst[d..d + run].copy_from_slice(&src[s..s + run]);
        for axis in (0..ndim - 1).rev() {
            index[axis] += 1;
            if index[axis] < overlap.end()[axis] {
                break;
            }
            index[axis] = overlap.start()[axis];
        }
    }
}

impl ReadableArray for CachedArray {
    fn path(&self) -> &std::path::Path {
        self.shared.inner.path()
    }

    fn dtype(&self) -> DType {
        self.shared.inner.dtype()
    }

    fn chunk_grid(&self) -> &ChunkGrid {
        self.shared.inner.chunk_grid()
    }

    fn chunk_working_set(&self) -> u64 {
        self.shared.inner.chunk_working_set()
    }

    fn describe(&self) -> String {
        format!(
            "{}, read through a {} cache of {} MiB ({} policy)",
            self.shared.inner.describe(),
            if self.shared.options.prefetch_depth > 0 {
                "prefetching"
            } else {
                "chunk"
            },
            self.shared.options.capacity >> 20,
            self.shared.options.policy
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        region.check_within(self.shape())?;
        let grid = self.shared.inner.chunk_grid();
        let itemsize = self.dtype().size();
        if out.len() as u64 != region.num_elements() * itemsize as u64 {
            return Err(crate::core::Error::invalid(format!(
                "reading {region} of {}: a buffer of {} bytes for {} elements of {} bytes",
                self.path().display(),
                out.len(),
                region.num_elements(),
                itemsize
            )));
        }
        for chunk in ChunkGrid::iter_region(&grid.chunks_touching(region)) {
            let chunk_region = grid.chunk_region(&chunk);
            let Some(overlap) = chunk_region.intersect(region) else {
                continue;
            };
            let data = self.shared.chunk(&chunk)?;
            copy_overlap(&data, &chunk_region, out, region, &overlap, itemsize);
        }
        let predicted = {
            let mut state = self.shared.lock();
            if let Some(trace) = state.trace.as_mut() {
                trace.push(region.clone());
            }
            state.predictor.observe(region);
            state
                .predictor
                .predict(self.shared.options.prefetch_depth)
                .map(|(_, regions)| regions)
        };
        if let (Some(send), Some(regions)) = (&self.prefetch, predicted) {
            // Never more ahead than half the cache: the rest keeps what is
            // being read now.
            let mut budget = self.shared.options.capacity / 2;
            for next in regions {
                for chunk in ChunkGrid::iter_region(&grid.chunks_touching(&next)) {
                    let bytes = grid.chunk_region(&chunk).num_elements() * itemsize as u64;
                    if bytes > budget {
                        return Ok(());
                    }
                    budget -= bytes;
                    if let Err(TrySendError::Full(_)) = send.try_send(chunk) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Block, DType};
    use crate::store::{ArraySpec, ZarrArray};

    fn array(dir: &std::path::Path) -> (ArrayRef, Vec<f64>) {
        let spec = ArraySpec::new(vec![40, 30], vec![8, 7], DType::F64);
        let z = ZarrArray::create(dir.join("a"), &spec).unwrap();
        let values: Vec<f64> = (0..1200).map(|i| i as f64 * 0.5).collect();
        z.write_region(
            &Region::full(&[40, 30]),
            &Block::from_vec(vec![40, 30], values.clone()).unwrap(),
        )
        .unwrap();
        (Arc::new(z) as ArrayRef, values)
    }

    #[test]
    fn regions_read_through_the_cache_equal_the_array() {
        let dir = tempfile::tempdir().unwrap();
        let (a, values) = array(dir.path());
        for policy in PolicyKind::ALL {
            let options = ReadCacheOptions {
                capacity: 3 * 8 * 7 * 8,
                policy,
                prefetch_depth: 2,
            };
            let cached = CachedArray::new(Arc::clone(&a), options);
            for (start, shape) in [
                ([0, 0], [40, 30]),
                ([3, 5], [9, 11]),
                ([39, 29], [1, 1]),
                ([10, 0], [5, 30]),
            ] {
                let region = Region::new(start.to_vec(), shape.to_vec());
                let got = (&cached as &dyn ReadableArray)
                    .read_region::<f64>(&region)
                    .unwrap();
                let want: Vec<f64> = crate::core::ContiguousRuns::new(&[40, 30], &region)
                    .flat_map(|(o, n)| values[o as usize..(o + n) as usize].to_vec())
                    .collect();
                assert_eq!(got.as_slice(), &want[..], "{policy} {region}");
                assert!(cached.bytes() <= options.capacity);
            }
        }
    }

    #[test]
    fn a_strided_loop_is_prefetched() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = array(dir.path());
        let options = ReadCacheOptions {
            capacity: 1 << 20,
            policy: PolicyKind::Lru,
            prefetch_depth: 2,
        };
        let cached = CachedArray::new(a, options);
        for i in 0..5 {
            let _ = (&cached as &dyn ReadableArray)
                .read_region::<f64>(&Region::new(vec![8 * i, 0], vec![8, 30]))
                .unwrap();
            // Let the prefetch thread catch up, as work on the slice would.
            std::thread::sleep(Duration::from_millis(30));
        }
        let stats = cached.stats();
        // Learned from the first three reads, the last two are predicted
        // and found loaded.
        assert_eq!(
            (stats.predictions, stats.correct_predictions),
            (2, 2),
            "{stats:?}"
        );
        assert!(
            stats.prefetch_hits >= 5 && stats.prefetched >= 5,
            "{stats:?}"
        );
        assert_eq!(stats.misses + stats.hits, 25);
    }

    #[test]
    fn load_errors_reach_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = array(dir.path());
        let path = a
            .as_any()
            .downcast_ref::<ZarrArray>()
            .unwrap()
            .chunk_path(&[1, 1]);
        std::fs::write(&path, b"garbage").unwrap();
        let cached = CachedArray::new(a, ReadCacheOptions::default());
        let cached: &dyn ReadableArray = &cached;
        let err = cached
            .read_region::<f64>(&Region::new(vec![8, 7], vec![1, 1]))
            .unwrap_err();
        assert!(matches!(err, crate::Error::Corrupt { .. }), "{err}");
        // A buffer of the wrong size is an error, not a panic.
        let mut short = [0u8; 8];
        assert!(
            cached
                .read_region_into(&Region::new(vec![0, 0], vec![1, 2]), &mut short)
                .is_err()
        );
        // Not cached: the next read fails the same way.
        assert!(
            cached
                .read_region::<f64>(&Region::new(vec![8, 7], vec![1, 1]))
                .is_err()
        );
    }
}
