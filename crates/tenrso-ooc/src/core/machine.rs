//! What this machine has: the memory this process may use.

use std::sync::OnceLock;

/// Memory this process may use, in bytes: physical memory from
/// `/proc/meminfo`, or the cgroup's limit (containers) when lower.
pub fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let total = kib.saturating_mul(1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .find_map(|v| v.trim().parse::<u64>().ok());
    Some(cgroup.map_or(total, |c| c.min(total)))
}

/// [`physical_memory`], read once; `u64::MAX` when it cannot be read.
pub(crate) fn physical_memory_cached() -> u64 {
    static MEMORY: OnceLock<u64> = OnceLock::new();
    *MEMORY.get_or_init(|| physical_memory().unwrap_or(u64::MAX))
}
