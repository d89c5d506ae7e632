//! [`ReadableArray`]: what every operation reads — a chunked `f32`/`f64`
//! array, whether a Zarr store or a file read in place.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::{Block, ChunkGrid, ChunkSet, DType, Element, Error, Region, Result};

/// Bytes of one row (every axis but the first) of `array`'s interior
/// chunks: the unit its chunks are streamed in.
pub(crate) fn chunk_row_bytes(array: &(impl ReadableArray + ?Sized)) -> u64 {
    let inner: u64 = array.chunk_grid().chunk_shape().iter().skip(1).product();
    inner * array.dtype().size() as u64
}

/// A chunked array that can be read chunk by chunk or region by region:
/// a Zarr store ([`ZarrArray`](crate::store::ZarrArray)) or a `.npy`, raw,
/// Arrow IPC or Parquet file read in place. Every operation takes its inputs
/// as an [`ArrayRef`]; open one with
/// [`open_array`](crate::store::open_array).
///
/// Implementations provide the layout and
/// [`read_region_into`](Self::read_region_into); the typed reads have
/// defaults built on it, which stores override to decode straight into the
/// block. Callers use the checked, typed `read_chunk`
/// and `read_region` of `dyn ReadableArray`, which
/// refuse a wrong element type, a chunk outside the grid or a region outside
/// the array before calling the implementation.
///
/// ```
/// use std::sync::Arc;
/// use tenrso_ooc::DType;
/// use tenrso_ooc::io::{ArrayRef, DenseFile, SourceOptions};
/// use tenrso_ooc::store::open_array;
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.npy");
/// DenseFile::create_npy(&path, DType::F64, &[1000, 3])?;
/// let x: ArrayRef = open_array(&path, &SourceOptions::default())?;
/// assert_eq!(x.shape(), &[1000, 3]);
/// let first = x.read_chunk::<f64>(&[0, 0])?;
/// assert_eq!(first.shape()[1], 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ReadableArray: Send + Sync + fmt::Debug {
    /// The array's directory or file.
    fn path(&self) -> &Path;

    /// Element type the values are read as.
    fn dtype(&self) -> DType;

    /// The grid of chunks it reads best (stored chunks, or shards).
    fn chunk_grid(&self) -> &ChunkGrid;

    /// Bytes held while one chunk is read (decoding buffers included).
    fn chunk_working_set(&self) -> u64;

    /// One line: format, codecs or compression, layout.
    fn describe(&self) -> String;

    /// The array as [`Any`](std::any::Any), to reach what only its
    /// concrete type offers (e.g. a [`ZarrArray`](crate::store::ZarrArray)'s
    /// attributes).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Reads `region` (inside the array) in C order into `out`: native-endian
    /// elements of [`dtype`](Self::dtype), exactly the region's bytes.
    ///
    /// # Errors
    /// [`Error::InvalidFile`] or [`Error::Corrupt`] for damaged data, naming
    /// the file and where; [`Error::Io`].
    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()>;

    /// Streams chunk `chunk` to `each` in slabs of at most `slab_rows` rows
    /// of its first axis, in order: each call gets the slab's first row
    /// (relative to the chunk) and its elements in C order, as
    /// native-endian bytes (aligned for the element type). Integrity checks
    /// may complete only after the last slab: nothing derived from the
    /// slabs may be committed before this returns `Ok`. The default reads
    /// each slab with [`read_region_into`](Self::read_region_into); stores
    /// override it to decode a chunk once, in order.
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into), and whatever `each`
    /// returns.
    fn stream_chunk_rows(
        &self,
        chunk: &[u64],
        slab_rows: u64,
        each: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let region = self.chunk_grid().chunk_region(chunk);
        let Some(&rows) = region.shape().first() else {
            let mut scalar = [0u64; 1];
            let bytes = &mut bytemuck::cast_slice_mut(&mut scalar)[..self.dtype().size()];
            self.read_region_into(&region, bytes)?;
            return each(0, bytes);
        };
        let row_bytes = region.shape()[1..].iter().product::<u64>() * self.dtype().size() as u64;
        let slab_rows = slab_rows.clamp(1, rows.max(1));
        let mut buffer = vec![0u64; (slab_rows * row_bytes).div_ceil(8) as usize];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buffer);
        for r0 in (0..rows).step_by(slab_rows as usize) {
            let n = slab_rows.min(rows - r0);
            let mut start = region.start().to_vec();
            start[0] += r0;
            let mut shape = region.shape().to_vec();
            shape[0] = n;
            let slab = &mut bytes[..(n * row_bytes) as usize];
            self.read_region_into(&Region::new(start, shape), slab)?;
            each(r0, slab)?;
        }
        Ok(())
    }

    /// Bytes held while [`stream_chunk_rows`](Self::stream_chunk_rows)
    /// streams an interior chunk in slabs of `slab_rows` rows: the slab
    /// buffer and (by default, conservatively) one chunk read.
    fn stream_working_set(&self, slab_rows: u64) -> u64 {
        slab_rows.saturating_mul(chunk_row_bytes(self)) + self.chunk_working_set()
    }

    /// Extent along each axis.
    fn shape(&self) -> &[u64] {
        self.chunk_grid().shape().dims()
    }

    /// Uncompressed size of the whole array in bytes.
    fn nbytes(&self) -> u64 {
        self.chunk_grid().shape().num_elements() * self.dtype().size() as u64
    }

    /// Uncompressed bytes of one interior chunk.
    fn chunk_nbytes(&self) -> u64 {
        self.chunk_grid().chunk_elements() * self.dtype().size() as u64
    }

    /// Uncompressed bytes of chunk `chunk` (smaller at the array's edges).
    fn nbytes_of(&self, chunk: &[u64]) -> u64 {
        self.chunk_grid().chunk_region(chunk).num_elements() * self.dtype().size() as u64
    }

    /// True when reading any part of a row costs reading the whole row
    /// (row-oriented formats: Arrow IPC, Parquet), so readers should take
    /// whole rows at a time.
    fn reads_whole_rows(&self) -> bool {
        false
    }

    /// True when every chunk carries a checksum, so corruption is always
    /// detected.
    fn has_checksum(&self) -> bool {
        false
    }

    /// What identifies the array's content, for job records: resuming a run
    /// refuses an input whose fingerprint changed. Default: the file's size
    /// and modification time.
    fn fingerprint(&self) -> Value {
        let meta = std::fs::metadata(self.path()).ok();
        let modified = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        json!({
            "bytes": meta.map_or(0, |m| m.len()),
            "modified_ns": modified.to_string(),
            "layout": self.describe(),
            "shape": self.shape(),
            "dtype": self.dtype().short_name(),
            "chunk_shape": self.chunk_grid().chunk_shape(),
        })
    }

    /// Chunks that hold data (a store's written chunks; every chunk of a
    /// file): the others are the fill value.
    ///
    /// # Errors
    /// [`Error::Io`] when a store cannot be listed.
    fn stored_chunk_set(&self) -> Result<ChunkSet> {
        Ok(ChunkSet::all(self.chunk_grid().num_chunks()))
    }

    /// Bytes of the chunks of `stored` (a set of this array's chunks):
    /// exact when every chunk is stored or up to 2²⁴ are, else bounded by
    /// whole chunks (edge chunks counted whole).
    fn stored_nbytes(&self, stored: &ChunkSet) -> u64 {
        if stored.is_all() {
            return self.nbytes();
        }
        if stored.len() > 1 << 24 {
            return (stored.len().saturating_mul(self.chunk_nbytes())).min(self.nbytes());
        }
        let grid = self.chunk_grid();
        stored
            .iter()
            .map(|i| grid.chunk_region(&grid.chunk_coords(i)).num_elements())
            .sum::<u64>()
            * self.dtype().size() as u64
    }

    /// The value of every element of a chunk that is not stored.
    fn fill_value(&self) -> f64 {
        0.0
    }

    /// Coordinates of the chunks that hold data, in C order (see
    /// [`stored_chunk_set`](Self::stored_chunk_set)).
    ///
    /// # Errors
    /// As [`stored_chunk_set`](Self::stored_chunk_set).
    fn stored_chunks(&self) -> Result<Vec<Vec<u64>>> {
        let grid = self.chunk_grid();
        Ok(self
            .stored_chunk_set()?
            .iter()
            .map(|i| grid.chunk_coords(i))
            .collect())
    }

    /// Temporary files that writers killed mid-write left behind (harmless:
    /// never read). Files read in place have none.
    ///
    /// # Errors
    /// [`Error::Io`] when a store cannot be walked.
    fn stale_temporaries(&self) -> Result<Vec<std::path::PathBuf>> {
        Ok(Vec::new())
    }

    /// Bytes the array occupies on disk.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be queried.
    fn bytes_on_disk(&self) -> Result<u64> {
        Ok(std::fs::metadata(self.path())
            .map_err(|e| Error::io(self.path(), e))?
            .len())
    }

    /// Reads chunk `chunk` as `f32` (checked by the caller).
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into).
    fn read_chunk_f32(&self, chunk: &[u64]) -> Result<Block<f32>> {
        check_chunk(self, chunk)?;
        self.read_region_f32(&self.chunk_grid().chunk_region(chunk))
    }

    /// Reads chunk `chunk` as `f64` (checked by the caller).
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into).
    fn read_chunk_f64(&self, chunk: &[u64]) -> Result<Block<f64>> {
        check_chunk(self, chunk)?;
        self.read_region_f64(&self.chunk_grid().chunk_region(chunk))
    }

    /// Reads chunk `chunk` as `f32`, its stored bytes in place where the
    /// array can instead of a copy ([`ZarrArray`] maps large uncompressed
    /// chunks): for a chunk loaded ahead of its use, whose copy would have
    /// left the CPU caches by then anyway (the executor asks for it where
    /// [`ChunkGraph::read_in_place`] is set). The default reads it as
    /// [`read_chunk_f32`](Self::read_chunk_f32) does.
    ///
    /// [`ChunkGraph::read_in_place`]: crate::plan::ChunkGraph::read_in_place
    ///
    /// [`ZarrArray`]: crate::store::ZarrArray
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into).
    fn read_chunk_in_place_f32(&self, chunk: &[u64]) -> Result<Block<f32>> {
        self.read_chunk_f32(chunk)
    }

    /// [`read_chunk_in_place_f32`](Self::read_chunk_in_place_f32) as `f64`.
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into).
    fn read_chunk_in_place_f64(&self, chunk: &[u64]) -> Result<Block<f64>> {
        self.read_chunk_f64(chunk)
    }

    /// Reads `region` as `f32` (checked by the caller).
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into).
    fn read_region_f32(&self, region: &Region) -> Result<Block<f32>> {
        read_region_via_bytes(self, region)
    }

    /// Reads `region` as `f64` (checked by the caller).
    ///
    /// # Errors
    /// As [`read_region_into`](Self::read_region_into).
    fn read_region_f64(&self, region: &Region) -> Result<Block<f64>> {
        read_region_via_bytes(self, region)
    }
}

/// A shared, type-erased readable array: how operations hold their inputs.
pub type ArrayRef = Arc<dyn ReadableArray>;

/// Anything an operation accepts as an input array: an `Arc` of a concrete
/// array (`Arc<ZarrArray>`) or an [`ArrayRef`].
pub trait IntoArrayRef {
    /// A shared handle to the array.
    fn array_ref(&self) -> ArrayRef;
}

impl<A: ReadableArray + 'static> IntoArrayRef for Arc<A> {
    fn array_ref(&self) -> ArrayRef {
        self.clone()
    }
}

impl IntoArrayRef for ArrayRef {
    fn array_ref(&self) -> ArrayRef {
        self.clone()
    }
}

impl<A: IntoArrayRef + ?Sized> IntoArrayRef for &A {
    fn array_ref(&self) -> ArrayRef {
        (**self).array_ref()
    }
}

impl dyn ReadableArray + '_ {
    /// Reads chunk `chunk`, clipped to the array.
    ///
    /// # Errors
    /// [`Error::DtypeMismatch`], [`Error::ChunkOutOfBounds`], and the
    /// array's read errors.
    pub fn read_chunk<T: Element>(&self, chunk: &[u64]) -> Result<Block<T>> {
        // Bounds are checked by every implementation (the defaults too).
        check_dtype::<T, _>(self)?;
        match T::DTYPE {
            DType::F32 => self.read_chunk_f32(chunk).map(same_type),
            DType::F64 => self.read_chunk_f64(chunk).map(same_type),
        }
    }

    /// Reads chunk `chunk`, clipped to the array, in place where the array
    /// can: see [`ReadableArray::read_chunk_in_place_f64`].
    ///
    /// # Errors
    /// As [`read_chunk`](Self::read_chunk).
    pub fn read_chunk_in_place<T: Element>(&self, chunk: &[u64]) -> Result<Block<T>> {
        check_dtype::<T, _>(self)?;
        match T::DTYPE {
            DType::F32 => self.read_chunk_in_place_f32(chunk).map(same_type),
            DType::F64 => self.read_chunk_in_place_f64(chunk).map(same_type),
        }
    }

    /// Reads `region`, assembled from the chunks it touches.
    ///
    /// # Errors
    /// [`Error::DtypeMismatch`], [`Error::InvalidArgument`] for a region
    /// outside the array, and the array's read errors.
    pub fn read_region<T: Element>(&self, region: &Region) -> Result<Block<T>> {
        check_dtype::<T, _>(self)?;
        match T::DTYPE {
            DType::F32 => self.read_region_f32(region).map(same_type),
            DType::F64 => self.read_region_f64(region).map(same_type),
        }
    }
}

/// [`Error::ChunkOutOfBounds`] unless `chunk` is in `array`'s grid.
fn check_chunk<A: ReadableArray + ?Sized>(array: &A, chunk: &[u64]) -> Result<()> {
    if array.chunk_grid().contains_chunk(chunk) {
        Ok(())
    } else {
        Err(Error::ChunkOutOfBounds {
            array: array.path().to_path_buf(),
            chunk: chunk.to_vec(),
            grid: array.chunk_grid().grid_shape().to_vec(),
        })
    }
}

/// What implementations of [`ReadableArray::read_region_into`] check first:
/// [`Error::InvalidArgument`] for a region outside the array,
/// [`Error::Internal`] for a buffer that is not the region's size.
pub(crate) fn check_region_into<A: ReadableArray + ?Sized>(
    array: &A,
    region: &Region,
    out: &[u8],
) -> Result<()> {
    region.check_within(array.shape())?;
    let want = region.num_elements() * array.dtype().size() as u64;
    if out.len() as u64 == want {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{}: a buffer of {} bytes for region {region} of {want} bytes",
            array.path().display(),
            out.len()
        )))
    }
}

/// [`Error::DtypeMismatch`] unless `array` holds `T`.
pub(crate) fn check_dtype<T: Element, A: ReadableArray + ?Sized>(array: &A) -> Result<()> {
    if T::DTYPE == array.dtype() {
        Ok(())
    } else {
        Err(Error::DtypeMismatch {
            array: array.path().to_path_buf(),
            stored: array.dtype(),
            requested: T::DTYPE,
        })
    }
}

/// The default typed read: a zeroed block filled by
/// [`ReadableArray::read_region_into`].
fn read_region_via_bytes<A: ReadableArray + ?Sized, T: Element>(
    array: &A,
    region: &Region,
) -> Result<Block<T>> {
    check_dtype::<T, A>(array)?;
    region.check_within(array.shape())?;
    let mut data = vec![T::ZERO; region.num_elements() as usize];
    array.read_region_into(region, bytemuck::cast_slice_mut(&mut data))?;
    Block::from_vec(region.shape().to_vec(), data)
}

/// `value` as a `U`, where `T` and `U` are the same type (checked by the
/// callers through [`Element::DTYPE`]): moves it, no copy.
pub(crate) fn same_type<T: 'static, U: 'static>(value: T) -> U {
    let mut slot = Some(value);
    (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
        .expect("same_type between different types")
}

/// [`same_type`] for a reference.
pub(crate) fn same_type_ref<T: 'static, U: 'static>(value: &T) -> &U {
    (value as &dyn std::any::Any)
        .downcast_ref::<U>()
        .expect("same_type_ref between different types")
}
