//! The process's own memory, as the kernel counts it: resident set size
//! now (VmRSS) and at its peak (VmHWM). Linux only; `None` elsewhere.

/// Resident set size of this process now (VmRSS), in bytes.
///
/// ```
/// if cfg!(target_os = "linux") {
///     assert!(tenrso_ooc::telemetry::resident_bytes().unwrap() > 0);
/// }
/// ```
pub fn resident_bytes() -> Option<u64> {
    status_kib("VmRSS:")
}

/// Peak resident set size of this process so far (VmHWM), in bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    status_kib("VmHWM:")
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn peak_is_at_least_the_current_size() {
        let now = super::resident_bytes().unwrap();
        let peak = super::peak_resident_bytes().unwrap();
        assert!(now > 0 && peak >= now, "{now} {peak}");
    }
}
