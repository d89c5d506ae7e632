//! The process's global allocator: the library's buffer pool
//! ([`RecyclingAllocator`]) over the allocator chosen at build time, the
//! system's unless the `mimalloc` or `jemalloc` feature picks another
//! (measured in `docs/benchmarks.md`).

use tenrso_ooc::memory::RecyclingAllocator;

#[cfg(feature = "jemalloc")]
type Below = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
type Below = mimalloc_below::MiMallocBelow;
#[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
type Below = std::alloc::System;

#[global_allocator]
static ALLOCATOR: RecyclingAllocator<Below> = RecyclingAllocator::new(Below {});

/// The allocator below the buffer pool, for `info` and reports.
pub const BELOW: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

/// mimalloc, with the `Default` the buffer pool needs to return buffers.
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
mod mimalloc_below {
    use std::alloc::{GlobalAlloc, Layout};

    #[derive(Default)]
    pub struct MiMallocBelow;

    // SAFETY: every call is mimalloc's, with the caller's arguments.
    unsafe impl GlobalAlloc for MiMallocBelow {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's promises hold for mimalloc too.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as above.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as above.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: as above.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}
