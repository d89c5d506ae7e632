//! [`open_source`]: a file outside the Zarr store (`.npy`, raw, Arrow IPC,
//! Parquet) opened as a read-only [`ReadableArray`], the reader picked by
//! the file's extension, and the [`SourceOptions`] that say how to read it.

use std::path::Path;
use std::sync::Arc;

use crate::core::{DType, Error, Result};
use crate::io::{ArrayRef, DenseSource, IpcSource, ParquetSource};

/// Bytes aimed at for one chunk of a source whose own units (record
/// batches, row groups) are larger or uneven.
pub(crate) const SOURCE_CHUNK_BYTES: u64 = 8 << 20;

/// How to read a source file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceOptions {
    /// Columns of an Arrow/Parquet table to read: one list column (a
    /// tensor), or numeric columns (a `rows × columns` matrix). `None`: the
    /// only list column, else all columns.
    pub columns: Option<Vec<String>>,
    /// Shape and element type of a raw binary file (any file whose
    /// extension is not one of the formats above).
    pub raw: Option<(Vec<u64>, DType)>,
}

impl SourceOptions {
    /// Reads a raw binary file as `dtype` values of `shape` (C order, little
    /// endian).
    pub fn with_raw(mut self, shape: impl Into<Vec<u64>>, dtype: DType) -> Self {
        self.raw = Some((shape.into(), dtype));
        self
    }

    /// Reads only these columns of an Arrow/Parquet table.
    pub fn with_columns(mut self, columns: Vec<String>) -> Self {
        self.columns = Some(columns);
        self
    }
}

/// File formats read as sources, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// NumPy `.npy`.
    Npy,
    /// Arrow IPC, file or stream format (`.arrow`, `.arrows`, `.feather`, `.ipc`).
    ArrowIpc,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
}

impl SourceFormat {
    /// The format `path`'s extension names, if any.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "npy" => Some(Self::Npy),
            "arrow" | "arrows" | "feather" | "ipc" => Some(Self::ArrowIpc),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// Opens the file `path` as a read-only array read in place: by its
/// extension `.npy`, Arrow IPC or Parquet; any other file as raw binary when
/// [`SourceOptions::raw`] gives its layout. Zarr stores and files alike open
/// with [`open_array`](crate::store::open_array).
///
/// # Errors
/// [`Error::InvalidArgument`] for a file of no known format and no raw
/// layout, or options that do not apply to the format; the reader's errors
/// ([`Error::InvalidFile`] for a damaged file).
///
/// ```
/// use tenrso_ooc::io::{DenseFile, SourceOptions, open_source};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.npy");
/// DenseFile::create_npy(&path, tenrso_ooc::DType::F32, &[1000, 3])?;
/// let source = open_source(&path, &SourceOptions::default())?;
/// assert_eq!(source.shape(), &[1000, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_source(path: &Path, options: &SourceOptions) -> Result<ArrayRef> {
    let format = SourceFormat::of(path);
    let columns = options.columns.as_deref();
    if columns.is_some() && !matches!(format, Some(SourceFormat::ArrowIpc | SourceFormat::Parquet))
    {
        return Err(Error::invalid(format!(
            "{}: column names (SourceOptions::columns) apply to Arrow and Parquet files",
            path.display()
        )));
    }
    match (format, &options.raw) {
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "{}: a raw layout (SourceOptions::raw) applies to headerless files, not to .npy, Arrow or Parquet",
            path.display()
        ))),
        (Some(SourceFormat::Npy), None) => Ok(Arc::new(DenseSource::open_npy(path)?)),
        (Some(SourceFormat::ArrowIpc), None) => Ok(Arc::new(IpcSource::open(path, columns)?)),
        (Some(SourceFormat::Parquet), None) => Ok(Arc::new(ParquetSource::open(path, columns)?)),
        (None, Some((shape, dtype))) => Ok(Arc::new(DenseSource::open_raw(
            path,
            shape.clone(),
            *dtype,
        )?)),
        (None, None) => Err(Error::invalid(format!(
            "{} is read as raw binary (it is not .npy, .arrow/.arrows/.feather/.ipc or .parquet): give its shape and element type (SourceOptions::with_raw)",
            path.display()
        ))),
    }
}

/// Rows per chunk for a file stored in units of `unit_rows` rows (record
/// batches, row groups) of `row_bytes` each: when the units are even, as
/// many whole units as fit `target` bytes (at least one), or a divisor of a
/// larger unit near `target` (so no chunk straddles two units); else
/// `target`'s rows.
pub(crate) fn rows_per_chunk(unit_rows: &[u64], row_bytes: u64, target: u64) -> u64 {
    let target_rows = (target / row_bytes.max(1)).max(1);
    let Some(&unit) = unit_rows.first() else {
        return target_rows;
    };
    let even = unit > 0
        && unit_rows[..unit_rows.len() - 1].iter().all(|&r| r == unit)
        && unit_rows.last().is_some_and(|&r| r <= unit);
    if !even {
        return target_rows;
    }
    if unit <= target_rows {
        return target_rows / unit * unit;
    }
    let pieces = unit.div_ceil(target_rows);
    (pieces..=2 * pieces)
        .find(|p| unit % p == 0)
        .map_or(target_rows, |p| unit / p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_even_units_and_split_large_ones_evenly() {
        // Even units that fit: whole units per chunk (the last may be short).
        assert_eq!(rows_per_chunk(&[100, 100, 37], 1000, 8 << 20), 8300);
        assert_eq!(rows_per_chunk(&[100, 100, 37], 1 << 16, 8 << 20), 100);
        // Units of 2048 rows of 32 KiB under an 8 MiB target: 256 rows, a divisor.
        assert_eq!(rows_per_chunk(&[2048; 32], 32 << 10, 8 << 20), 256);
        // No divisor nearby (a prime unit): the target's rows.
        assert_eq!(rows_per_chunk(&[1009, 1009], 1 << 20, 8 << 20), 8);
        // Uneven units: the target's rows.
        assert_eq!(rows_per_chunk(&[10, 30, 10], 1 << 20, 4 << 20), 4);
        // No units (an empty file).
        assert_eq!(rows_per_chunk(&[], 8, 80), 10);
        // Compressed batches: the largest batch as the target.
        assert_eq!(rows_per_chunk(&[5000, 5000], 1 << 20, 5000 << 20), 5000);
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            SourceFormat::of(Path::new("a/x.PARQUET")),
            Some(SourceFormat::Parquet)
        );
        assert_eq!(
            SourceFormat::of(Path::new("x.arrows")),
            Some(SourceFormat::ArrowIpc)
        );
        assert_eq!(
            SourceFormat::of(Path::new("x.feather")),
            Some(SourceFormat::ArrowIpc)
        );
        assert_eq!(
            SourceFormat::of(Path::new("x.npy")),
            Some(SourceFormat::Npy)
        );
        assert_eq!(SourceFormat::of(Path::new("x.zarr")), None);
        let err = open_source(Path::new("x.csv"), &SourceOptions::default()).unwrap_err();
        assert!(err.to_string().contains("read as raw binary"), "{err}");
    }
}
