//! Ctrl-C and SIGTERM: cancel the session's run; a second signal exits at once.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use tenrso_ooc::exec::CancelToken;

/// Write end of the self-pipe the signal handler writes to.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// Installs handlers for SIGINT and SIGTERM. A watcher thread, woken through
/// a self-pipe (the only thing done in the handler), cancels `token` on the
/// first signal: the running operation stops after the tasks in flight,
/// releases its memory and removes its spill files and temporaries, and
/// `main` exits with 128 + the signal number ([`exit_code`]). Work that
/// finishes before it next checks the token completes and reports as usual.
/// A second signal removes every spill directory of the process and exits
/// at once. Only a process that `speaks` (rank 0 of an MPI job) says so on
/// stderr.
pub fn install(token: CancelToken, speaks: bool) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) fills the two descriptors of a fresh pipe.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return;
    }
    PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    // SAFETY: the read end is ours alone from here on.
    let mut read_end = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            if read_end.read_exact(&mut byte).is_err() {
                return;
            }
            RECEIVED.store(i32::from(byte[0]), Ordering::Relaxed);
            token.cancel();
            if speaks {
                eprintln!("\ninterrupted: stopping after the tasks in flight (again to exit at once)");
            }
            if read_end.read_exact(&mut byte).is_ok() {
                tenrso_ooc::memory::remove_all_spill_dirs();
                if speaks {
                    eprintln!("\ninterrupted twice: spill files removed; every chunk already written is complete");
                }
                std::process::exit(128 + i32::from(byte[0]));
            }
        });
    if spawned.is_err() {
        return;
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls write(2) on a descriptor that stays open.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// 128 + the number of the signal that interrupted the run, if one did.
pub fn exit_code() -> Option<u8> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        signal => Some((128 + signal) as u8),
    }
}
