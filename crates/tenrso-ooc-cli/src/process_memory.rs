//! The process's own memory: allocator settings and peak resident set size.

/// Tunes glibc's allocator for chunk-sized buffers, so that resident memory
/// tracks the bytes the memory pool has granted.
///
/// - By default glibc serves large blocks with fresh `mmap`s, so every chunk
///   buffer is page-faulted and zeroed anew (measured: half of `verify`'s
///   time). A fixed 32 MiB threshold serves chunk buffers from the heap,
///   where a freed buffer is reused by the next chunk; a 64 MiB trim
///   threshold keeps that memory instead of returning and re-faulting it.
/// - Each thread would get its own heap arena, and a buffer freed by another
///   thread returns to its arena only: with a prefetcher loading chunks that
///   workers free, every arena kept its own high-water mark (measured: a
///   transpose under a 128 MiB limit peaked at 199 MiB RSS; with one arena,
///   135 MiB at the same speed). One arena it is: allocations are per chunk,
///   so its lock is not contended.
/// - Buffers of different sizes (chunks, tiles, spill staging) still
///   fragment the heap, and free pages inside it stay resident: a spilling
///   transpose under 128 MiB peaked at 190 MiB. A thread hands free heap
///   pages back (`malloc_trim`) when more than 32 MiB of the heap is free,
///   checked every 20 ms.
pub fn configure_allocator() {
    // Escape hatch for measuring the allocator's effect.
    if std::env::var_os("TENRSO_OOC_SYSTEM_MALLOC").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is called
    // first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(TRIM_PERIOD_MS));
                // SAFETY: mallinfo2 only reads the allocator's statistics and
                // malloc_trim only returns free heap pages to the OS.
                unsafe {
                    if libc::mallinfo2().fordblks > TRIM_ABOVE_FREE_BYTES {
                        libc::malloc_trim(0);
                    }
                }
            }
        })
        .ok();
}

/// How often the heap's free memory is checked.
const TRIM_PERIOD_MS: u64 = 20;
/// Free heap memory above which pages are handed back: below it, freed
/// buffers stay for reuse (trimming them would make the next allocation
/// page-fault them in again).
const TRIM_ABOVE_FREE_BYTES: usize = 32 << 20;

/// Peak resident set size of this process so far (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
