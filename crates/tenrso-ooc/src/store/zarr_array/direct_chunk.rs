//! The direct path of [`ZarrArray`]: chunks whose codec chain is `bytes`
//! (little endian), optionally `zstd`, optionally `crc32c`
//! ([`DirectLayout`]) are streamed from their file — plain bytes with
//! positioned reads, zstd through a streaming decoder with a bounded window
//! — and checked on the way. No encoded copy of a chunk is ever held:
//! reading a whole chunk of N bytes needs N bytes plus at most 9.25 MiB
//! ([`zstd_stream_bytes`]), and a chunk can also be read a slab of rows at a
//! time ([`ZarrArray::stream_chunk_rows`]). Plain chunks are also written
//! without the codec pipeline.

use std::fs::File;
use std::io::{BufReader, Read, Take};
use std::os::unix::fs::FileExt;

use crate::core::{Element, Elements, Error, Result, compact_corner};
use crate::dispatch_dtype;
use crate::store::ZarrArray;
use crate::store::zarr_metadata::DirectLayout;

/// The largest zstd window the streaming decoder accepts (2^23 = 8 MiB:
/// every level up to 19; levels 20–22 may use larger windows and are read
/// through the generic pipeline).
const MAX_WINDOW_LOG: u32 = 23;

/// Bytes read from the file at a time while decoding.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// The zstd decoder's own block buffers.
const DECODER_BYTES: u64 = 1 << 18;

/// What decoding a zstd chunk of `chunk_bytes` holds beside the chunk: the
/// window and the read buffer (each at most the chunk size) and the
/// decoder's block buffers.
pub(crate) fn zstd_stream_bytes(chunk_bytes: u64) -> u64 {
    chunk_bytes.min(1 << MAX_WINDOW_LOG) + chunk_bytes.min(READ_BUFFER_BYTES as u64) + DECODER_BYTES
}

/// A reader that computes the crc32c of the bytes it passes on.
struct CrcReader<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crate::store::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

type ZstdDecoder = zstd::stream::read::Decoder<'static, BufReader<CrcReader<Take<File>>>>;

/// Where a [`DirectStream`] reads from.
enum Source {
    /// Raw elements: positioned reads, and the crc32c of what was read.
    Plain { file: File, offset: u64, crc: u32 },
    /// One zstd frame (the crc32c is computed by its reader).
    Zstd(Box<ZstdDecoder>),
}

/// What opening a direct chunk found.
pub(super) enum DirectOpen {
    /// The chunk was never written.
    Absent,
    /// Its decoded bytes, to read in order.
    Stream(DirectStream),
    /// Read it through the generic pipeline: a zstd frame whose window
    /// exceeds 2^[`MAX_WINDOW_LOG`] bytes, or a chain (blosc, sharding)
    /// the direct path does not cover.
    Generic,
}

/// The decoded bytes of one stored (full, unclipped) direct chunk, read in
/// order; [`DirectStream::finish`] checks the rest: the frame's end and the
/// checksum.
pub(super) struct DirectStream {
    source: Source,
    /// Decoded bytes not read yet.
    remaining: u64,
    stored_crc: Option<u32>,
}

/// The window a zstd frame needs, from its header (`None`: not a frame).
fn zstd_window(header: &[u8]) -> Option<u64> {
    if header.len() < 6 || header[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = header[4];
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = header[5];
        let log = 10 + u64::from(window >> 3);
        let base = 1u64 << log;
        return Some(base + base / 8 * u64::from(window & 7));
    }
    // Single segment: the window is the content size.
    let dict_bytes = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let field = header.get(5 + dict_bytes..5 + dict_bytes + size_bytes)?;
    let mut size = 0u64;
    for (i, b) in field.iter().enumerate() {
        size |= u64::from(*b) << (8 * i);
    }
    Some(if size_bytes == 2 { size + 256 } else { size })
}

impl ZarrArray {
    /// Opens direct chunk `chunk` for reading in order.
    pub(super) fn open_direct(&self, chunk: &[u64], layout: DirectLayout) -> Result<DirectOpen> {
        let path = self.chunk_path(chunk);
        let file = match self.store.open_key(&self.array.chunk_key(chunk)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirectOpen::Absent),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let chunk_bytes = self.chunk_nbytes();
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let crc_len = if layout.crc { 4 } else { 0 };
        let Some(data_len) = len.checked_sub(crc_len) else {
            return Err(self.corrupt(chunk, format!("chunk file is {len} bytes, too short")));
        };
        let stored_crc = if layout.crc {
            let mut stored = [0u8; 4];
            file.read_exact_at(&mut stored, data_len)
                .map_err(|e| Error::io(&path, e))?;
            Some(u32::from_le_bytes(stored))
        } else {
            None
        };
        let source = if layout.zstd {
            let mut header = [0u8; 18];
            let n = file
                .read_at(&mut header[..data_len.min(18) as usize], 0)
                .map_err(|e| Error::io(&path, e))?;
            match zstd_window(&header[..n]) {
                None => return Err(self.corrupt(chunk, "zstd: not a zstd frame".into())),
                Some(window) if window > 1 << MAX_WINDOW_LOG => {
                    return Ok(DirectOpen::Generic);
                }
                Some(_) => {}
            }
            let counted = CrcReader {
                inner: file.take(data_len),
                crc: 0,
            };
            let buffer = READ_BUFFER_BYTES.min(chunk_bytes.max(1) as usize);
            let corrupt = |e: std::io::Error| self.corrupt(chunk, format!("zstd: {e}"));
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(buffer, counted))
                    .map_err(corrupt)?
                    .single_frame();
            decoder.window_log_max(MAX_WINDOW_LOG).map_err(corrupt)?;
            Source::Zstd(Box::new(decoder))
        } else {
            if data_len != chunk_bytes {
                return Err(self.corrupt(
                    chunk,
                    format!(
                        "chunk file is {len} bytes, expected {}",
                        chunk_bytes + crc_len
                    ),
                ));
            }
            Source::Plain {
                file,
                offset: 0,
                crc: 0,
            }
        };
        Ok(DirectOpen::Stream(DirectStream {
            source,
            remaining: chunk_bytes,
            stored_crc,
        }))
    }

    /// Streams chunk `chunk`, clipped to the array, to `each` in slabs of
    /// at most `slab_rows` rows of its first axis, in order: each call gets
    /// the slab's first row (relative to the chunk) and its elements in C
    /// order, as little-endian bytes. A slab buffer of full stored rows is
    /// the only chunk-sized memory for direct chunks (plain, or zstd with a
    /// bounded window); a shard is read a band of inner chunks at a time
    /// (positioned reads of those inner chunks); other codec chains decode
    /// the whole chunk first.
    /// Checksums are checked after the last slab: nothing derived from the
    /// slabs may be committed before this returns `Ok`.
    ///
    /// # Errors
    /// As [`ZarrArray::read_chunk`], and whatever `each` returns.
    pub fn stream_chunk_rows(
        &self,
        chunk: &[u64],
        slab_rows: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.check_chunk(chunk)?;
        let region = self.grid.chunk_region(chunk);
        let clipped = region.shape();
        let full = self.grid.chunk_shape();
        if clipped.is_empty() {
            // A 0-d array: one element, one slab.
            return dispatch_dtype!(self.dtype, T => {
                let block = self.read_chunk::<T>(chunk)?;
                each(0, bytemuck::cast_slice(block.as_slice()))
            });
        }
        let item = self.dtype.size() as u64;
        let full_row = full[1..].iter().product::<u64>() * item;
        let clipped_row = clipped[1..].iter().product::<u64>() * item;
        let rows = clipped.first().copied().unwrap_or(1);
        let slab_rows = slab_rows.clamp(1, rows.max(1));
        let opened = match self.direct {
            Some(layout) => self.open_direct(chunk, layout)?,
            None => DirectOpen::Generic,
        };
        let slabs = (0..rows).step_by(slab_rows as usize);
        match opened {
            DirectOpen::Absent => {
                let mut fill = vec![0u64; (slab_rows * clipped_row).div_ceil(8) as usize];
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut fill);
                dispatch_dtype!(self.dtype, T => {
                    let value = T::from_f64(self.fill);
                    for part in bytes.chunks_exact_mut(item as usize) {
                        part.copy_from_slice(bytemuck::bytes_of(&value));
                    }
                });
                for r0 in slabs {
                    let n = slab_rows.min(rows - r0);
                    each(r0, &bytes[..(n * clipped_row) as usize])?;
                }
            }
            DirectOpen::Generic if self.inner_chunk_shape.is_some() => {
                // A shard: each slab (whole rows of inner chunks) read with
                // positioned reads of the inner chunks it covers.
                let inner_rows = self.inner_chunk_shape.as_ref().map_or(1, |c| c[0].max(1));
                let step = slab_rows.next_multiple_of(inner_rows);
                dispatch_dtype!(self.dtype, T => {
                    for r0 in (0..rows).step_by(step as usize) {
                        let n = step.min(rows - r0);
                        let mut start = vec![0; clipped.len()];
                        start[0] = r0;
                        let mut shape = clipped.to_vec();
                        shape[0] = n;
                        let subset = zarrs::array::ArraySubset::new_with_start_shape(start, shape)
                            .map_err(|e| Error::internal(e.to_string()))?;
                        let band: Vec<T> = self
                            .array
                            .retrieve_chunk_subset_opt(chunk, &subset, &self.codec_options)
                            .map_err(|e| self.chunk_error(chunk, e))?;
                        let bytes: &[u8] = bytemuck::cast_slice(&band);
                        for s0 in (0..n).step_by(slab_rows as usize) {
                            let m = slab_rows.min(n - s0);
                            let at = (s0 * clipped_row) as usize;
                            each(r0 + s0, &bytes[at..at + (m * clipped_row) as usize])?;
                        }
                    }
                });
            }
            DirectOpen::Generic => {
                dispatch_dtype!(self.dtype, T => {
                    let block = self.read_chunk::<T>(chunk)?;
                    let bytes: &[u8] = bytemuck::cast_slice(block.as_slice());
                    for r0 in slabs {
                        let n = slab_rows.min(rows - r0);
                        each(r0, &bytes[(r0 * clipped_row) as usize..((r0 + n) * clipped_row) as usize])?;
                    }
                });
            }
            DirectOpen::Stream(mut stream) => {
                let mut buffer = vec![0u64; (slab_rows * full_row).div_ceil(8) as usize];
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buffer);
                for r0 in slabs {
                    let n = slab_rows.min(rows - r0);
                    let slab = &mut bytes[..(n * full_row) as usize];
                    stream.read(self, chunk, slab)?;
                    if clipped_row != full_row {
                        clip_rows(slab, n, &full[1..], &clipped[1..], item);
                    }
                    each(r0, &slab[..(n * clipped_row) as usize])?;
                }
                stream.finish(self, chunk)?;
            }
        }
        Ok(())
    }
}

/// Compacts `rows` full stored rows (inner extents `full`) in place to
/// their clipped corners (inner extents `clipped`), in C order at the front:
/// the chunk's corner, with bytes as a last axis of `item`.
fn clip_rows(slab: &mut [u8], rows: u64, full: &[u64], clipped: &[u64], item: u64) {
    let with_bytes = |inner: &[u64]| -> Vec<u64> {
        std::iter::once(rows)
            .chain(inner.iter().copied())
            .chain([item])
            .collect()
    };
    compact_corner(slab, &with_bytes(full), &with_bytes(clipped));
}

impl DirectStream {
    /// Reads the next `buf.len()` decoded bytes.
    fn read(&mut self, array: &ZarrArray, chunk: &[u64], buf: &mut [u8]) -> Result<()> {
        match &mut self.source {
            Source::Plain { file, offset, crc } => {
                file.read_exact_at(buf, *offset)
                    .map_err(|e| Error::io(array.chunk_path(chunk), e))?;
                *offset += buf.len() as u64;
                if self.stored_crc.is_some() {
                    *crc = crate::store::crc32c_append(*crc, buf);
                }
            }
            Source::Zstd(decoder) => {
                decoder.read_exact(buf).map_err(|e| {
                    array.corrupt(
                        chunk,
                        match e.kind() {
                            std::io::ErrorKind::UnexpectedEof => {
                                "zstd: the frame decodes to fewer bytes than the chunk holds"
                                    .to_string()
                            }
                            _ => format!("zstd: {e}"),
                        },
                    )
                })?;
            }
        }
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    /// Reads the whole (remaining) chunk: in place through a mapping when
    /// `in_place` and it is a plain chunk of [`crate::io::MAP_MIN_BYTES`] or
    /// more, else into a new vector.
    fn read_elements<T: Element>(
        &mut self,
        array: &ZarrArray,
        chunk: &[u64],
        in_place: bool,
    ) -> Result<Elements<T>> {
        let elements = (self.remaining / std::mem::size_of::<T>() as u64) as usize;
        if let Source::Plain { file, offset, crc } = &mut self.source {
            // Each piece checksummed while it is still in the cache.
            let check = self.stored_crc.is_some();
            let mut on_read = |piece: &[u8]| {
                if check {
                    *crc = crate::store::crc32c_append(*crc, piece);
                }
            };
            let io_error = |e| Error::io(array.chunk_path(chunk), e);
            let mapped = if in_place
                && self.remaining >= crate::io::MAP_MIN_BYTES
                && crate::io::chunk_maps_enabled()
            {
                crate::io::map_elements_at(file, *offset, elements, &mut on_read)
                    .map_err(io_error)?
            } else {
                None
            };
            let data = match mapped {
                Some(mapped) => Elements::Mapped(mapped),
                // Straight into fresh memory, without zeroing it first.
                None => Elements::Owned(
                    crate::io::read_elements_at(file, *offset, elements, &mut on_read)
                        .map_err(io_error)?,
                ),
            };
            *offset += self.remaining;
            self.remaining = 0;
            return Ok(data);
        }
        let mut data = vec![T::ZERO; elements];
        self.read(array, chunk, bytemuck::cast_slice_mut(&mut data))?;
        Ok(Elements::Owned(data))
    }

    /// Reads what is left of the chunk (rows past the array's edge), then
    /// checks the frame's end and the checksum.
    fn finish(mut self, array: &ZarrArray, chunk: &[u64]) -> Result<()> {
        if self.remaining > 0 {
            let mut rest = vec![0u8; self.remaining.min(READ_BUFFER_BYTES as u64) as usize];
            while self.remaining > 0 {
                let n = self.remaining.min(rest.len() as u64) as usize;
                self.read(array, chunk, &mut rest[..n])?;
            }
        }
        let corrupt = |reason: String| array.corrupt(chunk, reason);
        let crc = match self.source {
            Source::Plain { crc, .. } => crc,
            Source::Zstd(mut decoder) => {
                // The frame must end exactly here, and nothing may follow it.
                let mut probe = [0u8; 1];
                match decoder.read(&mut probe) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(corrupt(
                            "zstd: the frame decodes to more bytes than the chunk holds".into(),
                        ));
                    }
                    Err(e) => return Err(corrupt(format!("zstd: {e}"))),
                }
                let mut reader = decoder.finish();
                let mut trailing = Vec::new();
                reader
                    .read_to_end(&mut trailing)
                    .map_err(|e| Error::io(array.chunk_path(chunk), e))?;
                if !trailing.is_empty() {
                    return Err(corrupt(format!(
                        "zstd: {} bytes follow the frame",
                        trailing.len()
                    )));
                }
                reader.into_inner().crc
            }
        };
        if self.stored_crc.is_some_and(|stored| stored != crc) {
            return Err(corrupt("checksum mismatch".into()));
        }
        Ok(())
    }

    /// The whole chunk as elements, checked; read in place if `in_place`
    /// (see [`DirectStream::read_elements`]).
    pub(super) fn into_elements<T: Element>(
        mut self,
        array: &ZarrArray,
        chunk: &[u64],
        in_place: bool,
    ) -> Result<Elements<T>> {
        let data = self.read_elements(array, chunk, in_place)?;
        self.finish(array, chunk)?;
        Ok(data)
    }
}

impl ZarrArray {
    /// Writes a plain chunk file: `data`, a prefix of the full chunk (all
    /// of it, or the rows inside the array of an edge chunk clipped along
    /// its first axis), then fill values up to the full chunk.
    pub(super) fn write_plain_chunk<T: Element>(
        &self,
        chunk: &[u64],
        data: &[T],
        crc: bool,
    ) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let missing = (self.chunk_nbytes() as usize).saturating_sub(bytes.len());
        let item = std::mem::size_of::<T>();
        let pad: Vec<T> =
            vec![T::from_f64(self.fill); missing.min(super::PAD_BYTES as usize) / item];
        let pad: &[u8] = bytemuck::cast_slice(&pad);
        let mut parts = vec![bytes];
        let mut left = missing;
        while left > 0 && !pad.is_empty() {
            let n = left.min(pad.len());
            parts.push(&pad[..n]);
            left -= n;
        }
        let checksum = parts
            .iter()
            .fold(0, |c, part| crate::store::crc32c_append(c, part))
            .to_le_bytes();
        if crc {
            parts.push(&checksum);
        }
        self.store
            .set_parts(&self.array.chunk_key(chunk), &parts)
            .map_err(|e| Error::io(self.chunk_path(chunk), e))
    }
}

#[cfg(test)]
mod tests {
    use super::zstd_window;

    #[test]
    fn zstd_windows_come_from_the_frame_header() {
        for (level, len) in [(1, 100usize), (3, 3 << 20), (19, 20 << 20)] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frame = zstd::bulk::compress(&data, level).unwrap();
            let window = zstd_window(&frame).unwrap();
            // The decoder agrees: with the window as the limit it decodes,
            // with less it refuses.
            let log = 64 - (window - 1).leading_zeros();
            let mut ok = zstd::stream::read::Decoder::new(&frame[..]).unwrap();
            ok.window_log_max(log.max(10)).unwrap();
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut ok, &mut out).unwrap();
            assert_eq!(out, data, "level {level}");
        }
        assert_eq!(zstd_window(b"not a frame"), None);
        assert_eq!(zstd_window(&[]), None);
    }
}
