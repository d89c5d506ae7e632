//! [`ChunkCache`]: the buffer manager holding chunks in memory under the pool.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::core::{Block, Element, Result};
use crate::memory::spill::HEADER_LEN;
use crate::memory::{
    ChunkKey, ChunkMap, EvictionPolicy, MemoryPool, Reclaim, Reservation, SpillFile, SpillManager,
};
use crate::telemetry::Metrics;

/// Counters of a cache's activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests served from memory.
    pub hits: u64,
    /// Requests that had to load the chunk (from its store or a spill file).
    pub misses: u64,
    /// Chunks dropped or spilled to free memory.
    pub evictions: u64,
    /// Dirty chunks written to spill files.
    pub spills: u64,
    /// Requests that waited for a load already under way (e.g. a prefetch).
    pub load_waits: u64,
    /// Requests served by a chunk a prefetch had loaded.
    pub prefetch_hits: u64,
}

enum Slot<T> {
    /// Someone is loading it; wait on the condition variable.
    Loading,
    /// In memory.
    Ready(Arc<Block<T>>),
    /// Only on disk, in a spill file.
    Spilled(Arc<SpillFile>, Vec<u64>),
}

struct Entry<T> {
    slot: Slot<T>,
    pins: u32,
    /// No durable copy exists (not in its store, not in a spill file):
    /// evicting it means spilling it.
    dirty: bool,
    /// Being written to a spill file by `reclaim`; not evictable meanwhile.
    spilling: bool,
    /// A spill file holding the same data (kept after reading back, so a
    /// second eviction is free).
    spill_copy: Option<Arc<SpillFile>>,
    /// Loaded by a prefetch and not yet used.
    prefetched: bool,
    /// No use is planned after the current pins: the entry leaves the cache
    /// when the last is dropped.
    last_use: bool,
    bytes: u64,
}

struct State<T> {
    entries: ChunkMap<Entry<T>>,
    policy: Box<dyn EvictionPolicy>,
    reservation: Reservation,
    stats: CacheStats,
    trace: Option<Vec<ChunkKey>>,
}

impl<T: Element> State<T> {
    /// Drops the clean, unpinned chunk `victim` from memory (a chunk with a
    /// spill copy stays, as spilled): the bytes released.
    fn drop_clean(&mut self, victim: ChunkKey) -> u64 {
        let e = self.entries.get_mut(&victim).expect("a chunk in the cache");
        let released = e.bytes;
        match (e.spill_copy.take(), &e.slot) {
            (Some(file), Slot::Ready(block)) => {
                // A spill copy exists: keep it, drop the memory.
                e.slot = Slot::Spilled(file, block.shape().to_vec());
                e.bytes = 0;
            }
            _ => {
                self.entries.remove(&victim);
            }
        }
        self.reservation.shrink(released);
        self.policy.on_remove(victim);
        self.stats.evictions += 1;
        released
    }
}

/// Chunks in memory, keyed by (array, chunk), accounted in the session's
/// [`MemoryPool`] under one reclaimable consumer.
///
/// Chunks are *pinned* while in use ([`Pinned`]) and may be evicted only when
/// unpinned. *Clean* chunks have a durable copy (their store) and are simply
/// dropped; *dirty* chunks (intermediate results) are written to the
/// [`SpillManager`] first and read back transparently on the next request.
/// When the pool runs short, it asks the cache to [`Reclaim`] memory: the
/// eviction policy picks victims, clean ones before dirty ones. Requests that
/// still cannot be met wait in the pool (back-pressure).
///
/// Loads happen outside the cache lock: the requester reserves the memory a
/// load needs from the pool (waiting if needed), marks the chunk as loading
/// so others wait for it instead of loading it twice, loads, and hands the
/// chunk's bytes over to the cache's reservation.
pub struct ChunkCache<T: Element> {
    state: Mutex<State<T>>,
    loaded: Condvar,
    spill: Option<Arc<SpillManager>>,
    /// The first failure to spill (e.g. every spill directory full), kept
    /// for the run to report: the pool only sees that no memory was freed.
    spill_error: Mutex<Option<crate::Error>>,
    /// The first tier's room when `promote_soonest` last found no file to
    /// move up: it looks again only once the room has grown.
    promotion_room_seen: std::sync::atomic::AtomicU64,
    metrics: Arc<Metrics>,
}

/// A pinned chunk: readable while held, evictable again once dropped.
pub struct Pinned<'a, T: Element> {
    cache: &'a ChunkCache<T>,
    key: ChunkKey,
    block: Arc<Block<T>>,
}

impl<T: Element> std::ops::Deref for Pinned<'_, T> {
    type Target = Block<T>;
    fn deref(&self) -> &Block<T> {
        &self.block
    }
}

impl<T: Element> Drop for Pinned<'_, T> {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        let Some(e) = state.entries.get_mut(&self.key) else {
            return;
        };
        e.pins = e.pins.saturating_sub(1);
        if e.pins == 0 && e.last_use {
            let bytes = e.bytes;
            state.entries.remove(&self.key);
            state.reservation.shrink(bytes);
            state.policy.on_remove(self.key);
        }
    }
}

impl<T: Element> Pinned<'_, T> {
    /// The chunk's key.
    pub fn key(&self) -> ChunkKey {
        self.key
    }
}

/// How a missing chunk is produced: loaded from its store with `load`, which
/// needs `working_set` bytes of memory while it runs.
pub struct Loader<'f, T> {
    /// Memory the load needs while it runs (decode buffers included).
    pub working_set: u64,
    /// Produces the chunk.
    pub load: &'f (dyn Fn() -> Result<Block<T>> + Sync),
}

impl<T: Element> ChunkCache<T> {
    /// A cache in `pool`, choosing victims with `policy`, spilling dirty
    /// chunks to `spill`, counting its activity in `metrics`. It registers
    /// itself as the pool's reclaimer.
    pub fn new(
        pool: &MemoryPool,
        policy: Box<dyn EvictionPolicy>,
        spill: Option<Arc<SpillManager>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let cache = Arc::new(Self {
            state: Mutex::new(State {
                entries: ChunkMap::default(),
                policy,
                reservation: pool.reclaimable_reservation("chunk cache"),
                stats: CacheStats::default(),
                trace: None,
            }),
            loaded: Condvar::new(),
            spill,
            spill_error: Mutex::new(None),
            promotion_room_seen: std::sync::atomic::AtomicU64::new(u64::MAX),
            metrics,
        });
        let weak = Arc::downgrade(&cache);
        pool.add_reclaimer(weak as std::sync::Weak<dyn Reclaim>);
        cache
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Activity counters.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// Bytes of chunks held in memory.
    pub fn bytes(&self) -> u64 {
        self.lock().reservation.size()
    }

    /// The first spill failure, if any (taken: reported once).
    pub fn take_spill_error(&self) -> Option<crate::Error> {
        self.spill_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Starts (or stops) recording the sequence of requested keys.
    pub fn record_trace(&self, on: bool) {
        self.lock().trace = on.then(Vec::new);
    }

    /// The keys requested since recording started.
    pub fn take_trace(&self) -> Vec<ChunkKey> {
        self.lock()
            .trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// True when `key` is in memory or spilled (not when merely loading).
    pub fn contains(&self, key: ChunkKey) -> bool {
        self.lock()
            .entries
            .get(&key)
            .is_some_and(|e| !matches!(e.slot, Slot::Loading))
    }

    /// True when `key` is in memory.
    pub fn in_memory(&self, key: ChunkKey) -> bool {
        self.lock()
            .entries
            .get(&key)
            .is_some_and(|e| matches!(e.slot, Slot::Ready(_)))
    }

    /// The chunk `key`, pinned: from memory, from its spill file, or loaded
    /// with `loader`. `io` is the caller's reservation, grown (waiting if
    /// needed) by the memory a load needs and shrunk back afterwards.
    ///
    /// # Errors
    /// The loader's error; [`crate::Error::SpillCorrupt`] for a damaged spill
    /// file; [`crate::Error::MemoryExhausted`] when the load cannot get memory.
    pub fn get(
        &self,
        key: ChunkKey,
        loader: &Loader<'_, T>,
        io: &mut Reservation,
    ) -> Result<Pinned<'_, T>> {
        let mut first_look = true;
        loop {
            let mut guard = self.lock();
            let State {
                entries,
                policy,
                stats,
                trace,
                ..
            } = &mut *guard;
            if first_look && let Some(t) = trace.as_mut() {
                t.push(key);
            }
            let Some(e) = entries.get_mut(&key) else {
                entries.insert(key, Entry::loading(false));
                stats.misses += 1;
                self.metrics.cache_misses.add(1);
                drop(guard);
                let result = io
                    .grow(loader.working_set)
                    .and_then(|()| match (loader.load)() {
                        Ok(block) => Ok((block, loader.working_set)),
                        Err(err) => {
                            io.shrink(loader.working_set);
                            Err(err)
                        }
                    });
                return self
                    .finish_load(key, result, io, false, None)
                    .map(pinned_by_get);
            };
            match &e.slot {
                Slot::Ready(block) => {
                    let block = block.clone();
                    e.pins += 1;
                    if std::mem::take(&mut e.prefetched) {
                        stats.prefetch_hits += 1;
                        self.metrics.prefetch_hits.add(1);
                    }
                    stats.hits += 1;
                    self.metrics.cache_hits.add(1);
                    policy.on_access(key);
                    return Ok(Pinned {
                        cache: self,
                        key,
                        block,
                    });
                }
                Slot::Loading => {
                    if first_look {
                        stats.load_waits += 1;
                        self.metrics.prefetch_waits.add(1);
                    }
                    first_look = false;
                    let _unused = self
                        .loaded
                        .wait_timeout(guard, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner());
                }
                Slot::Spilled(file, shape) => {
                    let restore = (file.clone(), shape.clone());
                    e.slot = Slot::Loading;
                    stats.misses += 1;
                    self.metrics.cache_misses.add(1);
                    drop(guard);
                    let result = self.read_back(&restore.0, &restore.1, io);
                    return self
                        .finish_load(key, result, io, false, Some(restore))
                        .map(pinned_by_get);
                }
            }
        }
    }

    /// Loads `key` ahead of need if the pool has the bytes free right now
    /// and `still_wanted()` (asked under the cache's lock, so it can tell
    /// whether the chunk's user has already come). With a policy that knows
    /// the future it first drops clean, unpinned chunks the schedule needs
    /// after `key` (farthest first) to make that room; it never pushes out
    /// data needed sooner, never spills and never waits. Returns whether it
    /// loaded the chunk.
    ///
    /// # Errors
    /// The loader's error.
    pub fn prefetch(
        &self,
        key: ChunkKey,
        loader: &Loader<'_, T>,
        io: &mut Reservation,
        still_wanted: &dyn Fn() -> bool,
    ) -> Result<bool> {
        {
            let mut state = self.lock();
            // Asked under the lock: a user that took the chunk's task
            // after this finds the load under way and waits for it.
            if state.entries.contains_key(&key) || !still_wanted() {
                return Ok(false);
            }
            if io.try_grow_free(loader.working_set).is_err()
                && !(self.drop_needed_after(&mut state, key, loader.working_set)
                    && io.try_grow_free(loader.working_set).is_ok())
            {
                return Ok(false);
            }
            state.entries.insert(key, Entry::loading(true));
        }
        let result = match (loader.load)() {
            Ok(block) => Ok((block, loader.working_set)),
            Err(err) => {
                io.shrink(loader.working_set);
                Err(err)
            }
        };
        self.finish_load(key, result, io, true, None).map(|_| true)
    }

    /// Drops clean, unpinned chunks in memory that the schedule uses after
    /// `key` (never again counts as last), farthest first, until `bytes`
    /// are released or none is left: room for `key`'s prefetch taken only
    /// from data needed later (Belady's rule, for policies that know the
    /// future). Returns whether `bytes` were released.
    fn drop_needed_after(&self, state: &mut State<T>, key: ChunkKey, bytes: u64) -> bool {
        if !state.policy.knows_future() {
            return false;
        }
        let Some(soon) = state.policy.next_use(key) else {
            return false;
        };
        let mut later: Vec<(u64, ChunkKey)> = state
            .entries
            .iter()
            .filter(|(_, e)| {
                e.pins == 0 && !e.spilling && !e.dirty && matches!(e.slot, Slot::Ready(_))
            })
            .map(|(k, _)| (state.policy.next_use(*k).unwrap_or(u64::MAX), *k))
            .filter(|(next, _)| *next > soon)
            .collect();
        if later
            .iter()
            .map(|(_, k)| state.entries[k].bytes)
            .sum::<u64>()
            < bytes
        {
            return false;
        }
        later.sort_unstable_by(|a, b| b.cmp(a));
        let mut freed = 0;
        for (_, victim) in later {
            if freed >= bytes {
                break;
            }
            freed += state.drop_clean(victim);
            self.metrics.cache_evictions.add(1);
        }
        true
    }

    fn read_back(
        &self,
        file: &SpillFile,
        shape: &[u64],
        io: &mut Reservation,
    ) -> Result<(Block<T>, u64)> {
        let spill = self
            .spill
            .as_ref()
            .expect("spilled chunks imply a spill manager");
        let bytes = file.raw_bytes();
        io.grow(bytes)?;
        self.decode_spilled(spill, file, shape)
            .map(|block| (block, bytes))
            .inspect_err(|_| io.shrink(bytes))
    }

    /// Reads and checks a spill file into a block of `shape` (memory
    /// reserved by the caller).
    fn decode_spilled(
        &self,
        spill: &SpillManager,
        file: &SpillFile,
        shape: &[u64],
    ) -> Result<Block<T>> {
        let mut data = vec![T::ZERO; file.raw_bytes() as usize / std::mem::size_of::<T>()];
        spill.read(file, bytemuck::cast_slice_mut(&mut data))?;
        let block = Block::from_vec(shape.to_vec(), data)?;
        self.metrics.bytes_unspilled.add(file.stored_bytes());
        Ok(block)
    }

    /// Completes a load started by `get` or `prefetch`: hands the block's
    /// bytes from `io` to the cache and wakes waiters; on failure restores
    /// the entry as it was (spilled) or forgets it.
    fn finish_load(
        &self,
        key: ChunkKey,
        result: Result<(Block<T>, u64)>,
        io: &mut Reservation,
        prefetched: bool,
        spilled: Option<(Arc<SpillFile>, Vec<u64>)>,
    ) -> Result<Option<Pinned<'_, T>>> {
        let mut guard = self.lock();
        let State {
            entries,
            reservation,
            policy,
            ..
        } = &mut *guard;
        let outcome = match result {
            Ok((block, reserved)) => {
                let bytes = block.byte_len() as u64;
                io.transfer_to(reservation, bytes.min(reserved));
                io.shrink(reserved.saturating_sub(bytes));
                let block = Arc::new(block);
                let e = entries
                    .get_mut(&key)
                    .expect("loading entries stay until finished");
                e.slot = Slot::Ready(block.clone());
                e.bytes = bytes;
                e.prefetched = prefetched;
                if let Some((file, _)) = spilled {
                    // The spill file stays as a free second copy.
                    e.spill_copy = Some(file);
                    e.dirty = false;
                }
                policy.on_insert(key);
                // A prefetch does not pin: the chunk waits, evictable, for its user.
                if prefetched {
                    Ok(None)
                } else {
                    policy.on_access(key);
                    e.pins += 1;
                    Ok(Some(Pinned {
                        cache: self,
                        key,
                        block,
                    }))
                }
            }
            Err(err) => {
                match spilled {
                    Some((file, shape)) => {
                        if let Some(e) = entries.get_mut(&key) {
                            e.slot = Slot::Spilled(file, shape);
                        }
                    }
                    None => {
                        entries.remove(&key);
                    }
                }
                Err(err)
            }
        };
        drop(guard);
        self.loaded.notify_all();
        outcome
    }

    /// Adds a chunk produced in memory (e.g. an intermediate result). Its
    /// bytes move from `io` (which must hold them) to the cache. `dirty`
    /// chunks have no durable copy and are spilled when evicted.
    pub fn insert(&self, key: ChunkKey, block: Block<T>, dirty: bool, io: &mut Reservation) {
        let bytes = block.byte_len() as u64;
        let mut guard = self.lock();
        let State {
            entries,
            reservation,
            policy,
            ..
        } = &mut *guard;
        io.transfer_to(reservation, bytes);
        let mut entry = Entry::loading(false);
        entry.slot = Slot::Ready(Arc::new(block));
        entry.dirty = dirty;
        entry.bytes = bytes;
        if let Some(old) = entries.insert(key, entry) {
            reservation.shrink(old.bytes);
            policy.on_remove(key);
        }
        policy.on_insert(key);
    }

    /// Forgets `key` (its data is no longer needed), freeing its memory and
    /// deleting its spill file. Pinned readers keep their copy until they
    /// drop it.
    pub fn remove(&self, key: ChunkKey) {
        let mut guard = self.lock();
        let State {
            entries,
            reservation,
            policy,
            ..
        } = &mut *guard;
        if entries
            .get(&key)
            .is_some_and(|e| matches!(e.slot, Slot::Loading))
        {
            return; // a load is finishing it; it will be evicted later if unused
        }
        if let Some(e) = entries.remove(&key) {
            reservation.shrink(e.bytes);
            policy.on_remove(key);
        }
    }

    /// Forgets `key` once its current pins are dropped (now when there are
    /// none): no later use is planned.
    pub fn remove_after_use(&self, key: ChunkKey) {
        let mut guard = self.lock();
        match guard.entries.get_mut(&key) {
            Some(e) if e.pins > 0 => e.last_use = true,
            Some(e) if matches!(e.slot, Slot::Loading) => {}
            Some(_) => {
                drop(guard);
                self.remove(key);
            }
            None => {}
        }
    }

    /// Evicts up to `bytes`: unpinned clean chunks are dropped, dirty ones
    /// spilled; clean ones go first unless the policy knows the future (see
    /// [`EvictionPolicy::knows_future`]).
    fn evict(&self, bytes: u64) -> u64 {
        let mut freed = 0;
        while freed < bytes {
            let mut guard = self.lock();
            let State {
                entries, policy, ..
            } = &mut *guard;
            let evictable = |dirty: bool| -> Vec<ChunkKey> {
                entries
                    .iter()
                    .filter(|(_, e)| {
                        e.pins == 0
                            && !e.spilling
                            && e.dirty == dirty
                            && matches!(e.slot, Slot::Ready(_))
                    })
                    .map(|(k, _)| *k)
                    .collect()
            };
            // Clean chunks first (dropping costs nothing now) — unless the
            // policy knows the future, then it weighs every chunk.
            let clean = evictable(false);
            let dirty = evictable(true);
            let clean_victim = if policy.knows_future() {
                let all: Vec<ChunkKey> = clean.iter().chain(&dirty).copied().collect();
                policy.victim(&all).filter(|v| clean.contains(v))
            } else {
                policy.victim(&clean)
            };
            if let Some(victim) = clean_victim {
                freed += guard.drop_clean(victim);
                self.metrics.cache_evictions.add(1);
                continue;
            }
            let Some(spill) = self.spill.clone() else {
                break;
            };
            let Some(victim) = policy.victim(&dirty) else {
                break;
            };
            let e = entries.get_mut(&victim).expect("candidate exists");
            let Slot::Ready(block) = &e.slot else {
                unreachable!("candidates are ready")
            };
            let block = block.clone();
            e.spilling = true;
            let (demote, first_tier) = self.make_room(&mut guard, &spill, victim, &block);
            drop(guard);
            // Outside the lock: move what is needed later down a tier, then
            // write; readers may still use the block meanwhile.
            for file in demote {
                match spill.demote(&file) {
                    Ok(true) => self.metrics.spill_demotions.add(1),
                    Ok(false) => {}
                    Err(err) => tracing::warn!(error = %err, "demoting a spill file failed"),
                }
            }
            let written = spill.write_from(first_tier, bytemuck::cast_slice(block.as_slice()));
            let mut guard = self.lock();
            let State {
                entries,
                reservation,
                policy,
                stats,
                ..
            } = &mut *guard;
            let Some(e) = entries.get_mut(&victim) else {
                continue; // removed while spilling: its memory is already freed
            };
            e.spilling = false;
            match written {
                Ok(file) => {
                    if file.tier() > 0 {
                        // A new candidate to move up: look again.
                        self.promotion_room_seen
                            .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
                    }
                    stats.spills += 1;
                    self.metrics.bytes_spilled.add(file.stored_bytes());
                    e.dirty = false;
                    if e.pins == 0 {
                        let released = e.bytes;
                        e.slot = Slot::Spilled(Arc::new(file), block.shape().to_vec());
                        e.bytes = 0;
                        reservation.shrink(released);
                        policy.on_remove(victim);
                        stats.evictions += 1;
                        self.metrics.cache_evictions.add(1);
                        freed += released;
                    } else {
                        // Pinned meanwhile: keep it in memory, now clean.
                        e.spill_copy = Some(Arc::new(file));
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "spilling a chunk failed");
                    self.spill_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(err);
                    break;
                }
            }
        }
        freed
    }
}

impl<T: Element> ChunkCache<T> {
    /// Before `victim` is spilled: when the fastest tier lacks room for
    /// it, the spill files there to move down a tier — those the policy
    /// would give up before the victim (needed later, by the schedule) —
    /// and the tier to write the victim from (the next one when it is
    /// itself needed last).
    fn make_room(
        &self,
        state: &mut State<T>,
        spill: &SpillManager,
        victim: ChunkKey,
        block: &Block<T>,
    ) -> (Vec<Arc<SpillFile>>, usize) {
        let need = (block.byte_len() + HEADER_LEN) as u64;
        if !spill.migrates() {
            return (Vec::new(), 0);
        }
        let room = spill.room(0);
        if room >= need {
            return (Vec::new(), 0);
        }
        let mut fast: Vec<(ChunkKey, Arc<SpillFile>)> = state
            .entries
            .iter()
            .filter_map(|(k, e)| {
                let file = match &e.slot {
                    Slot::Spilled(file, _) => Some(file),
                    _ => e.spill_copy.as_ref(),
                }?;
                (*k != victim && file.tier() == 0).then(|| (*k, file.clone()))
            })
            .collect();
        let mut candidates: Vec<ChunkKey> = fast.iter().map(|(k, _)| *k).collect();
        candidates.push(victim);
        let (mut demote, mut freed) = (Vec::new(), 0);
        while room + freed < need {
            // The victim itself needed last (or alone left): it goes down.
            let Some(far) = state.policy.victim(&candidates).filter(|k| *k != victim) else {
                return (demote, 1);
            };
            let Some(at) = fast.iter().position(|(k, _)| *k == far) else {
                break;
            };
            let (_, file) = fast.swap_remove(at);
            candidates.retain(|k| *k != far);
            freed += file.stored_bytes();
            demote.push(file);
        }
        let first = if room + freed >= need { 0 } else { 1 };
        (demote, first)
    }

    /// For chunk `key` when it is only in a spill file, ahead of its use
    /// (the prefetcher's job): reads it back into memory the pool has free
    /// now. Never evicts anything and never waits. Returns what it did.
    ///
    /// # Errors
    /// [`crate::Error::SpillCorrupt`] for a damaged spill file; the chunk
    /// stays spilled, and its user reports the error when it reads it.
    pub fn prefetch_spilled(
        &self,
        key: ChunkKey,
        io: &mut Reservation,
        still_wanted: &dyn Fn() -> bool,
    ) -> Result<SpilledPrefetch> {
        let Some(spill) = self.spill.clone() else {
            return Ok(SpilledPrefetch::Nothing);
        };
        let mut state = self.lock();
        let Some(e) = state.entries.get_mut(&key) else {
            return Ok(SpilledPrefetch::Nothing);
        };
        let Slot::Spilled(file, shape) = &e.slot else {
            return Ok(SpilledPrefetch::Nothing);
        };
        if !still_wanted() {
            return Ok(SpilledPrefetch::Nothing);
        }
        let restore = (file.clone(), shape.clone());
        let bytes = file.raw_bytes();
        if io.try_grow_free(bytes).is_err() {
            return Ok(SpilledPrefetch::NoMemory);
        }
        e.slot = Slot::Loading;
        state.stats.misses += 1;
        self.metrics.cache_misses.add(1);
        drop(state);
        let result = self
            .decode_spilled(&spill, &restore.0, &restore.1)
            .map(|block| (block, bytes))
            .inspect_err(|_| io.shrink(bytes));
        self.finish_load(key, result, io, true, Some(restore))
            .map(|_| SpilledPrefetch::Loaded)
    }

    /// Moves up to the first tier, while it has room, the spill file in a
    /// slower tier whose chunk the schedule uses soonest (for policies that
    /// know it): data needed soon comes back to the fast tier ahead of its
    /// use. The prefetcher calls it; cheap when no file is below the first
    /// tier. Returns whether a file moved.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when copying the file fails (it stays where it
    /// was).
    pub fn promote_soonest(&self) -> Result<bool> {
        let Some(spill) = self.spill.as_ref() else {
            return Ok(false);
        };
        if spill.files_below_first_tier() == 0 || !spill.migrates() {
            return Ok(false);
        }
        use std::sync::atomic::Ordering::Relaxed;
        let room = spill.room(0);
        let seen = self.promotion_room_seen.load(Relaxed);
        if seen != u64::MAX && room <= seen {
            return Ok(false); // nothing fitted that room: wait for more
        }
        let soonest = {
            let state = self.lock();
            // A dirty chunk in memory may be spilled before a promoted
            // file is used, demoting it again if it is needed later: only a
            // file needed sooner than every dirty chunk in memory moves up
            // (measured: the looser rule, sooner than the next victim, moved
            // files back and forth and cost 8 % on a transpose).
            let next_spill = state
                .entries
                .iter()
                .filter(|(_, e)| e.dirty && matches!(e.slot, Slot::Ready(_)))
                .map(|(k, _)| state.policy.next_use(*k).unwrap_or(u64::MAX))
                .min()
                .unwrap_or(u64::MAX);
            state
                .entries
                .iter()
                .filter_map(|(k, e)| match &e.slot {
                    Slot::Spilled(file, _) if file.tier() > 0 && file.stored_bytes() <= room => {
                        Some((state.policy.next_use(*k)?, file.clone()))
                    }
                    _ => None,
                })
                .filter(|(next, _)| *next < next_spill)
                .min_by_key(|(next, _)| *next)
        };
        let Some((_, file)) = soonest else {
            self.promotion_room_seen.store(room, Relaxed);
            return Ok(false);
        };
        self.promotion_room_seen.store(u64::MAX, Relaxed);
        let moved = spill.promote(&file)?;
        if moved {
            self.metrics.spill_promotions.add(1);
        }
        Ok(moved)
    }
}

/// What [`ChunkCache::prefetch_spilled`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpilledPrefetch {
    /// Read the chunk back into memory.
    Loaded,
    /// The pool has not the memory free now.
    NoMemory,
    /// The chunk is not (only) spilled, or no longer wanted.
    Nothing,
}

impl<T: Element> Reclaim for ChunkCache<T> {
    fn reclaim(&self, bytes: u64) -> u64 {
        self.evict(bytes)
    }
}

/// Loads made by `get` always pin.
fn pinned_by_get<T: Element>(p: Option<Pinned<'_, T>>) -> Pinned<'_, T> {
    p.expect("get pins what it loads")
}

impl<T> Entry<T> {
    fn loading(prefetched: bool) -> Self {
        Self {
            slot: Slot::Loading,
            pins: 0,
            dirty: false,
            spilling: false,
            spill_copy: None,
            prefetched,
            last_use: false,
            bytes: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PolicyKind, SpillCodec, SpillDirSpec};
    use std::sync::atomic::{AtomicU64, Ordering};

    const CHUNK: u64 = 8 * 100; // 100 f64

    fn block(v: f64) -> Block<f64> {
        Block::filled(vec![100], v)
    }

    fn setup(limit: u64, dir: &std::path::Path) -> (MemoryPool, Arc<ChunkCache<f64>>) {
        let pool = MemoryPool::new(limit);
        let spill = SpillManager::new(
            &[SpillDirSpec {
                path: dir.to_path_buf(),
                cap: None,
            }],
            SpillCodec::Lz4,
        )
        .unwrap();
        let cache = ChunkCache::new(
            &pool,
            PolicyKind::Lru.build(&[]),
            Some(Arc::new(spill)),
            Arc::default(),
        );
        (pool, cache)
    }

    #[test]
    fn loads_once_then_hits() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(10 * CHUNK, dir.path());
        let loads = AtomicU64::new(0);
        let load = || {
            loads.fetch_add(1, Ordering::Relaxed);
            Ok(block(1.0))
        };
        let loader = Loader {
            working_set: 2 * CHUNK,
            load: &load,
        };
        let mut io = pool.reservation("worker");
        let k = ChunkKey::new(0, 7);
        assert_eq!(cache.get(k, &loader, &mut io).unwrap().get(&[3]), 1.0);
        assert_eq!(cache.get(k, &loader, &mut io).unwrap().get(&[3]), 1.0);
        assert_eq!(loads.load(Ordering::Relaxed), 1);
        assert_eq!(io.size(), 0, "the load's working set is returned");
        assert_eq!((cache.bytes(), pool.reserved()), (CHUNK, CHUNK));
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (1, 1));
    }

    #[test]
    fn pressure_drops_clean_chunks_and_spills_dirty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(4 * CHUNK, dir.path());
        let mut io = pool.reservation("worker");
        // Two dirty chunks and one clean one fill 3/4 of the pool.
        for (i, dirty) in [(0, true), (1, true), (2, false)] {
            io.grow(CHUNK).unwrap();
            cache.insert(ChunkKey::new(0, i), block(i as f64), dirty, &mut io);
        }
        let pinned = {
            let never = || -> Result<Block<f64>> { unreachable!("chunk 1 is cached") };
            cache
                .get(
                    ChunkKey::new(0, 1),
                    &Loader {
                        working_set: 0,
                        load: &never,
                    },
                    &mut io,
                )
                .unwrap()
        };
        // A worker needs 3 chunks: the clean one goes first, then the unpinned dirty one spills.
        let mut w = pool.reservation("other worker");
        w.grow(3 * CHUNK).unwrap();
        assert!(!cache.contains(ChunkKey::new(0, 2)), "clean chunk dropped");
        assert!(
            cache.contains(ChunkKey::new(0, 0)) && !cache.in_memory(ChunkKey::new(0, 0)),
            "dirty chunk spilled"
        );
        assert!(cache.in_memory(ChunkKey::new(0, 1)), "pinned chunk kept");
        assert_eq!(cache.stats().spills, 1);
        drop(pinned);
        drop(w);
        // The spilled chunk reads back transparently.
        let never =
            || -> Result<Block<f64>> { unreachable!("spilled chunks come from the spill file") };
        let back = cache
            .get(
                ChunkKey::new(0, 0),
                &Loader {
                    working_set: 0,
                    load: &never,
                },
                &mut io,
            )
            .unwrap();
        assert_eq!(*back, block(0.0));
        assert!(pool.reserved() <= pool.limit());
        drop(back);
        cache.remove(ChunkKey::new(0, 0));
        cache.remove(ChunkKey::new(0, 1));
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn corrupted_spill_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(2 * CHUNK, dir.path());
        let mut io = pool.reservation("worker");
        io.grow(CHUNK).unwrap();
        cache.insert(ChunkKey::new(0, 0), block(5.0), true, &mut io);
        let mut w = pool.reservation("w");
        w.grow(2 * CHUNK).unwrap(); // forces the spill
        drop(w);
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let spilled = std::fs::read_dir(file)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&spilled).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        std::fs::write(&spilled, bytes).unwrap();
        let never = || -> Result<Block<f64>> { unreachable!() };
        let err = cache
            .get(
                ChunkKey::new(0, 0),
                &Loader {
                    working_set: 0,
                    load: &never,
                },
                &mut io,
            )
            .err()
            .unwrap();
        assert!(matches!(err, crate::Error::SpillCorrupt { .. }), "{err}");
    }

    #[test]
    fn prefetch_uses_only_free_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(3 * CHUNK, dir.path());
        let mut io = pool.reservation("prefetch");
        let load = || Ok(block(2.0));
        let loader = Loader {
            working_set: CHUNK,
            load: &load,
        };
        assert!(
            cache
                .prefetch(ChunkKey::new(0, 0), &loader, &mut io, &|| true)
                .unwrap()
        );
        let mut hog = pool.reservation("worker");
        hog.grow(2 * CHUNK).unwrap();
        // The pool is full: a prefetch neither evicts chunk 0 nor waits.
        assert!(
            !cache
                .prefetch(ChunkKey::new(0, 1), &loader, &mut io, &|| true)
                .unwrap()
        );
        assert!(cache.in_memory(ChunkKey::new(0, 0)));
        drop(hog);
        let mut w = pool.reservation("w");
        let p = cache.get(ChunkKey::new(0, 0), &loader, &mut w).unwrap();
        assert_eq!(p.get(&[0]), 2.0);
        assert_eq!(cache.stats().prefetch_hits, 1);
    }

    #[test]
    fn prefetch_makes_room_only_from_chunks_needed_later() {
        let k = |i| ChunkKey::new(0, i);
        let pool = MemoryPool::new(2 * CHUNK);
        let cache = ChunkCache::<f64>::new(
            &pool,
            PolicyKind::Min.build(&[k(0), k(1), k(2)]),
            None,
            Arc::default(),
        );
        let mut io = pool.reservation("prefetch");
        let load = || Ok(block(3.0));
        let loader = Loader {
            working_set: CHUNK,
            load: &load,
        };
        let prefetch =
            |key, io: &mut Reservation| cache.prefetch(key, &loader, io, &|| true).unwrap();
        // Chunks needed at 2 and 1 fill the pool.
        assert!(prefetch(k(2), &mut io));
        assert!(prefetch(k(1), &mut io));
        // Chunk 0, needed first, takes the place of chunk 2, needed last.
        assert!(prefetch(k(0), &mut io));
        assert!(cache.in_memory(k(0)) && cache.in_memory(k(1)));
        assert!(!cache.contains(k(2)));
        assert_eq!(cache.stats().evictions, 1);
        // Chunk 2 is needed after both: it pushes neither out.
        assert!(!prefetch(k(2), &mut io));
        assert!(cache.in_memory(k(0)) && cache.in_memory(k(1)));
        // Its user finds it there.
        let mut w = pool.reservation("worker");
        let pinned = cache.get(k(0), &loader, &mut w).unwrap();
        assert_eq!(pinned.get(&[0]), 3.0);
        assert_eq!(cache.stats().prefetch_hits, 1);
    }

    /// A spilled chunk comes back into free memory ahead of its use (never
    /// by evicting, never once unwanted), and its user finds it there.
    #[test]
    fn spilled_chunks_come_back_into_free_memory_ahead_of_use() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(2 * CHUNK, dir.path());
        let key = ChunkKey::new(0, 0);
        let mut io = pool.reservation("worker");
        io.grow(CHUNK).unwrap();
        cache.insert(key, block(5.0), true, &mut io);
        let mut w = pool.reservation("w");
        w.grow(2 * CHUNK).unwrap(); // forces the spill
        assert!(cache.contains(key) && !cache.in_memory(key));
        let mut ahead = pool.reservation("prefetch");
        let outcome = cache.prefetch_spilled(key, &mut ahead, &|| true);
        assert_eq!(outcome.unwrap(), SpilledPrefetch::NoMemory);
        drop(w);
        let outcome = cache.prefetch_spilled(key, &mut ahead, &|| false);
        assert_eq!(outcome.unwrap(), SpilledPrefetch::Nothing);
        let outcome = cache.prefetch_spilled(key, &mut ahead, &|| true);
        assert_eq!(outcome.unwrap(), SpilledPrefetch::Loaded);
        assert!(cache.in_memory(key));
        assert_eq!(ahead.size(), 0, "the cache holds the chunk's bytes");
        let never = || -> Result<Block<f64>> { unreachable!("prefetched") };
        let loader = Loader {
            working_set: 0,
            load: &never,
        };
        assert_eq!(*cache.get(key, &loader, &mut io).unwrap(), block(5.0));
        assert_eq!(cache.stats().prefetch_hits, 1);
        let outcome = cache.prefetch_spilled(key, &mut ahead, &|| true);
        assert_eq!(outcome.unwrap(), SpilledPrefetch::Nothing, "in memory");
    }

    /// With a MIN schedule and two tiers: when the fast tier is full, the
    /// file needed last moves down so the chunk being spilled (needed
    /// sooner) takes its place; once the fast tier has room again, that
    /// file moves back up ahead of its use. Every chunk reads back intact.
    #[test]
    fn spill_files_move_down_and_up_by_the_schedule() {
        let (fast, slow) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let file_bytes = CHUNK + HEADER_LEN as u64;
        let spill = SpillManager::new(
            &[
                SpillDirSpec {
                    path: fast.path().to_path_buf(),
                    cap: Some(2 * file_bytes + 100),
                },
                SpillDirSpec {
                    path: slow.path().to_path_buf(),
                    cap: None,
                },
            ],
            SpillCodec::None,
        )
        .unwrap()
        .with_migration(crate::memory::SpillMigration::Always);
        let k = |i| ChunkKey::new(0, i);
        // Read back in the order 3, 0, 2, 1 after being written 0, 1, 2, 3.
        let schedule = [k(3), k(0), k(2), k(1)];
        let pool = MemoryPool::new(CHUNK);
        let metrics: Arc<Metrics> = Arc::default();
        let cache = ChunkCache::new(
            &pool,
            PolicyKind::Min.build(&schedule),
            Some(Arc::new(spill)),
            metrics.clone(),
        );
        let mut io = pool.reservation("worker");
        for i in 0..4 {
            // Room for one chunk: each insert spills the one before.
            io.grow(CHUNK).unwrap();
            cache.insert(k(i), block(i as f64), true, &mut io);
        }
        // Chunks 0 and 1 filled the fast tier; spilling 2 (needed before
        // 1) moved 1 down.
        assert_eq!(metrics.spill_demotions.get(), 1);
        let never = || -> Result<Block<f64>> { unreachable!("spilled or in memory") };
        let loader = Loader {
            working_set: 0,
            load: &never,
        };
        let mut read = |i: u64| {
            let value = cache.get(k(i), &loader, &mut io).unwrap().get(&[0]);
            cache.remove(k(i));
            value
        };
        assert_eq!(read(3), 3.0);
        assert!(!cache.promote_soonest().unwrap(), "no room yet");
        assert_eq!(read(0), 0.0);
        // Chunk 0's file is gone: chunk 1 moves up ahead of its use.
        assert!(cache.promote_soonest().unwrap());
        assert_eq!(metrics.spill_promotions.get(), 1);
        assert_eq!(read(2), 2.0);
        assert_eq!(read(1), 1.0);
        assert_eq!(pool.reserved(), 0);
    }

    /// A chunk its user no longer wants (a streamed task already started)
    /// is not read again by a late prefetch.
    #[test]
    fn prefetch_skips_what_is_no_longer_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(3 * CHUNK, dir.path());
        let mut io = pool.reservation("prefetch");
        let load = || -> Result<Block<f64>> { panic!("read a chunk nobody wants") };
        let loader = Loader {
            working_set: CHUNK,
            load: &load,
        };
        let prefetched = cache.prefetch(ChunkKey::new(0, 0), &loader, &mut io, &|| false);
        assert!(!prefetched.unwrap());
        assert!(!cache.contains(ChunkKey::new(0, 0)));
        assert_eq!(io.size(), 0);
    }

    #[test]
    fn concurrent_requests_load_once() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(10 * CHUNK, dir.path());
        let loads = AtomicU64::new(0);
        let load = || {
            loads.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
            Ok(block(3.0))
        };
        let loader = Loader {
            working_set: CHUNK,
            load: &load,
        };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut io = pool.reservation("w");
                    assert_eq!(
                        cache
                            .get(ChunkKey::new(1, 1), &loader, &mut io)
                            .unwrap()
                            .get(&[0]),
                        3.0
                    );
                });
            }
        });
        assert_eq!(loads.load(Ordering::Relaxed), 1);
        assert_eq!(cache.stats().load_waits, 3);
    }

    #[test]
    fn traces_record_requests() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, cache) = setup(10 * CHUNK, dir.path());
        cache.record_trace(true);
        let load = || Ok(block(0.0));
        let loader = Loader {
            working_set: CHUNK,
            load: &load,
        };
        let mut io = pool.reservation("w");
        for i in [1, 2, 1] {
            drop(cache.get(ChunkKey::new(0, i), &loader, &mut io).unwrap());
        }
        let t: Vec<u64> = cache.take_trace().iter().map(|k| k.index).collect();
        assert_eq!(t, vec![1, 2, 1]);
    }
}
