//! [`ColumnarWriter`]: writes an array as Arrow IPC (file or stream) or
//! Parquet, one slab of rows (a record batch, a row group) at a time.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow_ipc::CompressionType;
use arrow_ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use arrow_schema::{ArrowError, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::core::{DType, Element, Error, Result};
use crate::io::arrow_layout::ArrowTensor;

/// Compression of Arrow IPC buffers or Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnarCompression {
    /// Stored as is (an uncompressed IPC file is then read zero-copy).
    None,
    /// LZ4 (frame format in IPC, raw LZ4 in Parquet).
    Lz4,
    /// Zstandard, level 1.
    Zstd,
    /// Snappy (Parquet only).
    Snappy,
}

impl FromStr for ColumnarCompression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Ok(Self::None),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            "snappy" => Ok(Self::Snappy),
            _ => Err(Error::invalid(format!(
                "unknown compression `{s}` (expected zstd, lz4, snappy or none)"
            ))),
        }
    }
}

/// How [`Export`](crate::ops::Export) writes Arrow IPC and Parquet files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnarOptions {
    /// Compression; `None` for the format's default (IPC: none, so that it
    /// is read zero-copy; Parquet: zstd).
    pub compression: Option<ColumnarCompression>,
    /// Rows per record batch or row group; `None` sizes them from the
    /// memory limit.
    pub row_group_rows: Option<u64>,
    /// Write a 2-d array as a table of numeric columns with these names
    /// (one per column) instead of a `fixed_shape_tensor` column.
    pub columns: Option<Vec<String>>,
}

impl ColumnarOptions {
    /// Sets the compression (`None`: the format's default).
    pub fn with_compression(mut self, compression: Option<ColumnarCompression>) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the rows per record batch or row group (`None`: from the memory
    /// limit).
    pub fn with_row_group_rows(mut self, rows: Option<u64>) -> Self {
        self.row_group_rows = rows;
        self
    }

    /// Writes a 2-d array as numeric columns named `columns` (`None`: one
    /// `fixed_shape_tensor` column).
    pub fn with_columns(mut self, columns: Option<Vec<String>>) -> Self {
        self.columns = columns;
        self
    }
}

enum Sink {
    IpcFile(FileWriter<BufWriter<File>>),
    IpcStream(StreamWriter<BufWriter<File>>),
    Parquet(ArrowWriter<File>),
}

/// Writes record batches of a tensor to an IPC file, IPC stream (`.arrows`)
/// or Parquet file.
pub(crate) struct ColumnarWriter {
    tensor: ArrowTensor,
    schema: Arc<Schema>,
    sink: Sink,
    path: std::path::PathBuf,
}

impl ColumnarWriter {
    /// Creates `path` (written in `format`, which `name` — the final file
    /// name — selects) for an array of `dtype` and `shape`.
    pub(crate) fn create(
        path: &Path,
        name: &Path,
        dtype: DType,
        shape: &[u64],
        options: &ColumnarOptions,
    ) -> Result<Self> {
        let tensor = ArrowTensor::for_writing(dtype, shape, options.columns.as_deref(), name)?;
        let schema = Arc::new(tensor.schema());
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let arrow = |e: ArrowError| arrow_error(name, e);
        let format = crate::io::SourceFormat::of(name);
        let sink = if format == Some(crate::io::SourceFormat::Parquet) {
            let compression = match options.compression.unwrap_or(ColumnarCompression::Zstd) {
                ColumnarCompression::None => Compression::UNCOMPRESSED,
                ColumnarCompression::Lz4 => Compression::LZ4_RAW,
                ColumnarCompression::Snappy => Compression::SNAPPY,
                ColumnarCompression::Zstd => {
                    Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid"))
                }
            };
            let properties = WriterProperties::builder()
                .set_compression(compression)
                .set_dictionary_enabled(false)
                .set_statistics_enabled(EnabledStatistics::Page)
                .set_max_row_group_row_count(None)
                .set_max_row_group_bytes(None)
                .build();
            Sink::Parquet(
                ArrowWriter::try_new(file, schema.clone(), Some(properties))
                    .map_err(|e| parquet_error(name, e))?,
            )
        } else {
            let compression = match options.compression.unwrap_or(ColumnarCompression::None) {
                ColumnarCompression::None => None,
                ColumnarCompression::Lz4 => Some(CompressionType::LZ4_FRAME),
                ColumnarCompression::Zstd => Some(CompressionType::ZSTD),
                ColumnarCompression::Snappy => {
                    return Err(Error::invalid(
                        "Arrow IPC compresses with lz4 or zstd, not snappy",
                    ));
                }
            };
            let ipc_options = IpcWriteOptions::default()
                .try_with_compression(compression)
                .map_err(arrow)?;
            let out = BufWriter::with_capacity(1 << 20, file);
            let stream = name
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("arrows"));
            if stream {
                Sink::IpcStream(
                    StreamWriter::try_new_with_options(out, &schema, ipc_options).map_err(arrow)?,
                )
            } else {
                Sink::IpcFile(
                    FileWriter::try_new_with_options(out, &schema, ipc_options).map_err(arrow)?,
                )
            }
        };
        Ok(Self {
            tensor,
            schema,
            sink,
            path: name.to_path_buf(),
        })
    }

    /// Appends `rows` rows (their values in C order) as record batches or
    /// row groups of `batch_rows` rows (the last one may be shorter). The
    /// values are moved into the batches, not copied, and arrow-ipc writes
    /// uncompressed buffers as they are: a chunk's buffer goes to the file
    /// with no copy of ours.
    pub(crate) fn write<T: Element>(
        &mut self,
        values: Vec<T>,
        rows: usize,
        batch_rows: usize,
    ) -> Result<()> {
        let batch = self.tensor.batch_of(&self.schema, values, rows)?;
        let path = &self.path;
        let batch_rows = batch_rows.max(1);
        for start in (0..rows).step_by(batch_rows) {
            let part = batch.slice(start, batch_rows.min(rows - start));
            match &mut self.sink {
                Sink::IpcFile(w) => w.write(&part).map_err(|e| arrow_error(path, e))?,
                Sink::IpcStream(w) => w.write(&part).map_err(|e| arrow_error(path, e))?,
                Sink::Parquet(w) => {
                    w.write(&part).map_err(|e| parquet_error(path, e))?;
                    w.flush().map_err(|e| parquet_error(path, e))?;
                }
            }
        }
        Ok(())
    }

    /// Writes the footer and syncs the file.
    pub(crate) fn finish(self, temp: &Path) -> Result<()> {
        let path = &self.path;
        let fail = |e: ArrowError| arrow_error(path, e);
        let file = match self.sink {
            Sink::IpcFile(mut w) => {
                w.finish().map_err(fail)?;
                w.into_inner()
                    .map_err(fail)?
                    .into_inner()
                    .map_err(|e| Error::io(temp, e.into_error()))?
            }
            Sink::IpcStream(mut w) => {
                w.finish().map_err(fail)?;
                w.into_inner()
                    .map_err(fail)?
                    .into_inner()
                    .map_err(|e| Error::io(temp, e.into_error()))?
            }
            Sink::Parquet(w) => w.into_inner().map_err(|e| parquet_error(path, e))?,
        };
        file.sync_all().map_err(|e| Error::io(temp, e))
    }
}

/// An Arrow error while writing `path`: I/O failures (a full disk) stay
/// I/O errors.
fn arrow_error(path: &Path, e: ArrowError) -> Error {
    match e {
        ArrowError::IoError(_, io) => Error::io(path, io),
        other => Error::invalid(format!("{}: {other}", path.display())),
    }
}

/// A Parquet error while writing `path`: I/O failures stay I/O errors.
fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::io(path, *io),
                Err(other) => Error::invalid(format!("{}: {other}", path.display())),
            }
        }
        other => Error::invalid(format!("{}: {other}", path.display())),
    }
}
