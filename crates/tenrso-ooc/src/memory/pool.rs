//! [`MemoryPool`] and its RAII [`Reservation`]s.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::core::{Error, Result};

/// Something that can give memory back to the pool on request: the chunk
/// cache drops clean chunks and spills dirty ones.
pub trait Reclaim: Send + Sync {
    /// Frees up to `bytes` (shrinking the implementor's own reservations);
    /// returns how many bytes were freed.
    fn reclaim(&self, bytes: u64) -> u64;
}

/// The memory budget of one session: a hard limit shared by named consumers.
///
/// Every large buffer — chunk blocks, accumulators, codec buffers,
/// prefetched data, spill staging — is accounted for by a [`Reservation`]
/// obtained from the pool. Reservations are RAII: dropping one returns its
/// bytes.
///
/// ```text
///   limit ────────────────────────────────────────────────┐
///   ┌──────────────┬──────────┬──────────┬──────────────┐ │
///   │ chunk cache  │ worker 0 │ worker 1 │  prefetch    │ free
///   │ (reclaimable)│          │          │              │
///   └──────────────┴──────────┴──────────┴──────────────┘ │
///        ▲ reclaim: drop clean, spill dirty                │
/// ```
///
/// Growing a reservation first takes free bytes, then asks reclaimable
/// consumers (the cache) to give memory back, then — for [`Reservation::grow`]
/// — waits for other consumers to release theirs. That wait is the
/// back-pressure that keeps producers from overshooting. When no consumer
/// can make progress (every active consumer is itself waiting and nothing is
/// reclaimable) the request fails at once with an error naming the limit,
/// the request and the largest consumers, instead of hanging.
///
/// ```
/// use tenrso_ooc::memory::MemoryPool;
/// let pool = MemoryPool::new(100);
/// let mut a = pool.reservation("reader");
/// a.try_grow(60).unwrap();
/// let mut b = pool.reservation("writer");
/// assert!(b.try_grow(50).is_err()); // 60 + 50 > 100
/// drop(a); // RAII: the reader's 60 bytes return to the pool
/// b.try_grow(50).unwrap();
/// assert_eq!((pool.reserved(), pool.peak()), (50, 60));
/// ```
#[derive(Clone)]
pub struct MemoryPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    limit: u64,
    state: Mutex<PoolState>,
    changed: Condvar,
    reclaimers: Mutex<Vec<Weak<dyn Reclaim>>>,
    /// How long a waiting `grow` tolerates a pool where nothing at all
    /// happens before declaring that no progress is possible.
    stall_timeout: Duration,
}

#[derive(Default)]
struct PoolState {
    reserved: u64,
    peak: u64,
    next_id: u64,
    consumers: BTreeMap<u64, Consumer>,
    /// Bumped whenever memory is freed, so waiters can tell activity apart
    /// from silence.
    releases: u64,
}

struct Consumer {
    name: String,
    held: u64,
    waiting: bool,
    reclaimable: bool,
}

impl std::fmt::Debug for MemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPool")
            .field("limit", &self.inner.limit)
            .field("reserved", &self.reserved())
            .finish()
    }
}

impl MemoryPool {
    /// A pool with a hard limit of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self::with_stall_timeout(limit, Duration::from_secs(30))
    }

    /// A pool whose waiting requests give up after `stall_timeout` without
    /// any memory being released anywhere (the backstop of the no-progress
    /// detection; mainly for tests).
    pub fn with_stall_timeout(limit: u64, stall_timeout: Duration) -> Self {
        super::buffer_pool::pool_started(limit);
        Self {
            inner: Arc::new(PoolInner {
                limit,
                state: Mutex::new(PoolState::default()),
                changed: Condvar::new(),
                reclaimers: Mutex::new(Vec::new()),
                stall_timeout,
            }),
        }
    }

    /// The hard limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes currently reserved.
    pub fn reserved(&self) -> u64 {
        self.inner.lock().reserved
    }

    /// Bytes free under the limit.
    pub fn available(&self) -> u64 {
        self.inner.limit.saturating_sub(self.reserved())
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.inner.lock().peak
    }

    /// A new, empty reservation for a consumer called `name`.
    pub fn reservation(&self, name: impl Into<String>) -> Reservation {
        self.register(name.into(), false)
    }

    /// A new, empty reservation for a passive consumer: one that never waits
    /// for memory itself and whose memory, if any, a [`Reclaim`]
    /// implementation frees on request (the chunk cache, the prefetcher). The
    /// no-progress detection does not count on passive consumers to release
    /// memory by themselves.
    pub fn reclaimable_reservation(&self, name: impl Into<String>) -> Reservation {
        self.register(name.into(), true)
    }

    fn register(&self, name: String, reclaimable: bool) -> Reservation {
        let mut state = self.inner.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.consumers.insert(
            id,
            Consumer {
                name,
                held: 0,
                waiting: false,
                reclaimable,
            },
        );
        Reservation {
            pool: self.inner.clone(),
            id,
            size: 0,
        }
    }

    /// Registers something that can free memory when the pool is full.
    pub fn add_reclaimer(&self, reclaimer: Weak<dyn Reclaim>) {
        self.inner
            .reclaimers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reclaimer);
    }

    /// Current consumers and their bytes, largest first.
    pub fn consumers(&self) -> Vec<(String, u64)> {
        top_consumers(&self.inner.lock(), usize::MAX)
    }
}

impl crate::telemetry::PoolGauges for MemoryPool {
    fn reserved(&self) -> u64 {
        MemoryPool::reserved(self)
    }
    fn peak(&self) -> u64 {
        MemoryPool::peak(self)
    }
    fn limit(&self) -> u64 {
        MemoryPool::limit(self)
    }
}

fn top_consumers(state: &PoolState, n: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = state
        .consumers
        .values()
        .filter(|c| c.held > 0)
        .map(|c| (c.name.clone(), c.held))
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

impl Drop for PoolInner {
    /// The buffer pool keeps freed buffers only within the live pools' limits.
    fn drop(&mut self) {
        super::buffer_pool::pool_ended(self.limit);
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks every live reclaimer to free memory until `bytes` are freed.
    fn reclaim(&self, bytes: u64) -> u64 {
        let reclaimers: Vec<Arc<dyn Reclaim>> = {
            let mut list = self.reclaimers.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let mut freed = 0;
        for r in reclaimers {
            if freed >= bytes {
                break;
            }
            freed += r.reclaim(bytes - freed);
        }
        freed
    }

    fn exhausted(&self, state: &PoolState, id: u64, requested: u64, reason: &str) -> Error {
        let (consumer, held) = state
            .consumers
            .get(&id)
            .map_or_else(|| (String::new(), 0), |c| (c.name.clone(), c.held));
        Error::memory_exhausted(
            self.limit,
            consumer,
            requested,
            held,
            self.limit.saturating_sub(state.reserved),
            top_consumers(state, 3),
            reason,
        )
    }
}

/// Bytes held in a [`MemoryPool`] on behalf of one named consumer; returned
/// to the pool when dropped.
pub struct Reservation {
    pool: Arc<PoolInner>,
    id: u64,
    size: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("size", &self.size)
            .finish()
    }
}

impl Reservation {
    /// Bytes held.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The consumer's name.
    pub fn consumer(&self) -> String {
        self.pool
            .lock()
            .consumers
            .get(&self.id)
            .map_or_else(String::new, |c| c.name.clone())
    }

    fn take(&mut self, state: &mut PoolState, bytes: u64) -> bool {
        if state.reserved + bytes > self.pool.limit {
            return false;
        }
        state.reserved += bytes;
        state.peak = state.peak.max(state.reserved);
        super::buffer_pool::reserved_grew(bytes);
        if let Some(c) = state.consumers.get_mut(&self.id) {
            c.held += bytes;
        }
        self.size += bytes;
        true
    }

    /// Grows by `bytes` if they are free now (after asking reclaimable
    /// consumers to give memory back), without waiting.
    ///
    /// # Errors
    /// [`Error::MemoryExhausted`] when the bytes cannot be had now.
    pub fn try_grow(&mut self, bytes: u64) -> Result<()> {
        if self.take(&mut self.pool.clone().lock(), bytes) {
            return Ok(());
        }
        let pool = self.pool.clone();
        let shortfall = pool.lock().reserved + bytes - pool.limit;
        pool.reclaim(shortfall);
        let mut state = pool.lock();
        if self.take(&mut state, bytes) {
            Ok(())
        } else {
            Err(pool.exhausted(&state, self.id, bytes, "not enough free memory"))
        }
    }

    /// Grows by `bytes` only if they are free now, without asking anyone to
    /// give memory back and without waiting (for prefetch, which must never
    /// push out data needed sooner).
    ///
    /// # Errors
    /// [`Error::MemoryExhausted`] when the bytes are not free.
    pub fn try_grow_free(&mut self, bytes: u64) -> Result<()> {
        let pool = self.pool.clone();
        let mut state = pool.lock();
        if self.take(&mut state, bytes) {
            Ok(())
        } else {
            Err(pool.exhausted(&state, self.id, bytes, "not enough free memory"))
        }
    }

    /// Grows by `bytes`, waiting for other consumers to release memory if
    /// needed (back-pressure).
    ///
    /// # Errors
    /// [`Error::MemoryExhausted`] at once when `bytes` alone exceed what the
    /// limit leaves this consumer, or when no progress is possible: every
    /// other active consumer is waiting too and nothing can be reclaimed (or
    /// nothing at all was released for the pool's stall timeout).
    pub fn grow(&mut self, bytes: u64) -> Result<()> {
        let pool = self.pool.clone();
        if self.size + bytes > pool.limit {
            let state = pool.lock();
            return Err(pool.exhausted(
                &state,
                self.id,
                bytes,
                "the request alone exceeds the limit",
            ));
        }
        let mut last_activity = Instant::now();
        let mut seen_releases = pool.lock().releases;
        loop {
            if self.take(&mut pool.lock(), bytes) {
                return Ok(());
            }
            let shortfall = pool
                .lock()
                .reserved
                .saturating_add(bytes)
                .saturating_sub(pool.limit);
            let reclaimed = pool.reclaim(shortfall);
            let mut state = pool.lock();
            if self.take(&mut state, bytes) {
                return Ok(());
            }
            if state.releases != seen_releases || reclaimed > 0 {
                seen_releases = state.releases;
                last_activity = Instant::now();
            }
            let others_active = state
                .consumers
                .iter()
                .any(|(id, c)| *id != self.id && !c.waiting && !c.reclaimable);
            if !others_active && reclaimed == 0 {
                return Err(pool.exhausted(
                    &state,
                    self.id,
                    bytes,
                    "no other consumer can release memory (all are waiting)",
                ));
            }
            if last_activity.elapsed() >= pool.stall_timeout {
                return Err(pool.exhausted(
                    &state,
                    self.id,
                    bytes,
                    "no memory was released while waiting",
                ));
            }
            if let Some(c) = state.consumers.get_mut(&self.id) {
                c.waiting = true;
            }
            // Wake on any release; re-check periodically because reclaimable
            // memory can become free (unpinned) without a pool event.
            let (mut state, _) = pool
                .changed
                .wait_timeout(state, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner());
            if let Some(c) = state.consumers.get_mut(&self.id) {
                c.waiting = false;
            }
        }
    }

    /// Returns `bytes` (at most what is held) to the pool.
    pub fn shrink(&mut self, bytes: u64) {
        let bytes = bytes.min(self.size);
        if bytes == 0 {
            return;
        }
        let mut state = self.pool.lock();
        state.reserved -= bytes;
        super::buffer_pool::reserved_shrank(bytes);
        state.releases += 1;
        if let Some(c) = state.consumers.get_mut(&self.id) {
            c.held -= bytes;
        }
        self.size -= bytes;
        drop(state);
        self.pool.changed.notify_all();
    }

    /// Grows or shrinks to exactly `bytes`, waiting if growing.
    ///
    /// # Errors
    /// As [`Reservation::grow`].
    pub fn resize(&mut self, bytes: u64) -> Result<()> {
        if bytes > self.size {
            self.grow(bytes - self.size)
        } else {
            self.shrink(self.size - bytes);
            Ok(())
        }
    }

    /// Returns everything held; returns how many bytes that was.
    pub fn free(&mut self) -> u64 {
        let size = self.size;
        self.shrink(size);
        size
    }

    /// Moves `bytes` (at most what is held) to `other` without touching the
    /// limit: hands memory from a producer to its consumer.
    pub fn transfer_to(&mut self, other: &mut Reservation, bytes: u64) {
        debug_assert!(
            Arc::ptr_eq(&self.pool, &other.pool),
            "reservations of different pools"
        );
        let bytes = bytes.min(self.size);
        let mut state = self.pool.lock();
        if let Some(c) = state.consumers.get_mut(&self.id) {
            c.held -= bytes;
        }
        if let Some(c) = state.consumers.get_mut(&other.id) {
            c.held += bytes;
        }
        self.size -= bytes;
        other.size += bytes;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.free();
        self.pool.lock().consumers.remove(&self.id);
        self.pool.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn raii_release_and_peak() {
        let pool = MemoryPool::new(1000);
        {
            let mut r = pool.reservation("a");
            r.try_grow(700).unwrap();
            r.shrink(200);
            assert_eq!(pool.reserved(), 500);
            assert_eq!(pool.consumers(), vec![("a".to_string(), 500)]);
        }
        assert_eq!(pool.reserved(), 0);
        assert_eq!(pool.peak(), 700);
        assert!(pool.consumers().is_empty());
    }

    #[test]
    fn try_grow_error_names_the_numbers() {
        let pool = MemoryPool::new(1 << 20);
        let mut big = pool.reservation("chunk cache");
        big.try_grow(900 << 10).unwrap();
        let mut r = pool.reservation("worker 3");
        let err = r.try_grow(200 << 10).unwrap_err().to_string();
        assert!(err.contains("1.00 MiB"), "{err}");
        assert!(
            err.contains("worker 3") && err.contains("200.00 KiB"),
            "{err}"
        );
        assert!(err.contains("chunk cache 900.00 KiB"), "{err}");
    }

    #[test]
    fn grow_waits_for_a_release_then_proceeds() {
        let pool = MemoryPool::new(100);
        let mut holder = pool.reservation("holder");
        holder.grow(80).unwrap();
        let p = pool.clone();
        let waiter = std::thread::spawn(move || {
            let mut r = p.reservation("producer");
            let start = Instant::now();
            r.grow(50).unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pool.reserved(), 80, "the producer must not overshoot");
        holder.shrink(40);
        let waited = waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(90), "waited {waited:?}");
        assert!(pool.peak() <= 100);
    }

    #[test]
    fn no_progress_is_an_error_not_a_hang() {
        let pool = MemoryPool::new(100);
        // A request that alone exceeds the limit fails at once.
        let mut a = pool.reservation("a");
        a.grow(60).unwrap();
        let err = a.grow(50).unwrap_err().to_string();
        assert!(err.contains("alone exceeds"), "{err}");
        a.shrink(50);

        // Pinned cache memory that cannot be reclaimed, and no other active
        // consumer: waiting could never succeed.
        let mut pinned = pool.reclaimable_reservation("cache (pinned)");
        pinned.grow(50).unwrap();
        let start = Instant::now();
        let err = a.grow(50).unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(err.contains("all are waiting"), "{err}");
        drop(pinned);

        // Two consumers that each wait for the other: one fails, which frees
        // its memory, and the other proceeds.
        a.resize(40).unwrap();
        let mut b = pool.reservation("b");
        b.grow(40).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b.grow(30)
        });
        let ra = a.grow(30);
        let rb = t.join().unwrap();
        assert!(ra.is_ok() && rb.is_err(), "{ra:?} {rb:?}");
    }

    #[test]
    fn stall_timeout_is_the_backstop() {
        let pool = MemoryPool::with_stall_timeout(100, Duration::from_millis(100));
        let _idle = pool.reservation("idle but active"); // never waits, never frees
        let mut hog = pool.reservation("hog");
        hog.grow(90).unwrap();
        let mut r = pool.reservation("r");
        let start = Instant::now();
        let err = r.grow(20).unwrap_err().to_string();
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(err.contains("no memory was released"), "{err}");
    }

    struct Cache {
        res: Mutex<Reservation>,
        calls: AtomicU64,
    }

    impl Reclaim for Cache {
        fn reclaim(&self, bytes: u64) -> u64 {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut r = self.res.lock().unwrap();
            let n = bytes.min(r.size());
            r.shrink(n);
            n
        }
    }

    #[test]
    fn reclaimers_are_asked_before_failing() {
        let pool = MemoryPool::new(100);
        let mut res = pool.reclaimable_reservation("cache");
        res.grow(90).unwrap();
        let cache = Arc::new(Cache {
            res: Mutex::new(res),
            calls: AtomicU64::new(0),
        });
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&cache) as Weak<dyn Reclaim>;
        pool.add_reclaimer(weak);
        let mut r = pool.reservation("worker");
        r.try_grow(50).unwrap();
        assert_eq!(cache.calls.load(Ordering::Relaxed), 1);
        assert_eq!(cache.res.lock().unwrap().size(), 50);
        r.grow(50).unwrap();
        assert_eq!(pool.reserved(), 100);
    }

    #[test]
    fn transfer_moves_bytes_between_consumers() {
        let pool = MemoryPool::new(100);
        let mut reader = pool.reservation("reader");
        let mut cache = pool.reservation("cache");
        reader.grow(40).unwrap();
        reader.transfer_to(&mut cache, 30);
        assert_eq!((reader.size(), cache.size(), pool.reserved()), (10, 30, 40));
        drop(reader);
        assert_eq!(pool.reserved(), 30);
    }
}
