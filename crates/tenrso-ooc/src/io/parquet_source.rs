//! [`ParquetSource`]: a Parquet file read row group by row group, page by
//! page within a row group larger than a chunk.

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::column::page::PageReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::page_index::PageIndexBuilder;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataBuilder};
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

use crate::core::{ChunkGrid, DType, Element, Error, Region, Result};
use crate::dispatch_dtype;
use crate::io::arrow_layout::ArrowTensor;
use crate::io::guarded;
use crate::io::row_slabs::{read_region_by_rows, units_overlapping};
use crate::io::source_file::{SOURCE_CHUNK_BYTES, rows_per_chunk};
use crate::io::{ReadableArray, check_region_into};

/// A Parquet file holding a tensor column (`arrow.fixed_shape_tensor`, a
/// fixed-size list or an even list) or numeric columns.
///
/// Only the footer is read when opening. A chunk is read from the row
/// groups it overlaps, selecting its rows, and pages are decoded one at a
/// time, so a row group larger than the memory limit is still read in
/// chunk-sized pieces. With an offset index the pages before the selected
/// rows are skipped unread; files written without one (pyarrow's default)
/// whose row groups span several chunks get one at opening, by walking the
/// page headers of the columns read.
pub struct ParquetSource {
    path: PathBuf,
    file: PositionedFile,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    tensor: ArrowTensor,
    group_rows: Vec<u64>,
    first_rows: Vec<u64>,
    shape: Vec<u64>,
    grid: ChunkGrid,
    compression: String,
    /// Where the offset index comes from, for [`ReadableArray::describe`].
    page_index: &'static str,
}

impl std::fmt::Debug for ParquetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSource")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("row_groups", &self.group_rows.len())
            .finish_non_exhaustive()
    }
}

impl ParquetSource {
    /// Opens a Parquet file, reading its footer (and page index, if any).
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for a file that is not Parquet or is damaged,
    /// and for columns that hold no tensor (see
    /// [`SourceOptions::columns`](crate::io::SourceOptions::columns)).
    pub fn open(path: &Path, columns: Option<&[String]>) -> Result<Self> {
        guarded(path, "reading the footer", || {
            Self::open_unguarded(path, columns)
        })
    }

    fn open_unguarded(path: &Path, columns: Option<&[String]>) -> Result<Self> {
        let file = PositionedFile::open(path)?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load(&file, options.clone())
            .map_err(|e| Error::invalid_file(path, format!("not a readable Parquet file: {e}")))?;
        let schema = metadata.schema().clone();
        let mut group_rows = Vec::with_capacity(metadata.metadata().num_row_groups());
        for (g, group) in metadata.metadata().row_groups().iter().enumerate() {
            group_rows.push(u64::try_from(group.num_rows()).map_err(|_| {
                Error::invalid_file(
                    path,
                    format!("row group {g} declares {} rows", group.num_rows()),
                )
            })?);
        }
        let mut first_rows = Vec::with_capacity(group_rows.len());
        let mut total = 0u64;
        for &r in &group_rows {
            first_rows.push(total);
            total = total.checked_add(r).ok_or_else(|| {
                Error::invalid_file(path, "row groups declare more rows than can be counted")
            })?;
        }
        let tensor = ArrowTensor::from_schema(&schema, columns, path, &mut |name| {
            let index = schema
                .index_of(name)
                .map_err(|e| Error::invalid_file(path, e.to_string()))?;
            let mask = ProjectionMask::roots(metadata.parquet_schema(), [index]);
            let mut reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), metadata.clone())
                    .with_projection(mask)
                    .with_row_selection(RowSelection::from(vec![RowSelector::select(1)]))
                    .with_batch_size(1)
                    .build()
                    .map_err(|e| Error::invalid_file(path, e.to_string()))?;
            let Some(batch) = reader.next() else {
                return Ok(0);
            };
            let batch = batch.map_err(|e| Error::invalid_file(path, e.to_string()))?;
            let column = batch.column(0);
            Ok(match column.data_type() {
                arrow_schema::DataType::LargeList(_) => column.as_list::<i64>().value_length(0),
                _ => i64::from(column.as_list::<i32>().value_length(0)),
            } as usize)
        })?;
        let roots: Vec<usize> = tensor
            .column_names()
            .iter()
            .filter_map(|n| schema.index_of(n).ok())
            .collect();
        let mask = ProjectionMask::roots(metadata.parquet_schema(), roots.iter().copied());
        let compression = metadata
            .metadata()
            .row_groups()
            .first()
            .and_then(|g| g.columns().first())
            .map_or("no row groups".into(), |c| {
                format!("{:?}", c.compression()).to_lowercase()
            });
        let shape = tensor.shape(total);
        let row_bytes = tensor.row_elements() as u64 * tensor.dtype.size() as u64;
        let mut chunk_shape = shape.clone();
        chunk_shape[0] =
            rows_per_chunk(&group_rows, row_bytes, SOURCE_CHUNK_BYTES).clamp(1, total.max(1));
        let has_offset_index = metadata
            .metadata()
            .page_index()
            .is_some_and(|p| p.has_offset_indexes());
        let split = group_rows.iter().any(|&r| r > chunk_shape[0]);
        let mut page_index = if has_offset_index {
            "offset index"
        } else {
            "no offset index"
        };
        let metadata = if split && !has_offset_index {
            let schema_descr = metadata.parquet_schema();
            let leaves: Vec<(usize, usize)> = (0..schema_descr.num_columns())
                .filter(|&leaf| roots.contains(&schema_descr.get_column_root_idx(leaf)))
                .map(|leaf| {
                    (
                        leaf,
                        if tensor.is_table() {
                            1
                        } else {
                            tensor.row_elements()
                        },
                    )
                })
                .collect();
            match walk_page_locations(&file, metadata.metadata(), &leaves) {
                Some(index) => {
                    page_index = "offset index built from page headers";
                    let with_index = ParquetMetaDataBuilder::new_from_metadata(
                        metadata.metadata().as_ref().clone(),
                    )
                    .set_page_index(Some(Arc::new(index)))
                    .build();
                    ArrowReaderMetadata::try_new(Arc::new(with_index), options)
                        .map_err(|e| Error::invalid_file(path, e.to_string()))?
                }
                None => metadata,
            }
        } else {
            metadata
        };
        let grid = ChunkGrid::new(shape.clone(), chunk_shape)
            .map_err(|e| Error::invalid_file(path, e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            metadata,
            mask,
            tensor,
            group_rows,
            first_rows,
            shape,
            grid,
            compression,
            page_index,
        })
    }

    fn read_rows<T: Element>(&self, rows: Range<u64>, out: &mut [T]) -> Result<()> {
        let what = format!("rows {}..{}", rows.start, rows.end);
        guarded(&self.path, &what, || self.read_rows_unguarded(rows, out))
    }

    fn read_rows_unguarded<T: Element>(&self, rows: Range<u64>, out: &mut [T]) -> Result<()> {
        let per_row = self.tensor.row_elements();
        for (group, local, offset) in units_overlapping(&self.first_rows, self.shape[0], rows) {
            let group_rows = self.group_rows[group] as usize;
            let mut selectors = Vec::with_capacity(3);
            if local.start > 0 {
                selectors.push(RowSelector::skip(local.start));
            }
            selectors.push(RowSelector::select(local.len()));
            if local.end < group_rows {
                selectors.push(RowSelector::skip(group_rows - local.end));
            }
            let context = |e: &dyn std::fmt::Display| {
                Error::invalid_file(
                    &self.path,
                    format!(
                        "row group {group} (rows {}..{}): {e}",
                        self.first_rows[group] + local.start as u64,
                        self.first_rows[group] + local.end as u64
                    ),
                )
            };
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                self.file.clone(),
                self.metadata.clone(),
            )
            .with_projection(self.mask.clone())
            .with_row_groups(vec![group])
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(local.len())
            .build()
            .map_err(|e| context(&e))?;
            let mut done = 0usize;
            for batch in reader {
                let batch = batch.map_err(|e| context(&e))?;
                let n = batch.num_rows();
                if done + n > local.len() {
                    return Err(context(&"more rows than the footer declares"));
                }
                let dst = &mut out[(offset + done) * per_row..(offset + done + n) * per_row];
                let first = self.first_rows[group] + (local.start + done) as u64;
                self.tensor.copy_rows(&batch, 0..n, first, dst)?;
                done += n;
            }
            if done != local.len() {
                return Err(context(&format!(
                    "read {done} rows, the footer declares {}",
                    local.len()
                )));
            }
        }
        Ok(())
    }
}

/// The file, read with positioned reads (`pread`): one handle shared by
/// concurrent chunk reads without a shared offset. It can record where page
/// headers are read (see [`walk_page_locations`]).
#[derive(Clone)]
struct PositionedFile {
    file: Arc<File>,
    len: u64,
    header_reads: Option<Arc<Mutex<Vec<u64>>>>,
}

impl PositionedFile {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Self {
            file: Arc::new(file),
            len,
            header_reads: None,
        })
    }
}

impl Length for PositionedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PositionedFile {
    type T = BufReader<PositionedRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        if let Some(reads) = &self.header_reads {
            reads.lock().expect("not poisoned").push(start);
        }
        Ok(BufReader::with_capacity(
            16 << 10,
            PositionedRead {
                file: self.file.clone(),
                at: start,
            },
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        if start
            .checked_add(length as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at offset {start} run past the end of the {}-byte file",
                self.len
            )));
        }
        let mut buffer = vec![0u8; length];
        self.file.read_exact_at(&mut buffer, start)?;
        Ok(buffer.into())
    }
}

/// A reader at a position of a [`PositionedFile`].
struct PositionedRead {
    file: Arc<File>,
    at: u64,
}

impl Read for PositionedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Offset indexes of the `leaves` (leaf column, values per row) of every
/// row group, from their page headers: each header is read (not the
/// page), and a page's rows are its values over the values per row (V1
/// pages) or its own count (V2). `None` when that cannot be told — a row
/// that spans pages, nulls, unknown page kinds — and the reader then
/// decodes the pages it skips.
fn walk_page_locations(
    file: &PositionedFile,
    metadata: &ParquetMetaData,
    leaves: &[(usize, usize)],
) -> Option<parquet::file::metadata::page_index::PageIndex> {
    let columns = metadata.file_metadata().schema_descr().num_columns();
    let mut index = PageIndexBuilder::new(metadata.num_row_groups(), columns);
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let rows = usize::try_from(group.num_rows()).ok()?;
        for &(leaf, per_row) in leaves {
            let column = group.column(leaf);
            let reads = Arc::new(Mutex::new(Vec::new()));
            let recorder = PositionedFile {
                header_reads: Some(reads.clone()),
                ..file.clone()
            };
            let mut pages =
                SerializedPageReader::new(Arc::new(recorder), column, rows, None).ok()?;
            let mut page_rows = Vec::new();
            while let Some(page) = pages.peek_next_page().ok()? {
                page_rows.push(if page.is_dict {
                    None
                } else {
                    let levels = page.num_levels.filter(|l| l % per_row.max(1) == 0);
                    Some(page.num_rows.or(levels.map(|l| l / per_row.max(1)))?)
                });
                pages.skip_next_page().ok()?;
            }
            let starts = reads.lock().ok()?.clone();
            if starts.len() != page_rows.len() {
                return None;
            }
            let (start, len) = column.byte_range();
            let end = start.checked_add(len)?;
            let mut locations = Vec::with_capacity(page_rows.len());
            let mut first = 0usize;
            for (i, (rows_here, &at)) in page_rows.iter().zip(&starts).enumerate() {
                let next = starts.get(i + 1).copied().unwrap_or(end);
                if let Some(r) = rows_here {
                    locations.push(PageLocation {
                        offset: i64::try_from(at).ok()?,
                        compressed_page_size: i32::try_from(next.checked_sub(at)?).ok()?,
                        first_row_index: i64::try_from(first).ok()?,
                    });
                    first += r;
                }
            }
            if first != rows {
                return None;
            }
            index.put_offset_index(
                OffsetIndexMetaData {
                    page_locations: locations,
                    unencoded_byte_array_data_bytes: None,
                },
                g,
                leaf,
            );
        }
    }
    Some(index.build())
}

impl ReadableArray for ParquetSource {
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
        // The chunk, the decoded Arrow values, their repetition and
        // definition levels (two i16 per value in a list column), and the
        // compressed and decompressed pages in flight.
        let chunk = self.grid.chunk_elements() * self.dtype().size() as u64;
        let levels = self.grid.chunk_elements() * 4;
        // Each column read holds a compressed and a decompressed page (about
        // 1 MiB, or a row when rows are larger).
        let columns = self.tensor.column_names().len() as u64;
        let row_bytes = self.grid.chunk_shape()[1..].iter().product::<u64>() * 8 / columns.max(1);
        let pages = columns * 2 * row_bytes.max(1 << 20);
        let permute = if self.tensor.is_permuted() {
            2 * chunk
        } else {
            0
        };
        2 * chunk + levels + pages + permute
    }

    fn describe(&self) -> String {
        format!(
            "Parquet file ({} row groups, {}, {}), {}",
            self.group_rows.len(),
            self.compression,
            self.page_index,
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
