//! [`tune_allocator`]: the glibc allocator settings the memory limit relies
//! on.
//!
//! The pool bounds the bytes the library asks for; what the process holds
//! (its resident set size) also depends on how the allocator serves and
//! returns those bytes. With glibc's defaults a run under a 128 MiB limit
//! peaked at up to 199 MiB; with these settings it stays within the limit
//! plus the 64 MiB that DESIGN.md allows.

use std::sync::OnceLock;

/// Blocks of at least this size come from fresh memory mappings; smaller
/// ones from the heap, where a freed chunk buffer is reused by the next.
/// (The planner's page-fault model counts on it.)
pub const MMAP_THRESHOLD_BYTES: u64 = 32 << 20;

/// Free memory at the top of the heap kept for reuse instead of being
/// returned to the system at each `free`.
const TRIM_THRESHOLD_BYTES: u64 = 64 << 20;
/// How often the heap's free memory is checked.
const TRIM_PERIOD: std::time::Duration = std::time::Duration::from_millis(20);
/// Free heap memory above which pages are handed back: below it, freed
/// buffers stay for reuse (trimming them would make the next allocation
/// page-fault them in again).
const TRIM_ABOVE_FREE_BYTES: usize = 32 << 20;

/// The environment variable that turns the tuning and the buffer pool off
/// (to measure their effect): when set, [`tune_allocator`] changes nothing.
pub const SYSTEM_MALLOC_VAR: &str = "TENRSO_OOC_SYSTEM_MALLOC";

/// Tunes glibc's allocator for chunk-sized buffers, so that resident memory
/// tracks the bytes the memory pool has granted. `Session::new` calls it;
/// a program that wants its full effect calls it first thing in `main`,
/// before it starts threads. Returns whether the tuning is in effect.
///
/// What it sets, for the whole process (it is process-global, and the
/// first call does it: later calls change nothing):
///
/// - `M_MMAP_THRESHOLD` = [`MMAP_THRESHOLD_BYTES`] (32 MiB). By default
///   glibc serves large blocks with fresh `mmap`s, so every chunk buffer is
///   page-faulted and zeroed anew (measured: half of `verify`'s time), and
///   its threshold moves with the sizes freed. A fixed threshold serves
///   chunk buffers from the heap, where a freed buffer is reused by the
///   next chunk; `M_TRIM_THRESHOLD` = 64 MiB keeps that memory instead of
///   returning and re-faulting it.
/// - `M_ARENA_MAX` = 1. Each thread would get its own heap arena, and a
///   buffer freed by another thread returns to its arena only: with a
///   prefetcher loading chunks that workers free, every arena kept its own
///   high-water mark (measured: a transpose under a 128 MiB limit peaked at
///   199 MiB RSS; with one arena, 135 MiB at the same speed). Allocations
///   are per chunk, so the one arena's lock is not contended. Arenas that
///   threads created before the call stay.
/// - A thread `malloc-trim` hands free heap pages back (`malloc_trim`)
///   when more than 32 MiB of the heap is free, checked every 20 ms:
///   buffers of different sizes (chunks, tiles, spill staging) fragment
///   the heap, and free pages inside it stay resident (a spilling transpose
///   under 128 MiB peaked at 190 MiB without it).
///
/// It also turns on the buffer pool's recycling of freed chunk-sized
/// buffers ([`RecyclingAllocator`](crate::memory::RecyclingAllocator), when
/// it is the global allocator), on every target.
///
/// Only glibc on Linux is tuned; on other targets (musl, macOS, …) this is
/// a no-op that returns `false`, as it does when the environment variable
/// [`SYSTEM_MALLOC_VAR`] is set.
///
/// ```
/// // Idempotent: the second call changes nothing and says the same.
/// assert_eq!(tenrso_ooc::memory::tune_allocator(), tenrso_ooc::memory::tune_allocator());
/// ```
pub fn tune_allocator() -> bool {
    static TUNED: OnceLock<bool> = OnceLock::new();
    *TUNED.get_or_init(|| {
        let tuned = std::env::var_os(SYSTEM_MALLOC_VAR).is_none();
        super::enable_recycling(tuned);
        tuned && apply()
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes glibc's tuning parameters, under the
    // allocator's own lock, so other threads may be allocating meanwhile.
    // The values fit an `int`.
    let set = unsafe {
        [
            libc::mallopt(libc::M_ARENA_MAX, 1),
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES as libc::c_int),
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES as libc::c_int),
        ]
    };
    let trimming = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_PERIOD);
                // SAFETY: mallinfo2 only reads the allocator's statistics and
                // malloc_trim only returns free heap pages to the system.
                unsafe {
                    if libc::mallinfo2().fordblks > TRIM_ABOVE_FREE_BYTES {
                        libc::malloc_trim(0);
                    }
                }
            }
        })
        .is_ok();
    // mallopt returns 1 on success.
    set.iter().all(|&r| r == 1) && trimming
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads of this process named `name`.
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|comm| comm.trim() == name)
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn tuning_is_applied_once() {
        let first = tune_allocator();
        assert_eq!(tune_allocator(), first);
        let expected = cfg!(all(target_os = "linux", target_env = "gnu"))
            && std::env::var_os(SYSTEM_MALLOC_VAR).is_none();
        assert_eq!(first, expected);
        // One trim thread (it names itself once it runs).
        let mut trimmers = threads_named("malloc-trim");
        for _ in 0..200 {
            if trimmers == usize::from(expected) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            trimmers = threads_named("malloc-trim");
        }
        assert_eq!(trimmers, usize::from(expected));
        // Buffers of chunk size still work (and come from the heap).
        let buffer = vec![1u8; (MMAP_THRESHOLD_BYTES / 2) as usize];
        assert_eq!(
            buffer.iter().map(|&b| u64::from(b)).sum::<u64>(),
            MMAP_THRESHOLD_BYTES / 2
        );
    }
}
