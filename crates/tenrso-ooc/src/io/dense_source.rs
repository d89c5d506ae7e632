//! [`DenseSource`]: a `.npy` or raw binary file read in place as a
//! read-only chunked array, region by region with positioned reads.

use std::path::Path;

use crate::core::{Block, ChunkGrid, DType, Region, Result};
use crate::dispatch_dtype;
use crate::io::source_file::SOURCE_CHUNK_BYTES;
use crate::io::{DenseFile, ReadableArray, check_region_into};

/// A `.npy` (C or Fortran order, either endianness) or raw (C order, little
/// endian) file read in place, in chunks of about 8 MiB.
#[derive(Debug)]
pub struct DenseSource {
    file: DenseFile,
    grid: ChunkGrid,
    npy: bool,
}

impl DenseSource {
    /// Opens a `.npy` file.
    ///
    /// # Errors
    /// [`Error::InvalidFile`](crate::Error::InvalidFile) for a malformed or
    /// truncated file.
    pub fn open_npy(path: &Path) -> Result<Self> {
        Self::new(DenseFile::open_npy(path)?, true)
    }

    /// Opens a headerless file of `shape` and `dtype`.
    ///
    /// # Errors
    /// [`Error::InvalidFile`](crate::Error::InvalidFile) when the file size
    /// is not exactly the data size.
    pub fn open_raw(path: &Path, shape: Vec<u64>, dtype: DType) -> Result<Self> {
        Self::new(DenseFile::open_raw(path, shape, dtype)?, false)
    }

    fn new(file: DenseFile, npy: bool) -> Result<Self> {
        let layout = file.layout();
        let chunk_shape = ChunkGrid::auto_chunk_shape(
            &layout.shape,
            layout.dtype.size() as u64,
            SOURCE_CHUNK_BYTES,
        );
        let grid = ChunkGrid::new(layout.shape.clone(), chunk_shape)?;
        Ok(Self { file, grid, npy })
    }
}

impl ReadableArray for DenseSource {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn dtype(&self) -> DType {
        self.file.layout().dtype
    }

    fn chunk_grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn chunk_working_set(&self) -> u64 {
        // The block read, its transposed copy (Fortran order), and the
        // chunk's copy of it.
        3 * self.grid.chunk_elements() * self.dtype().size() as u64
    }

    fn describe(&self) -> String {
        let layout = self.file.layout();
        if !self.npy {
            return "raw file (C order, little endian)".into();
        }
        format!(
            ".npy file ({} order, {} endian)",
            if layout.fortran_order { "Fortran" } else { "C" },
            if layout.big_endian { "big" } else { "little" }
        )
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn read_region_into(&self, region: &Region, out: &mut [u8]) -> Result<()> {
        check_region_into(self, region, out)?;
        dispatch_dtype!(self.dtype(), T => {
            let block = self.file.read_region::<T>(region)?;
            out.copy_from_slice(bytemuck::cast_slice(block.as_slice()));
        });
        Ok(())
    }

    fn read_region_f32(&self, region: &Region) -> Result<Block<f32>> {
        self.file.read_region(region)
    }

    fn read_region_f64(&self, region: &Region) -> Result<Block<f64>> {
        self.file.read_region(region)
    }
}
