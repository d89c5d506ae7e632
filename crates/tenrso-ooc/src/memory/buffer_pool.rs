//! [`RecyclingAllocator`]: the buffer pool. Chunk-sized buffers (chunk
//! blocks, tiles, codec and I/O buffers) freed by one task are kept by size
//! class and handed to the next allocation of the same class, so a steady
//! pass over a store touches the same resident pages again instead of
//! mapping, page-faulting and zeroing every chunk anew.
//!
//! It is a global allocator wrapping another one (the system allocator by
//! default): the engine's buffers are ordinary `Vec`s, and decoders that
//! allocate their own buffers are recycled too. A program opts in with
//!
//! ```
//! use tenrso_ooc::memory::RecyclingAllocator;
//! #[global_allocator]
//! static ALLOCATOR: RecyclingAllocator = RecyclingAllocator::system();
//! ```
//!
//! (the `tenrso-ooc` binary and the Python module do). What it keeps is
//! bounded by the memory limit: it counts the chunk-sized bytes in use and
//! the bytes reserved in the pools, and keeps a freed buffer only while the
//! larger of the two plus the kept bytes fit within the limits of the live
//! [`MemoryPool`](crate::memory::MemoryPool)s. An
//! allocation that would not fit first returns kept buffers of other sizes
//! to the allocator below (memory pressure), and when the last pool ends
//! every kept buffer goes back. So recycling never raises resident memory
//! above the limit that the pools enforce.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Buffers of at least this size are recycled; smaller ones go straight to
/// the allocator below, whose heap reuses them (glibc's serves them from
/// its heap up to [`MMAP_THRESHOLD_BYTES`](crate::memory::MMAP_THRESHOLD_BYTES),
/// see [`tune_allocator`](crate::memory::tune_allocator)).
pub const RECYCLE_MIN_BYTES: usize = 32 << 20;

/// Alignment of every recycled buffer (a cache line; enough for any
/// element type and SIMD kernel).
const ALIGN: usize = 64;

/// How many freed buffers are kept at most (the oldest goes first).
const SLOTS: usize = 32;

/// Whether freed buffers are kept ([`enable_recycling`]).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The sum of the limits of the live memory pools.
static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// Bytes of the recyclable buffers in use (their size classes).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Bytes reserved in the live memory pools (buffers of every size, and
/// memory about to be allocated).
static RESERVED: AtomicUsize = AtomicUsize::new(0);
/// Bytes of the kept buffers (their size classes).
static KEPT: AtomicUsize = AtomicUsize::new(0);
/// Allocations served from a kept buffer / from the allocator below.
static REUSED: AtomicU64 = AtomicU64::new(0);
static FRESH: AtomicU64 = AtomicU64::new(0);
/// `release::<A>` of the allocator in use, to return kept buffers when the
/// headroom shrinks (0 until the first buffer is kept).
static RELEASE: AtomicUsize = AtomicUsize::new(0);

/// The kept buffers, oldest first: (address, size class).
static FREE_LIST: Mutex<FreeList> = Mutex::new(FreeList {
    slots: [(0, 0); SLOTS],
    len: 0,
});

struct FreeList {
    slots: [(usize, usize); SLOTS],
    len: usize,
}

impl FreeList {
    /// Takes the newest kept buffer of `class` (its pages are the most
    /// likely still in the CPU caches).
    fn take(&mut self, class: usize) -> Option<usize> {
        let at = (0..self.len).rev().find(|&i| self.slots[i].1 == class)?;
        let (address, _) = self.slots[at];
        self.remove(at);
        Some(address)
    }

    fn remove(&mut self, at: usize) {
        self.slots.copy_within(at + 1..self.len, at);
        self.len -= 1;
        self.slots[self.len] = (0, 0);
    }

    fn push(&mut self, address: usize, class: usize) {
        self.slots[self.len] = (address, class);
        self.len += 1;
    }
}

fn free_list() -> std::sync::MutexGuard<'static, FreeList> {
    // Nothing panics while the lock is held; a poisoned list is still sound.
    FREE_LIST.lock().unwrap_or_else(|p| p.into_inner())
}

/// The size class of a recycled allocation of `size` bytes: rounded up to
/// one of eight steps per power of two (at most 12.5 % more; the pages past
/// `size` are never touched, so they cost address space, not memory).
pub fn size_class(size: usize) -> usize {
    if size < RECYCLE_MIN_BYTES {
        return size;
    }
    let step = (1usize << (usize::BITS - 1 - size.leading_zeros())) / 8;
    size.div_ceil(step).saturating_mul(step)
}

/// The layout a recyclable allocation has below: its size rounded up to
/// its class, aligned to 64; `None` for one passed straight through (small,
/// aligned beyond 64, or too close to `isize::MAX` to round). It depends on
/// the size and alignment only, so an allocation and its deallocation agree.
fn class_of(layout: Layout) -> Option<Layout> {
    if layout.size() < RECYCLE_MIN_BYTES || layout.align() > ALIGN {
        return None;
    }
    Layout::from_size_align(size_class(layout.size()), ALIGN).ok()
}

/// A global allocator that keeps freed chunk-sized buffers for reuse (the
/// buffer pool; see the `memory::buffer_pool` module). `A` is the
/// allocator below: the system's by default, or e.g. mimalloc or jemalloc.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecyclingAllocator<A = System> {
    inner: A,
}

impl RecyclingAllocator<System> {
    /// Recycling over the system allocator.
    pub const fn system() -> Self {
        Self { inner: System }
    }
}

impl<A> RecyclingAllocator<A> {
    /// Recycling over `inner`.
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl<A: GlobalAlloc + Default + 'static> RecyclingAllocator<A> {
    /// A buffer of `class` bytes for an allocation: a kept one if there is
    /// one, else one from below, after returning kept buffers that would
    /// otherwise push in-use plus kept bytes over the limit.
    fn allocate(&self, class: Layout, zeroed: Option<usize>) -> *mut u8 {
        let size = class.size();
        if KEPT.load(Ordering::Relaxed) > 0 {
            let kept = free_list().take(size);
            if let Some(address) = kept {
                KEPT.fetch_sub(size, Ordering::Relaxed);
                LIVE.fetch_add(size, Ordering::Relaxed);
                REUSED.fetch_add(1, Ordering::Relaxed);
                let ptr = address as *mut u8;
                if let Some(len) = zeroed {
                    // SAFETY: the kept buffer holds `size` ≥ `len` bytes.
                    unsafe { ptr.write_bytes(0, len) };
                }
                return ptr;
            }
            release_kept_above(room_beside(size));
        }
        FRESH.fetch_add(1, Ordering::Relaxed);
        // SAFETY: a non-zero size and a power-of-two alignment.
        let ptr = unsafe { self.inner.alloc(class) };
        if !ptr.is_null() {
            LIVE.fetch_add(size, Ordering::Relaxed);
            // Advised before the first touch, zeroed after it (the system
            // allocator would zero a 64-byte-aligned block itself, page by
            // page, before any advice).
            advise_huge_pages(ptr, size);
            if let Some(len) = zeroed {
                // SAFETY: the block holds `size` ≥ `len` bytes.
                unsafe { ptr.write_bytes(0, len) };
            }
        }
        ptr
    }

    /// Keeps a freed buffer if recycling is on and in-use plus kept bytes
    /// stay within the limit; otherwise (or for the oldest buffer it
    /// displaces) frees it below.
    ///
    /// # Safety
    /// `ptr` was allocated here with the class layout of `class`.
    unsafe fn keep_or_free(&self, ptr: *mut u8, class: usize) {
        LIVE.fetch_sub(class, Ordering::Relaxed);
        if ENABLED.load(Ordering::Relaxed) {
            RELEASE.store(release::<A> as *const () as usize, Ordering::Relaxed);
            let mut list = free_list();
            let kept = KEPT.load(Ordering::Relaxed);
            if kept.saturating_add(class) <= room_beside(0) {
                let displaced = (list.len == SLOTS).then(|| {
                    let oldest = list.slots[0];
                    list.remove(0);
                    oldest
                });
                list.push(ptr as usize, class);
                KEPT.fetch_add(class, Ordering::Relaxed);
                drop(list);
                if let Some((address, old_class)) = displaced {
                    KEPT.fetch_sub(old_class, Ordering::Relaxed);
                    // SAFETY: kept buffers were allocated with their class layout.
                    unsafe { release::<A>(address, old_class) };
                }
                return;
            }
        }
        // SAFETY: as the caller promises.
        unsafe { release::<A>(ptr as usize, class) };
    }
}

/// Asks the kernel to back a fresh chunk-sized buffer with transparent huge
/// pages where it can: its first touch then faults once per 2 MiB instead
/// of once per 4 KiB (measured: a sum over 128 MiB chunks spent a third of
/// its time faulting in its first buffers). Advice only: ignored where
/// huge pages are off.
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies within the buffer just allocated;
            // MADV_HUGEPAGE changes how it is backed, never its contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Frees a recycled buffer of `class` bytes with `A`.
///
/// # Safety
/// `address` was allocated by `A` with the class layout of `class`.
unsafe fn release<A: GlobalAlloc + Default>(address: usize, class: usize) {
    // SAFETY: as the caller promises; that layout was valid when allocated.
    unsafe {
        let layout = Layout::from_size_align_unchecked(class, ALIGN);
        A::default().dealloc(address as *mut u8, layout)
    }
}

// SAFETY: every allocation is served by `inner` (directly, or as a buffer
// it allocated earlier with the same class layout, alignment 64 ≥ the
// requested one, and at least the requested size); buffers are freed to
// `inner` with the layout they were allocated with.
unsafe impl<A: GlobalAlloc + Default + 'static> GlobalAlloc for RecyclingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => self.allocate(class, None),
            // SAFETY: the caller's layout, unchanged.
            None => unsafe { self.inner.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => self.allocate(class, Some(layout.size())),
            // SAFETY: the caller's layout, unchanged.
            None => unsafe { self.inner.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            // SAFETY: recyclable allocations use their class layout.
            Some(class) => unsafe { self.keep_or_free(ptr, class.size()) },
            // SAFETY: allocated by `inner` with this layout.
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // SAFETY: allocated by `inner` with `layout`.
            (None, None) => unsafe { self.inner.realloc(ptr, layout, new_size) },
            (Some(old), Some(new)) if old == new => ptr,
            (Some(old), Some(new)) => {
                // Another class: let the allocator below move or resize the
                // block (in place where it can: no copy, no second buffer).
                // SAFETY: allocated by `inner` with `old`; `new` is valid.
                let new_ptr = unsafe { self.inner.realloc(ptr, old, new.size()) };
                if !new_ptr.is_null() {
                    LIVE.fetch_sub(old.size(), Ordering::Relaxed);
                    LIVE.fetch_add(new.size(), Ordering::Relaxed);
                }
                new_ptr
            }
            _ => {
                // SAFETY: a valid layout (the caller's promise).
                let new_ptr = unsafe { self.alloc(new_layout) };
                if !new_ptr.is_null() {
                    // SAFETY: both blocks hold at least the smaller size and
                    // are distinct allocations.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new_ptr
            }
        }
    }
}

/// Turns keeping freed buffers on or off (off until
/// [`tune_allocator`](crate::memory::tune_allocator) turns it on, which it
/// does unless the tuning is turned off). Off, the allocator passes every
/// buffer through. Returns whether it was on.
pub fn enable_recycling(on: bool) -> bool {
    let was = ENABLED.swap(on, Ordering::Relaxed);
    if !on {
        release_kept_above(0);
    }
    was
}

/// A memory pool with `limit` bytes started: kept buffers may use it.
pub(crate) fn pool_started(limit: u64) {
    LIMIT.fetch_add(as_usize(limit), Ordering::Relaxed);
}

/// A memory pool with `limit` bytes ended: kept buffers that no longer fit
/// are returned to the allocator below (all of them with the last pool).
pub(crate) fn pool_ended(limit: u64) {
    LIMIT.fetch_sub(as_usize(limit), Ordering::Relaxed);
    release_kept_above(room_beside(0));
}

/// A pool reserved `bytes` more: kept buffers that no longer fit beside the
/// reservations are returned.
pub(crate) fn reserved_grew(bytes: u64) {
    RESERVED.fetch_add(as_usize(bytes), Ordering::Relaxed);
    if KEPT.load(Ordering::Relaxed) > 0 {
        release_kept_above(room_beside(0));
    }
}

/// A pool released `bytes` of its reservations.
pub(crate) fn reserved_shrank(bytes: u64) {
    RESERVED.fetch_sub(as_usize(bytes), Ordering::Relaxed);
}

fn as_usize(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// The bytes kept buffers may take beside what is in use, and `more`
/// bytes about to be: the limit less the larger of the chunk-sized bytes in
/// use and the bytes reserved in the pools.
fn room_beside(more: usize) -> usize {
    let in_use = LIVE
        .load(Ordering::Relaxed)
        .max(RESERVED.load(Ordering::Relaxed));
    LIMIT
        .load(Ordering::Relaxed)
        .saturating_sub(in_use.saturating_add(more))
}

/// Frees kept buffers, oldest first, until they total at most `bytes`.
fn release_kept_above(bytes: usize) {
    let release_fn = RELEASE.load(Ordering::Relaxed);
    if release_fn == 0 {
        return;
    }
    // SAFETY: RELEASE only ever holds a `release::<A>` for the allocator
    // that allocated the kept buffers.
    let release: unsafe fn(usize, usize) = unsafe { std::mem::transmute(release_fn) };
    loop {
        let oldest = {
            let mut list = free_list();
            if list.len == 0 || KEPT.load(Ordering::Relaxed) <= bytes {
                return;
            }
            let oldest = list.slots[0];
            list.remove(0);
            KEPT.fetch_sub(oldest.1, Ordering::Relaxed);
            oldest
        };
        // SAFETY: kept buffers were allocated with their class layout.
        unsafe { release(oldest.0, oldest.1) };
    }
}

/// What the buffer pool did so far in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferPoolStats {
    /// Chunk-sized allocations served from a kept buffer (no page faults).
    pub reused: u64,
    /// Chunk-sized allocations served by the allocator below.
    pub fresh: u64,
    /// Bytes kept for reuse now.
    pub kept_bytes: u64,
}

/// The buffer pool's counters (all zero when [`RecyclingAllocator`] is not
/// the global allocator).
pub fn buffer_pool_stats() -> BufferPoolStats {
    BufferPoolStats {
        reused: REUSED.load(Ordering::Relaxed),
        fresh: FRESH.load(Ordering::Relaxed),
        kept_bytes: KEPT.load(Ordering::Relaxed) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        assert_eq!(size_class(100), 100);
        assert_eq!(size_class(64 << 20), 64 << 20);
        assert_eq!(size_class((64 << 20) + 4), 72 << 20);
        assert_eq!(size_class(128 << 20), 128 << 20);
        for size in [
            RECYCLE_MIN_BYTES,
            5_000_000,
            67_108_868,
            134_217_727,
            1 << 40,
        ] {
            let class = size_class(size);
            assert!(
                class >= size && class - size <= size / 8,
                "{size} -> {class}"
            );
            assert_eq!(size_class(class), class);
        }
        assert_eq!(size_class(usize::MAX), usize::MAX);
    }

    #[test]
    fn only_chunk_sized_plainly_aligned_layouts_are_recycled() {
        let layout = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class_of(layout(1 << 20, 8)), None);
        assert_eq!(class_of(layout(64 << 20, 4096)), None);
        assert_eq!(
            class_of(layout((64 << 20) + 4, 8)),
            Some(layout(72 << 20, ALIGN))
        );
        // Too close to isize::MAX to round up: passed through, no panic.
        assert_eq!(class_of(layout(isize::MAX as usize - 64, 8)), None);
    }
}
