//! [`IpcSource`]: an Arrow IPC file or stream read in place through a memory
//! map, record batch by record batch.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::FileDecoder;
use arrow_ipc::{Block, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, Schema};
use memmap2::Mmap;

use crate::core::{ChunkGrid, DType, Element, Error, Region, Result};
use crate::dispatch_dtype;
use crate::io::arrow_layout::ArrowTensor;
use crate::io::guarded;
use crate::io::row_slabs::{read_region_by_rows, units_overlapping};
use crate::io::source_file::{SOURCE_CHUNK_BYTES, rows_per_chunk};
use crate::io::{ReadableArray, check_region_into};

const CONTINUATION: u32 = 0xFFFF_FFFF;
const MAGIC: &[u8; 6] = b"ARROW1";

/// An Arrow IPC file (`ARROW1` magic, footer) or stream, memory-mapped.
///
/// Uncompressed batches are decoded without copying: their value buffers
/// are slices of the map, copied once into the chunk being read, after
/// which the pages read are released (`MADV_DONTNEED`) so resident memory
/// stays at the chunks in flight however large the file. Compressed
/// batches (lz4 frame, zstd) are decompressed whole; chunks then follow the
/// batches.
pub struct IpcSource {
    path: PathBuf,
    map: Arc<Mmap>,
    buffer: Buffer,
    decoder: FileDecoder,
    tensor: ArrowTensor,
    batches: Vec<Block>,
    first_rows: Vec<u64>,
    shape: Vec<u64>,
    grid: ChunkGrid,
    stream: bool,
    compression: Option<String>,
}

impl std::fmt::Debug for IpcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcSource")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("batches", &self.batches.len())
            .finish_non_exhaustive()
    }
}

/// The messages of an IPC file or stream: schema, record batch blocks and
/// the metadata version.
struct Index {
    schema: Schema,
    batches: Vec<Block>,
    version: MetadataVersion,
}

impl IpcSource {
    /// Opens an IPC file or stream and indexes its record batches (reading
    /// only message headers).
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for a truncated or damaged file, or columns
    /// that hold no tensor (see
    /// [`SourceOptions::columns`](crate::io::SourceOptions::columns)).
    pub fn open(path: &Path, columns: Option<&[String]>) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 8 {
            return Err(Error::invalid_file(
                path,
                format!("is {len} bytes: not an Arrow IPC file or stream"),
            ));
        }
        // SAFETY: the map is read-only; a file truncated by another process
        // while mapped makes later reads fault (SIGBUS), as with any mapped
        // reader: sources must not be rewritten while they are read.
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
        let stream = &map[..6] != MAGIC;
        let index = if stream {
            index_stream(&map, path)?
        } else {
            index_file(&map, path)?
        };
        let ptr = NonNull::new(map.as_ptr().cast_mut()).expect("a mapping is never null");
        // SAFETY: the buffer covers exactly the mapping, which `map` (kept
        // alive by the buffer's owner) holds for the buffer's lifetime.
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, map.len(), map.clone()) };
        let mut rows = Vec::with_capacity(index.batches.len());
        let mut compression = None;
        for (i, block) in index.batches.iter().enumerate() {
            let message = message_at(&map, block)
                .map_err(|e| Error::invalid_file(path, format!("record batch {i}: {e}")))?;
            let batch = message.header_as_record_batch().ok_or_else(|| {
                Error::invalid_file(path, format!("message {i} is not a record batch"))
            })?;
            if let Some(c) = batch.compression() {
                compression = Some(format!("{:?}", c.codec()).to_lowercase());
            }
            check_buffers(&batch, block.bodyLength()).map_err(|e| {
                Error::invalid_file(path, format!("record batch {i} is damaged: {e}"))
            })?;
            rows.push(u64::try_from(batch.length()).map_err(|_| {
                Error::invalid_file(
                    path,
                    format!("record batch {i} declares {} rows", batch.length()),
                )
            })?);
        }
        let mut first_rows = Vec::with_capacity(rows.len());
        let mut total = 0u64;
        for &r in &rows {
            first_rows.push(total);
            total = total.checked_add(r).ok_or_else(|| {
                Error::invalid_file(path, "record batches declare more rows than can be counted")
            })?;
        }
        let schema = Arc::new(index.schema);
        let tensor = ArrowTensor::from_schema(&schema, columns, path, &mut |name| {
            let what = format!("reading the first row of `{name}`");
            guarded(path, &what, || {
                first_list_len(&buffer, &index.batches, &schema, index.version, name)
                    .map_err(|e| Error::invalid_file(path, format!("{what}: {e}")))
            })
        })?;
        let projection: Vec<usize> = tensor
            .column_names()
            .iter()
            .filter_map(|n| schema.index_of(n).ok())
            .collect();
        let decoder = FileDecoder::new(schema, index.version).with_projection(projection);
        let shape = tensor.shape(total);
        let row_bytes = tensor.row_elements() as u64 * tensor.dtype.size() as u64;
        if compression.is_none() {
            // Every value takes at least a byte of the body.
            for (i, (block, &r)) in index.batches.iter().zip(&rows).enumerate() {
                if r.saturating_mul(tensor.row_elements() as u64) > block.bodyLength() as u64 {
                    return Err(Error::invalid_file(
                        path,
                        format!(
                            "record batch {i} declares {r} rows but holds {} bytes (truncated or damaged)",
                            block.bodyLength()
                        ),
                    ));
                }
            }
        }
        // Compressed batches are decoded whole: chunks of the largest batch,
        // one batch each when they are even.
        let largest = rows.iter().copied().max().unwrap_or(1).max(1);
        let target = if compression.is_some() {
            largest.saturating_mul(row_bytes)
        } else {
            SOURCE_CHUNK_BYTES
        };
        let mut chunk_shape = shape.clone();
        chunk_shape[0] = rows_per_chunk(&rows, row_bytes, target).clamp(1, total.max(1));
        let grid = ChunkGrid::new(shape.clone(), chunk_shape)
            .map_err(|e| Error::invalid_file(path, e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            buffer,
            decoder,
            tensor,
            batches: index.batches,
            first_rows,
            shape,
            grid,
            stream,
            compression,
        })
    }

    /// Decodes record batch `i` (zero-copy when uncompressed).
    fn decode(&self, i: usize) -> Result<RecordBatch> {
        let what = format!("record batch {i}");
        guarded(&self.path, &what, || {
            decode_block(&self.decoder, &self.buffer, &self.batches[i]).map_err(|e| {
                Error::invalid_file(&self.path, format!("{what} does not decode: {e}"))
            })
        })
    }

    fn read_rows<T: Element>(&self, rows: Range<u64>, out: &mut [T]) -> Result<()> {
        let per_row = self.tensor.row_elements();
        let total = self.shape[0];
        for (unit, local, offset) in units_overlapping(&self.first_rows, total, rows) {
            let batch = self.decode(unit)?;
            let n = local.len();
            let dst = &mut out[offset * per_row..(offset + n) * per_row];
            self.tensor
                .copy_rows(&batch, local, self.first_rows[unit], dst)?;
            // The batch's pages (metadata, buffers, compressed or not) leave
            // the resident set; a later read of the batch faults them back.
            let block = &self.batches[unit];
            let start = self.map.as_ptr() as usize + block.offset() as usize;
            let len = block.metaDataLength() as usize + block.bodyLength() as usize;
            self.release(start..start + len);
        }
        Ok(())
    }

    /// Drops the pages wholly inside `range` (addresses) from this process's
    /// resident set; they are read again from the page cache if touched.
    fn release(&self, range: Range<usize>) {
        let base = self.map.as_ptr() as usize;
        let end = base + self.map.len();
        let page = page_size();
        let lo = range.start.max(base).next_multiple_of(page);
        let hi = range.end.min(end) / page * page;
        if lo < hi {
            // SAFETY: [lo, hi) is page-aligned and inside the read-only
            // mapping; dropping its pages only makes later reads fault them
            // in again from the file.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
            }
        }
    }
}

impl ReadableArray for IpcSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn dtype(&self) -> DType {
        self.tensor.dtype
    }

    fn chunk_grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn reads_whole_rows(&self) -> bool {
        true
    }

    fn chunk_working_set(&self) -> u64 {
        let chunk = self.grid.chunk_elements() * self.dtype().size() as u64;
        // A permuted cell layout is reordered through two more buffers.
        let permute = if self.tensor.is_permuted() {
            2 * chunk
        } else {
            0
        };
        permute
            + match self.compression {
                // The chunk, and the decompressed batch it is copied from.
                Some(_) => 2 * chunk + self.largest_batch_bytes(),
                // The chunk, and the mapped pages of its batch until released.
                None => 2 * chunk,
            }
    }

    fn describe(&self) -> String {
        format!(
            "Arrow IPC {} ({} record batches, {}), {}",
            if self.stream { "stream" } else { "file" },
            self.batches.len(),
            self.compression
                .as_deref()
                .map_or("uncompressed, memory-mapped".into(), |c| format!(
                    "{c} compressed"
                )),
            self.tensor.describe()
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        check_region_into(self, region, out)?;
        dispatch_dtype!(self.dtype(), T => read_region_by_rows(
            &self.shape,
            region,
            bytemuck::cast_slice_mut::<u8, T>(out),
            |rows, out| self.read_rows(rows, out),
        ))
    }
}

impl IpcSource {
    /// Uncompressed bytes of the largest record batch's tensor values.
    fn largest_batch_bytes(&self) -> u64 {
        let mut rows: Vec<u64> = self.first_rows.windows(2).map(|w| w[1] - w[0]).collect();
        rows.push(self.shape[0] - self.first_rows.last().copied().unwrap_or(0));
        rows.iter().max().copied().unwrap_or(0)
            * self.tensor.row_elements() as u64
            * self.dtype().size() as u64
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Checks that the buffers of a record batch lie inside its body of
/// `body` bytes (arrow-ipc slices them unchecked).
fn check_buffers(batch: &arrow_ipc::RecordBatch<'_>, body: i64) -> std::result::Result<(), String> {
    if body < 0 {
        return Err(format!("its body length is {body}"));
    }
    for (k, buffer) in batch.buffers().into_iter().flatten().enumerate() {
        let (offset, length) = (buffer.offset(), buffer.length());
        if offset < 0 || length < 0 || offset.checked_add(length).is_none_or(|end| end > body) {
            return Err(format!(
                "buffer {k} at {offset}+{length} lies outside its {body}-byte body"
            ));
        }
    }
    Ok(())
}

/// Decodes the record batch in `block` of `buffer`.
fn decode_block(
    decoder: &FileDecoder,
    buffer: &Buffer,
    block: &Block,
) -> std::result::Result<RecordBatch, ArrowError> {
    let len = block.metaDataLength() as usize + block.bodyLength() as usize;
    let data = buffer.slice_with_length(block.offset() as usize, len);
    decoder
        .read_record_batch(block, &data)?
        .ok_or_else(|| ArrowError::IpcError("not a record batch".into()))
}

/// The length of the first row of list column `name`, from the first
/// non-empty batch.
fn first_list_len(
    buffer: &Buffer,
    batches: &[Block],
    schema: &Arc<Schema>,
    version: MetadataVersion,
    name: &str,
) -> std::result::Result<usize, ArrowError> {
    let index = schema.index_of(name)?;
    let decoder = FileDecoder::new(schema.clone(), version).with_projection(vec![index]);
    for block in batches {
        let batch = decode_block(&decoder, buffer, block)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let column = batch.column(0);
        return Ok(match column.data_type() {
            arrow_schema::DataType::LargeList(_) => {
                column.as_list::<i64>().value_length(0) as usize
            }
            _ => column.as_list::<i32>().value_length(0) as usize,
        });
    }
    Ok(0)
}

/// The message whose metadata `block` locates in `map`.
fn message_at<'a>(
    map: &'a [u8],
    block: &Block,
) -> std::result::Result<arrow_ipc::Message<'a>, String> {
    let start = usize::try_from(block.offset()).map_err(|_| "negative offset".to_string())?;
    let len = usize::try_from(block.metaDataLength()).map_err(|_| "negative length".to_string())?;
    let meta = map
        .get(start..start + len)
        .ok_or_else(|| format!("metadata at byte {start} runs past the end of the file"))?;
    let body = meta
        .get(if meta.get(..4) == Some(&CONTINUATION.to_le_bytes()) {
            8..
        } else {
            4..
        })
        .ok_or("metadata is too short")?;
    arrow_ipc::root_as_message(body).map_err(|e| format!("metadata does not parse: {e}"))
}

/// Indexes an IPC file from its footer.
fn index_file(map: &[u8], path: &Path) -> Result<Index> {
    let len = map.len();
    let damaged = |what: String| {
        Error::invalid_file(
            path,
            format!("Arrow IPC file is truncated or damaged: {what}"),
        )
    };
    if len < 6 + 10 || &map[len - 6..] != MAGIC {
        return Err(damaged("it does not end with the ARROW1 footer".into()));
    }
    let tail: [u8; 10] = map[len - 10..].try_into().expect("10 bytes");
    let footer_len =
        arrow_ipc::reader::read_footer_length(tail).map_err(|e| damaged(e.to_string()))?;
    let footer_start = (len - 10)
        .checked_sub(footer_len)
        .filter(|&s| s >= 8)
        .ok_or_else(|| damaged(format!("footer length {footer_len} exceeds the file")))?;
    let footer = arrow_ipc::root_as_footer(&map[footer_start..len - 10])
        .map_err(|e| damaged(format!("footer does not parse: {e}")))?;
    // Dictionary batches serve dictionary-encoded (non-numeric) columns,
    // which are never read: they are skipped.
    let schema = footer
        .schema()
        .ok_or_else(|| damaged("footer has no schema".into()))
        .and_then(|fb| {
            arrow_ipc::convert::try_fb_to_schema(fb).map_err(|e| damaged(e.to_string()))
        })?;
    let mut batches = Vec::new();
    for (i, block) in footer.recordBatches().into_iter().flatten().enumerate() {
        let end =
            block.offset() as i128 + block.metaDataLength() as i128 + block.bodyLength() as i128;
        if block.offset() < 8 || end > footer_start as i128 {
            return Err(damaged(format!(
                "record batch {i} lies at bytes {}..{end}, outside the data",
                block.offset()
            )));
        }
        batches.push(*block);
    }
    Ok(Index {
        schema,
        batches,
        version: footer.version(),
    })
}

/// Indexes an IPC stream by walking its message headers.
fn index_stream(map: &[u8], path: &Path) -> Result<Index> {
    let len = map.len();
    let mut pos = 0usize;
    let mut schema = None;
    let mut version = MetadataVersion::V5;
    let mut batches = Vec::new();
    let truncated = |what: String| {
        Error::invalid_file(
            path,
            format!("Arrow IPC stream is truncated or damaged: {what}"),
        )
    };
    loop {
        if pos == len {
            break; // no end-of-stream marker: accepted, as pyarrow does
        }
        let word = |at: usize| -> Result<u32> {
            map.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| truncated(format!("message header at byte {at} is cut off")))
        };
        let (prefix, meta_len) = match word(pos)? {
            CONTINUATION => (8, word(pos + 4)? as usize),
            legacy => (4, legacy as usize),
        };
        if meta_len == 0 {
            break; // end-of-stream marker
        }
        let block = Block::new(pos as i64, (prefix + meta_len) as i32, 0);
        let message = message_at(map, &block)
            .map_err(|e| truncated(format!("message at byte {pos}: {e}")))?;
        let body = usize::try_from(message.bodyLength())
            .map_err(|_| truncated(format!("message at byte {pos} has a negative body")))?;
        let end = pos + prefix + meta_len + body;
        if end > len {
            return Err(truncated(format!(
                "message at byte {pos} needs {body} body bytes up to byte {end}, the file has {len}"
            )));
        }
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| truncated("schema message has no schema".into()))?;
                schema = Some(
                    arrow_ipc::convert::try_fb_to_schema(fb)
                        .map_err(|e| truncated(format!("schema does not parse: {e}")))?,
                );
                version = message.version();
            }
            MessageHeader::RecordBatch => {
                batches.push(Block::new(
                    pos as i64,
                    (prefix + meta_len) as i32,
                    body as i64,
                ));
            }
            // Dictionary-encoded columns are not numeric and never read.
            MessageHeader::DictionaryBatch => {}
            other => {
                return Err(truncated(format!(
                    "unexpected {other:?} message at byte {pos}"
                )));
            }
        }
        pos = end;
    }
    let schema = schema.ok_or_else(|| {
        Error::invalid_file(
            path,
            "is not an Arrow IPC file or stream (no schema message)",
        )
    })?;
    Ok(Index {
        schema,
        batches,
        version,
    })
}
