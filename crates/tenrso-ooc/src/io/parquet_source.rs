//! [`ParquetSource`]: a Parquet file read row group by row group, page by
//! page within a row group larger than a chunk.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;

use crate::core::{DType, Element, Error, Region, Result};
use crate::dispatch_dtype;
use crate::io::arrow_tensor::{ArrowTensor, read_region_by_rows, units_overlapping};
use crate::io::chunk_source::{ChunkSource, SOURCE_CHUNK_BYTES, rows_per_chunk};

/// A Parquet file holding a tensor column (`arrow.fixed_shape_tensor`, a
/// fixed-size list or an even list) or numeric columns.
///
/// Only the footer is read when opening. A chunk is read from the row
/// groups it overlaps, selecting its rows: with the file's offset index the
/// pages before them are skipped unread, and pages are decoded one at a
/// time, so a row group larger than the memory limit is still read in
/// chunk-sized pieces.
pub struct ParquetSource {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    tensor: ArrowTensor,
    group_rows: Vec<u64>,
    first_rows: Vec<u64>,
    shape: Vec<u64>,
    chunk_shape: Vec<u64>,
    compression: String,
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
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load(&file, options)
            .map_err(|e| invalid(path, format!("not a readable Parquet file: {e}")))?;
        let schema = metadata.schema().clone();
        let groups = metadata.metadata().row_groups();
        let group_rows: Vec<u64> = groups
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
            .collect();
        let first_rows: Vec<u64> = group_rows
            .iter()
            .scan(0u64, |next, &r| Some(std::mem::replace(next, *next + r)))
            .collect();
        let total: u64 = group_rows.iter().sum();
        let tensor = ArrowTensor::from_schema(&schema, columns, path, &mut |name| {
            let index = schema
                .index_of(name)
                .map_err(|e| invalid(path, e.to_string()))?;
            let mask = ProjectionMask::roots(metadata.parquet_schema(), [index]);
            let mut reader = builder(path, &metadata)?
                .with_projection(mask)
                .with_row_selection(RowSelection::from(vec![RowSelector::select(1)]))
                .with_batch_size(1)
                .build()
                .map_err(|e| invalid(path, e.to_string()))?;
            let Some(batch) = reader.next() else {
                return Ok(0);
            };
            let batch = batch.map_err(|e| invalid(path, e.to_string()))?;
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
        let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
        let compression = groups
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
        Ok(Self {
            path: path.to_path_buf(),
            metadata,
            mask,
            tensor,
            group_rows,
            first_rows,
            shape,
            chunk_shape,
            compression,
        })
    }

    fn read_rows<T: Element>(&self, rows: Range<u64>, out: &mut [T]) -> Result<()> {
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
                invalid(
                    &self.path,
                    format!(
                        "row group {group} (rows {}..{}): {e}",
                        self.first_rows[group] + local.start as u64,
                        self.first_rows[group] + local.end as u64
                    ),
                )
            };
            let reader = builder(&self.path, &self.metadata)?
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

/// A reader builder over its own file handle (handles share no offset, so
/// chunks are read concurrently).
fn builder(
    path: &Path,
    metadata: &ArrowReaderMetadata,
) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(
        file,
        metadata.clone(),
    ))
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl ChunkSource for ParquetSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn shape(&self) -> &[u64] {
        &self.shape
    }

    fn dtype(&self) -> DType {
        self.tensor.dtype
    }

    fn chunk_shape(&self) -> &[u64] {
        &self.chunk_shape
    }

    fn chunk_working_set(&self) -> u64 {
        // The chunk, the decoded Arrow values, their repetition and
        // definition levels (two i16 per value in a list column), and the
        // compressed and decompressed pages in flight.
        let chunk = self.chunk_shape.iter().product::<u64>() * self.dtype().size() as u64;
        let levels = self.chunk_shape.iter().product::<u64>() * 4;
        2 * chunk + levels + (4 << 20)
    }

    fn describe(&self) -> String {
        format!(
            "Parquet file ({} row groups, {}), {}",
            self.group_rows.len(),
            self.compression,
            self.tensor.describe()
        )
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        dispatch_dtype!(self.dtype(), T => read_region_by_rows(
            &self.shape,
            region,
            bytemuck::cast_slice_mut::<u8, T>(out),
            |rows, out| self.read_rows(rows, out),
        ))
    }
}
