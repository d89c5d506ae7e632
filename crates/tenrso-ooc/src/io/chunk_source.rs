//! [`ChunkSource`]: a file read in place as a read-only chunked array
//! (`.npy`, Arrow IPC, Parquet), and [`open_source`], which picks the reader
//! by file extension.

use std::path::Path;
use std::sync::Arc;

use crate::core::{ChunkGrid, DType, Error, Region, Result};
use crate::dispatch_dtype;
use crate::io::{DenseFile, IpcSource, ParquetSource};

/// Bytes aimed at for one chunk of a source whose own units (record
/// batches, row groups) are larger or uneven.
pub(crate) const SOURCE_CHUNK_BYTES: u64 = 8 << 20;

/// A file holding one dense array, read region by region without importing
/// it: the chunk grid follows the file's own units (record batches, row
/// groups) where they allow.
///
/// Open one with [`open_source`]; [`ZarrArray::open`](crate::store::ZarrArray::open)
/// does it for such files, so every operation reads them directly.
pub trait ChunkSource: Send + Sync + std::fmt::Debug {
    /// The file.
    fn path(&self) -> &Path;
    /// Extent along each axis.
    fn shape(&self) -> &[u64];
    /// Element type the values are read as.
    fn dtype(&self) -> DType;
    /// Shape of the chunks it reads best.
    fn chunk_shape(&self) -> &[u64];
    /// Bytes held while one chunk is read (decoding buffers included).
    fn chunk_working_set(&self) -> u64;
    /// One line: format, compression and layout.
    fn describe(&self) -> String;
    /// Reads `region` in C order into `out`, native-endian elements of
    /// [`ChunkSource::dtype`] (`out` has exactly the region's bytes).
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for damaged or inconsistent data, naming the
    /// file and where; [`Error::Io`].
    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()>;
}

/// How to read a source file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceOptions {
    /// Columns of an Arrow/Parquet table to read: one list column (a
    /// tensor), or numeric columns (a `rows × columns` matrix). `None`: the
    /// only list column, else all columns.
    pub columns: Option<Vec<String>>,
}

impl SourceOptions {
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

/// Opens `path` as a read-only chunked source, by its extension.
///
/// # Errors
/// [`Error::InvalidArgument`] for an extension that is not a source format;
/// the reader's errors ([`Error::InvalidFile`] for a damaged file).
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
pub fn open_source(path: &Path, options: &SourceOptions) -> Result<Arc<dyn ChunkSource>> {
    let columns = options.columns.as_deref();
    match SourceFormat::of(path) {
        Some(SourceFormat::Npy) => {
            if columns.is_some() {
                return Err(Error::invalid(format!(
                    "{}: column names (SourceOptions::columns) apply to Arrow and Parquet files",
                    path.display()
                )));
            }
            Ok(Arc::new(NpySource::open(path)?))
        }
        Some(SourceFormat::ArrowIpc) => Ok(Arc::new(IpcSource::open(path, columns)?)),
        Some(SourceFormat::Parquet) => Ok(Arc::new(ParquetSource::open(path, columns)?)),
        None => Err(Error::invalid(format!(
            "{}: not a source file (.npy, .arrow/.arrows/.feather/.ipc or .parquet)",
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

/// A `.npy` file read region by region with positioned reads.
#[derive(Debug)]
struct NpySource {
    file: DenseFile,
    chunk_shape: Vec<u64>,
}

impl NpySource {
    fn open(path: &Path) -> Result<Self> {
        let file = DenseFile::open_npy(path)?;
        let layout = file.layout();
        let chunk_shape = ChunkGrid::auto_chunk_shape(
            &layout.shape,
            layout.dtype.size() as u64,
            SOURCE_CHUNK_BYTES,
        );
        Ok(Self { file, chunk_shape })
    }
}

impl ChunkSource for NpySource {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn shape(&self) -> &[u64] {
        self.file.shape()
    }

    fn dtype(&self) -> DType {
        self.file.layout().dtype
    }

    fn chunk_shape(&self) -> &[u64] {
        &self.chunk_shape
    }

    fn chunk_working_set(&self) -> u64 {
        // The block read, its transposed copy (Fortran order), and the
        // chunk's copy of it.
        3 * self.chunk_shape.iter().product::<u64>() * self.dtype().size() as u64
    }

    fn describe(&self) -> String {
        let layout = self.file.layout();
        format!(
            ".npy file ({} order, {} endian)",
            if layout.fortran_order { "Fortran" } else { "C" },
            if layout.big_endian { "big" } else { "little" }
        )
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        dispatch_dtype!(self.dtype(), T => {
            let block = self.file.read_region::<T>(region)?;
            out.copy_from_slice(bytemuck::cast_slice(block.as_slice()));
        });
        Ok(())
    }
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
        assert!(err.to_string().contains("not a source file"), "{err}");
    }
}
