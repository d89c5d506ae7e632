//! The plain-chunk fast path of [`ZarrArray`]: chunks whose codec chain is
//! `bytes` (little endian) and optionally `crc32c` are one file of raw
//! elements (and their checksum), read with one positioned read and written
//! without the codec pipeline.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::core::{Element, Error, Result};
use crate::store::ZarrArray;

impl ZarrArray {
    /// Reads a plain chunk file: the elements, then (with `crc`) their crc32c.
    pub(super) fn read_plain_chunk<T: Element>(
        &self,
        chunk: &[u64],
        crc: bool,
    ) -> Result<Option<Vec<T>>> {
        let path = self.chunk_path(chunk);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let elements = self.grid.chunk_elements() as usize;
        let data_len = (elements * std::mem::size_of::<T>()) as u64;
        let expected = data_len + if crc { 4 } else { 0 };
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len != expected {
            return Err(self.corrupt(
                chunk,
                format!("chunk file is {len} bytes, expected {expected}"),
            ));
        }
        let data: Vec<T> =
            crate::io::read_elements_at(&file, 0, elements).map_err(|e| Error::io(&path, e))?;
        if crc {
            let mut stored = [0u8; 4];
            file.read_exact_at(&mut stored, data_len)
                .map_err(|e| Error::io(&path, e))?;
            if crc32c::crc32c(bytemuck::cast_slice(&data)) != u32::from_le_bytes(stored) {
                return Err(self.corrupt(chunk, "checksum mismatch".into()));
            }
        }
        Ok(Some(data))
    }

    /// Writes a plain chunk file (the full, padded chunk).
    pub(super) fn write_plain_chunk<T: Element>(
        &self,
        chunk: &[u64],
        data: &[T],
        crc: bool,
    ) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let checksum = crc32c::crc32c(bytes).to_le_bytes();
        let parts: &[&[u8]] = if crc { &[bytes, &checksum] } else { &[bytes] };
        self.store
            .set_parts(&self.array.chunk_key(chunk), parts)
            .map_err(|e| Error::io(self.chunk_path(chunk), e))
    }
}
