//! [`read_elements_at`]: positioned reads straight into an element buffer.

use std::fs::File;
use std::os::fd::AsRawFd;

use bytemuck::Pod;

/// Bytes read by one pread(2) of [`read_elements_at`]: small enough that a
/// piece is still in the core's L2 cache when `on_read` looks at it.
const READ_PIECE_BYTES: usize = 256 << 10;

/// Reads `count` elements of `T` from `file` at byte `offset` into a new
/// vector, without first zeroing it (the kernel's copy is the only pass over
/// the memory), handing each piece of bytes to `on_read` as soon as it has
/// landed — a checksum computed there reads the piece from the cache instead
/// of a second pass over the whole buffer from memory.
///
/// # Errors
/// The I/O error, or `UnexpectedEof` when the file ends first.
pub(crate) fn read_elements_at<T: Pod>(
    file: &File,
    offset: u64,
    count: usize,
    mut on_read: impl FnMut(&[u8]),
) -> std::io::Result<Vec<T>> {
    let bytes = count * std::mem::size_of::<T>();
    let mut out: Vec<T> = Vec::with_capacity(count);
    let base = out.as_mut_ptr().cast::<u8>();
    let mut done = 0usize;
    while done < bytes {
        // SAFETY: `base..base + bytes` lies in `out`'s allocation (capacity
        // `count` elements); pread(2) writes at most `bytes - done` bytes at
        // `base + done`, and no Rust reference to that memory exists yet.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                base.add(done).cast(),
                (bytes - done).min(READ_PIECE_BYTES),
                (offset + done as u64) as libc::off_t,
            )
        };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            n => {
                // SAFETY: pread wrote these `n` bytes just now; the slice
                // ends before any byte not written yet.
                on_read(unsafe { std::slice::from_raw_parts(base.add(done), n as usize) });
                done += n as usize;
            }
        }
    }
    // SAFETY: all `count` elements were written by pread, and every bit
    // pattern is a valid `T` (Pod).
    unsafe { out.set_len(count) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_and_reports_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        std::fs::write(&path, bytemuck::cast_slice(&values)).unwrap();
        let file = File::open(&path).unwrap();
        let mut seen = Vec::new();
        let got: Vec<f64> =
            read_elements_at(&file, 8 * 10, 990, |piece| seen.extend_from_slice(piece)).unwrap();
        assert_eq!(got, values[10..]);
        assert_eq!(seen, bytemuck::cast_slice::<f64, u8>(&got));
        let err = read_elements_at::<f64>(&file, 8 * 10, 991, |_| {}).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
