//! [`WritableArray`]: a readable array whose chunks and regions can be
//! written in place.

use crate::core::{Block, DType, Element, Region, Result};
use crate::io::ReadableArray;
use crate::io::readable_array::{check_dtype, same_type_ref};

/// A [`ReadableArray`] that can also be written: a Zarr store
/// ([`ZarrArray`](crate::store::ZarrArray)). Files read in place are not
/// writable; results go to stores.
///
/// Callers use the checked, typed `write_chunk` and
/// `write_region` of `dyn WritableArray`.
///
/// ```
/// use tenrso_ooc::{Block, DType, Region};
/// use tenrso_ooc::io::WritableArray;
/// use tenrso_ooc::store::{ArraySpec, ZarrArray};
/// # let dir = tempfile::tempdir()?;
/// let array = ZarrArray::create(dir.path().join("x.zarr"), &ArraySpec::new(vec![4, 4], vec![2, 2], DType::F64))?;
/// let out: &dyn WritableArray = &array;
/// out.write_region(&Region::new([1, 1], [2, 2]), &Block::filled(vec![2, 2], 7.0))?;
/// assert_eq!(array.read_chunk::<f64>(&[0, 0])?.as_slice(), &[0.0, 0.0, 0.0, 7.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait WritableArray: ReadableArray {
    /// Writes chunk `chunk` (a block of the chunk's clipped shape) as `f32`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a block
    /// of the wrong shape; the store's write errors.
    fn write_chunk_f32(&self, chunk: &[u64], block: &Block<f32>) -> Result<()>;

    /// Writes chunk `chunk` as `f64`.
    ///
    /// # Errors
    /// As [`write_chunk_f32`](Self::write_chunk_f32).
    fn write_chunk_f64(&self, chunk: &[u64], block: &Block<f64>) -> Result<()>;

    /// Writes `region` as `f32`; chunks only partly covered are read,
    /// patched and rewritten.
    ///
    /// # Errors
    /// As [`write_chunk_f32`](Self::write_chunk_f32), and the read errors.
    fn write_region_f32(&self, region: &Region, block: &Block<f32>) -> Result<()>;

    /// Writes `region` as `f64`.
    ///
    /// # Errors
    /// As [`write_region_f32`](Self::write_region_f32).
    fn write_region_f64(&self, region: &Region, block: &Block<f64>) -> Result<()>;
}

impl dyn WritableArray + '_ {
    /// Writes chunk `chunk`, a block of its clipped shape.
    ///
    /// # Errors
    /// [`Error::DtypeMismatch`](crate::Error::DtypeMismatch),
    /// [`Error::ChunkOutOfBounds`](crate::Error::ChunkOutOfBounds), and the
    /// store's errors.
    pub fn write_chunk<T: Element>(&self, chunk: &[u64], block: &Block<T>) -> Result<()> {
        check_dtype::<T, _>(self)?;
        match T::DTYPE {
            DType::F32 => self.write_chunk_f32(chunk, same_type_ref(block)),
            DType::F64 => self.write_chunk_f64(chunk, same_type_ref(block)),
        }
    }

    /// Writes `region`; chunks only partly covered are read, patched and
    /// rewritten.
    ///
    /// # Errors
    /// [`Error::DtypeMismatch`](crate::Error::DtypeMismatch),
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a region
    /// outside the array, and the store's errors.
    pub fn write_region<T: Element>(&self, region: &Region, block: &Block<T>) -> Result<()> {
        check_dtype::<T, _>(self)?;
        region.check_within(self.shape())?;
        match T::DTYPE {
            DType::F32 => self.write_region_f32(region, same_type_ref(block)),
            DType::F64 => self.write_region_f64(region, same_type_ref(block)),
        }
    }
}
