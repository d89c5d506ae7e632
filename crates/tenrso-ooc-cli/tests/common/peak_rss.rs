//! A child's own peak resident memory (VmHWM), read at its exit.
//!
//! `wait4`'s `ru_maxrss` cannot give it: when a child is started with
//! `vfork` (as `posix_spawn`, and so `std::process::Command`, does), the
//! kernel's `exec` records the high-water RSS of the memory it leaves, the
//! parent's, as the child's; with `fork` it records the parent's current
//! RSS. Either way the test process's own memory (arrays read for a
//! reference, other tests in its threads) is counted as the child's. So
//! the child is traced (`PTRACE_TRACEME` before its `exec`, then
//! `PTRACE_O_TRACEEXIT`) and stopped just before it leaves its memory,
//! where `/proc/PID/status` still shows its VmHWM. Only `exec`, exit and
//! signal deliveries stop it: its speed is unchanged.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd`'s child ask to be traced by the thread that spawns it;
/// [`wait_for_exit`] must then reap it from that same thread. Where tracing
/// is not allowed (a sandbox without ptrace) the child runs untraced and
/// [`wait_for_exit`] falls back to an upper bound.
pub fn trace_until_exit(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // makes the ptrace(2) system call, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            Ok(())
        });
    }
}

/// Reaps the traced child `pid`: its exit code (None when a signal killed
/// it) and its peak RSS in bytes, read when it stopped before its exit.
/// Should that stop not come (an untraced child, or one killed by SIGKILL,
/// which may skip it), the peak is `wait4`'s `ru_maxrss`, an upper bound
/// that counts the test process too.
pub fn wait_for_exit(pid: u32) -> (Option<i32>, u64) {
    let pid = pid as libc::pid_t;
    let mut seen_exec = false;
    let mut peak = None;
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain old data that wait4 fills.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child, not yet reaped; pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
            continue;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            return (code, peak.unwrap_or(usage.ru_maxrss as u64 * 1024));
        }
        assert!(libc::WIFSTOPPED(status), "wait4 status {status:#x}");
        let signal = libc::WSTOPSIG(status);
        let event = status >> 16;
        let deliver = if event == libc::PTRACE_EVENT_EXIT {
            peak = Some(vm_hwm(pid));
            0
        } else if signal == libc::SIGTRAP && !seen_exec {
            // The stop after exec: from here on, stop again before exiting.
            seen_exec = true;
            let options = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
            // SAFETY: pid is our tracee, stopped.
            let r = unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) };
            assert_eq!(
                r,
                0,
                "PTRACE_SETOPTIONS: {}",
                std::io::Error::last_os_error()
            );
            0
        } else {
            signal // a signal for the child: deliver it
        };
        // SAFETY: pid is our tracee, stopped; `deliver` is 0 or its signal.
        let r = unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, deliver) };
        assert_eq!(r, 0, "PTRACE_CONT: {}", std::io::Error::last_os_error());
    }
}

/// VmHWM of the live process `pid`, in bytes.
fn vm_hwm(pid: libc::pid_t) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status:\n{status}"))
}
