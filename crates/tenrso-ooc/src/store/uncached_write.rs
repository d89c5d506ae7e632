//! Writing large chunk files around the page cache (`O_DIRECT`).
//!
//! A buffered write copies each byte into a page-cache page the kernel first
//! has to find and clear; for a result written once and not read soon
//! (the output of a large contraction) that copy is CPU time taken from the
//! computation, and the pages push the inputs' cached chunks out. Written
//! with `O_DIRECT`, the device takes the bytes from a small aligned staging
//! buffer instead: on this project's 2-core machines writing 512 MiB took
//! 0.05 s of system time instead of 0.15–1.9 s (the dearer figure when the
//! page cache has to take new pages from the hypervisor).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;

/// Chunk files of at least this many bytes are written around the page
/// cache where the store asks for it (smaller ones are not worth a device
/// round trip of their own).
pub const UNCACHED_WRITE_MIN_BYTES: usize = 4 << 20;

/// The environment variable that turns writing around the page cache off
/// (to measure its effect): when set, every chunk is written buffered.
pub const NO_UNCACHED_WRITES_VAR: &str = "TENRSO_OOC_NO_UNCACHED_WRITES";

/// Whether large chunks may be written around the page cache (unless
/// [`NO_UNCACHED_WRITES_VAR`] is set; read once per process).
pub fn uncached_writes_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os(NO_UNCACHED_WRITES_VAR).is_none())
}

/// Alignment of `O_DIRECT` buffers, offsets and lengths: the page size,
/// which covers devices with 512-byte and 4 KiB logical blocks.
const ALIGN: usize = 4096;

/// Bytes staged and written per `pwrite`: small enough to stay in the core's
/// L2 cache between the copy and the device's read of it.
const PIECE_BYTES: usize = 1 << 20;

thread_local! {
    /// Each writing thread's staging buffer (`PIECE_BYTES` aligned within;
    /// 1 MiB per thread that ever wrote a large chunk, outside the pool).
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes the concatenation of `parts` as the whole content of the existing,
/// empty file at `path`, around the page cache. Returns `Ok(false)`, having
/// written nothing, where the filesystem does not take `O_DIRECT` (some
/// in-memory and network filesystems): the caller then writes it buffered.
///
/// The last piece is padded to the alignment and the file cut back to the
/// content's length, so the file holds exactly the parts.
///
/// # Errors
/// The I/O error of a write the device failed (the file's content is then
/// undefined; the caller's temporary is removed).
pub(crate) fn write_uncached(path: &Path, parts: &[&[u8]]) -> io::Result<bool> {
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(e) => return Err(e),
    };
    let total: usize = parts.iter().map(|p| p.len()).sum();
    STAGING.with(|staging| {
        let mut staging = staging.borrow_mut();
        if staging.len() < PIECE_BYTES + ALIGN {
            *staging = vec![0; PIECE_BYTES + ALIGN];
        }
        let start = staging.as_ptr().align_offset(ALIGN);
        let buffer = &mut staging[start..start + PIECE_BYTES];
        write_pieces(&file, parts, total, buffer)
    })
}

/// [`write_uncached`] once the file is open: stages `parts` piece by piece
/// in `buffer` (aligned, [`PIECE_BYTES`] long) and writes each piece.
fn write_pieces(file: &File, parts: &[&[u8]], total: usize, buffer: &mut [u8]) -> io::Result<bool> {
    let mut bytes = parts.iter().copied();
    let mut offset = 0u64;
    let mut carried: &[u8] = &[];
    loop {
        // Fill the buffer from the parts (a part may straddle buffers).
        let mut filled = 0;
        while filled < buffer.len() {
            if carried.is_empty() {
                match bytes.next() {
                    Some(next) => carried = next,
                    None => break,
                }
            }
            let n = carried.len().min(buffer.len() - filled);
            buffer[filled..filled + n].copy_from_slice(&carried[..n]);
            carried = &carried[n..];
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let padded = filled.next_multiple_of(ALIGN);
        buffer[filled..padded].fill(0);
        match file.write_all_at(&buffer[..padded], offset) {
            Ok(()) => {}
            // The first write tells whether this file takes O_DIRECT.
            Err(e) if offset == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        offset += padded as u64;
        if filled < buffer.len() {
            break;
        }
    }
    if offset != total as u64 {
        file.set_len(total as u64)?;
    }
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes of `path` in the page cache (`mincore` over a mapping).
    pub(crate) fn cached_bytes(path: &Path) -> usize {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        if len == 0 {
            return 0;
        }
        // SAFETY: a read-only private mapping of a file nobody truncates
        // during the test, only passed to mincore (never read).
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        // SAFETY: sysconf only reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: the mapping is `len` bytes long, `resident` has one byte
        // per page of it.
        let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, len, resident.as_mut_ptr()) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        resident.iter().filter(|&&r| r & 1 != 0).count() * page
    }

    /// `len` bytes that differ from piece to piece.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    #[test]
    fn the_file_holds_exactly_the_parts_and_stays_out_of_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        // Parts that straddle pieces, lengths that are and are not aligned.
        let cases: [Vec<usize>; 5] = [
            vec![4 << 20],
            vec![(4 << 20) + 4],
            vec![PIECE_BYTES - 3, 7, 2 * PIECE_BYTES + 5, 4],
            vec![ALIGN],
            vec![1],
        ];
        for (n, lengths) in cases.iter().enumerate() {
            let parts: Vec<Vec<u8>> = lengths
                .iter()
                .enumerate()
                .map(|(i, &len)| pattern(len, i as u8))
                .collect();
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let path = dir.path().join(format!("chunk{n}"));
            File::create(&path).unwrap();
            // This project's machines keep /tmp on ext4, which takes
            // O_DIRECT; elsewhere the caller's buffered write is the test.
            if write_uncached(&path, &parts).unwrap() {
                assert_eq!(cached_bytes(&path), 0, "{lengths:?}");
            }
            assert_eq!(std::fs::read(&path).unwrap(), parts.concat(), "{lengths:?}");
        }
        // A buffered write of the same bytes is cached: `cached_bytes`
        // tells the two apart.
        let buffered = dir.path().join("buffered");
        std::fs::write(&buffered, pattern((4 << 20) + 4, 9)).unwrap();
        assert!(cached_bytes(&buffered) >= 4 << 20);
    }
}
