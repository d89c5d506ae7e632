//! [`read_elements_at`]: positioned reads straight into an element buffer;
//! [`map_elements_at`]: the same elements read in place through a mapping.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use bytemuck::Pod;

use crate::core::MappedElements;

/// Chunks of at least this many bytes are read in place, through a
/// read-only mapping of the page cache ([`map_elements_at`]), where the
/// reader asks for it, instead of copied into a buffer. One thread
/// checksumming chunks from a warm page cache on an Intel Xeon, mapped
/// against copied: 8.0 against 5.7 GB/s for 8 MiB chunks, 8.4 against 6.2
/// for 4 MiB, 7.3 against 6.5 for 1 MiB, the same for 256 KiB (a copy
/// into a reused buffer that small stays in the CPU caches).
pub const MAP_MIN_BYTES: u64 = 4 << 20;

/// The environment variable that turns reading chunks in place off (to
/// measure its effect): when set, every chunk is copied into a buffer.
pub const NO_CHUNK_MAPS_VAR: &str = "TENRSO_OOC_NO_CHUNK_MAPS";

/// Whether chunks of [`MAP_MIN_BYTES`] or more are read in place (unless
/// [`NO_CHUNK_MAPS_VAR`] is set; read once per process).
pub fn chunk_maps_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os(NO_CHUNK_MAPS_VAR).is_none())
}

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

/// Maps `count` elements of `T` of `file` at byte `offset`, read-only,
/// with every page faulted in at once (`MAP_POPULATE`: for pages in the
/// page cache that maps them without copying), then hands the bytes to
/// `on_read` in the same pieces as [`read_elements_at`]. `None`, with
/// nothing handed to `on_read`, when the file cannot be mapped (some file
/// systems cannot) or the mapping is not aligned for `T`: the caller reads
/// a copy instead.
///
/// The file must not shrink while the elements live (a read of a page
/// past its end would kill the process): the store replaces chunk files
/// by renaming new ones over them and never truncates one in place.
///
/// # Errors
/// The I/O error, or `UnexpectedEof` when the file ends first.
pub(crate) fn map_elements_at<T: Pod>(
    file: &File,
    offset: u64,
    count: usize,
    mut on_read: impl FnMut(&[u8]),
) -> std::io::Result<Option<MappedElements<T>>> {
    let bytes = count * std::mem::size_of::<T>();
    if file.metadata()?.len() < offset.saturating_add(bytes as u64) {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    // SAFETY: the mapping is read-only and private to the returned value;
    // the file holds `offset + bytes` bytes (checked above) and the store
    // never truncates a chunk file (see above).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(bytes)
            .populate()
            .map(file)
    };
    let Ok(map) = map else {
        return Ok(None);
    };
    let Some(elements) = MappedElements::<T>::new(map, count) else {
        return Ok(None);
    };
    let bytes: &[u8] = bytemuck::cast_slice(elements.as_slice());
    for piece in bytes.chunks(READ_PIECE_BYTES) {
        on_read(piece);
    }
    Ok(Some(elements))
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

    #[test]
    fn maps_elements_in_pieces_and_reports_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let values: Vec<f64> = (0..100_000).map(f64::from).collect();
        std::fs::write(&path, bytemuck::cast_slice(&values)).unwrap();
        let file = File::open(&path).unwrap();
        for (first, count) in [(0, 100_000), (10, 99_990), (512, 1)] {
            let mut pieces = Vec::new();
            let got = map_elements_at::<f64>(&file, 8 * first as u64, count, |piece| {
                pieces.push(piece.to_vec())
            })
            .unwrap()
            .unwrap();
            assert_eq!(got.as_slice(), &values[first..first + count]);
            assert!(pieces.iter().all(|p| p.len() <= READ_PIECE_BYTES));
            assert_eq!(
                pieces.concat(),
                bytemuck::cast_slice::<f64, u8>(got.as_slice())
            );
        }
        let err = map_elements_at::<f64>(&file, 8 * 10, 99_991, |_| {}).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        // An offset that leaves the elements unaligned is declined, not read.
        assert!(
            map_elements_at::<f64>(&file, 4, 10, |_| {})
                .unwrap()
                .is_none()
        );
    }
}
