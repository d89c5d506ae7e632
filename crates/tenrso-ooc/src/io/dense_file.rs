//! [`DenseFile`]: positioned reads and writes of regions of a dense n-d array
//! stored contiguously in a file (`.npy` data, raw binary).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::core::shape::join_dims;
use crate::core::{Block, ContiguousRuns, DType, Element, Error, Region, Result, Shape};
use crate::io::npy::{npy_header_bytes, read_npy_header};

/// Where and how dense array data lies in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseLayout {
    /// Extent along each axis.
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: DType,
    /// Byte offset of the first element.
    pub data_offset: u64,
    /// True when the first axis varies fastest (Fortran order).
    pub fortran_order: bool,
    /// True when elements are stored big-endian.
    pub big_endian: bool,
}

impl DenseLayout {
    /// A headerless C-order little-endian file.
    pub fn raw(shape: Vec<u64>, dtype: DType) -> Self {
        Self {
            shape,
            dtype,
            data_offset: 0,
            fortran_order: false,
            big_endian: false,
        }
    }

    /// Bytes of element data, `None` on overflow.
    pub fn data_bytes(&self) -> Option<u64> {
        Shape::new(self.shape.clone())
            .checked_num_elements()?
            .checked_mul(self.dtype.size() as u64)
    }
}

/// A dense array in a file, read and written region by region with positioned
/// I/O (`pread`/`pwrite`) straight into block buffers: nothing is mapped, so
/// memory use is the blocks in flight, whatever the file size.
///
/// ```
/// use tenrso_ooc::{Block, DType, Region};
/// use tenrso_ooc::io::DenseFile;
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.npy");
/// let file = DenseFile::create_npy(&path, DType::F64, &[3, 4])?;
/// file.write_region(&Region::new(vec![1, 0], vec![1, 4]), &Block::from_vec(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0])?)?;
/// let again = DenseFile::open_npy(&path)?;
/// let col = again.read_region::<f64>(&Region::new(vec![0, 2], vec![3, 1]))?;
/// assert_eq!(col.as_slice(), &[0.0, 3.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DenseFile {
    path: PathBuf,
    file: File,
    layout: DenseLayout,
}

impl DenseFile {
    /// Opens a `.npy` file (C or Fortran order, either endianness).
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for a malformed or truncated file.
    pub fn open_npy(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let layout = read_npy_header(path)?;
        Self::open(path, layout)
    }

    /// Opens a headerless C-order little-endian file of `shape` and `dtype`.
    ///
    /// # Errors
    /// [`Error::InvalidFile`] when the file size is not exactly the data size.
    pub fn open_raw(path: impl AsRef<Path>, shape: Vec<u64>, dtype: DType) -> Result<Self> {
        let path = path.as_ref();
        let layout = DenseLayout::raw(shape, dtype);
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        let needed = layout.data_bytes().ok_or_else(|| {
            Error::invalid(format!("shape {} is too large", join_dims(&layout.shape)))
        })?;
        if len != needed {
            return Err(Error::InvalidFile {
                path: path.to_path_buf(),
                reason: format!(
                    "raw file is {len} bytes but shape {} of {} needs {needed}",
                    join_dims(&layout.shape),
                    dtype
                ),
            });
        }
        Self::open(path, layout)
    }

    fn open(path: &Path, layout: DenseLayout) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            layout,
        })
    }

    /// Creates (or truncates) a `.npy` file of `shape` and `dtype`, C order,
    /// little endian, sized to its final length and zero-filled (sparsely).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created.
    pub fn create_npy(path: impl AsRef<Path>, dtype: DType, shape: &[u64]) -> Result<Self> {
        let header = npy_header_bytes(dtype, shape);
        let layout = DenseLayout {
            data_offset: header.len() as u64,
            ..DenseLayout::raw(shape.to_vec(), dtype)
        };
        Self::create(path.as_ref(), layout, &header)
    }

    /// Creates (or truncates) a headerless C-order little-endian file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created.
    pub fn create_raw(path: impl AsRef<Path>, dtype: DType, shape: &[u64]) -> Result<Self> {
        Self::create(path.as_ref(), DenseLayout::raw(shape.to_vec(), dtype), &[])
    }

    fn create(path: &Path, layout: DenseLayout, header: &[u8]) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let size = layout.data_bytes().ok_or_else(|| {
            Error::invalid(format!("shape {} is too large", join_dims(&layout.shape)))
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io)?;
        file.write_all_at(header, 0).map_err(io)?;
        file.set_len(layout.data_offset + size).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            layout,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the data lies in the file.
    pub fn layout(&self) -> &DenseLayout {
        &self.layout
    }

    /// The array shape.
    pub fn shape(&self) -> &[u64] {
        &self.layout.shape
    }

    fn check<T: Element>(&self, region: &Region) -> Result<()> {
        if T::DTYPE != self.layout.dtype {
            return Err(Error::invalid(format!(
                "{} holds {} elements, but {} was requested",
                self.path.display(),
                self.layout.dtype,
                T::DTYPE
            )));
        }
        region.check_within(&self.layout.shape)
    }

    /// The file's C-order shape and the region within it: for Fortran order,
    /// the data is the C-order array with axes reversed.
    fn file_view(&self, region: &Region) -> (Vec<u64>, Region) {
        if self.layout.fortran_order {
            let rev = |v: &[u64]| v.iter().rev().copied().collect::<Vec<_>>();
            (
                rev(&self.layout.shape),
                Region::new(rev(region.start()), rev(region.shape())),
            )
        } else {
            (self.layout.shape.clone(), region.clone())
        }
    }

    /// Reads `region` into a C-order block in native byte order.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a region outside the array or a wrong
    /// element type; [`Error::InvalidFile`] if the file is shorter than its
    /// header says; [`Error::Io`].
    pub fn read_region<T: Element>(&self, region: &Region) -> Result<Block<T>> {
        self.check::<T>(region)?;
        let (file_shape, file_region) = self.file_view(region);
        let itemsize = std::mem::size_of::<T>() as u64;
        let mut data = vec![T::ZERO; region.num_elements() as usize];
        let mut pos = 0usize;
        for (offset, len) in ContiguousRuns::new(&file_shape, &file_region) {
            let len = len as usize;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data[pos..pos + len]);
            self.file
                .read_exact_at(bytes, self.layout.data_offset + offset * itemsize)
                .map_err(|e| self.read_error(e))?;
            pos += len;
        }
        if self.layout.big_endian != cfg!(target_endian = "big") {
            data.iter_mut().for_each(|v| *v = v.swap_bytes());
        }
        let block = Block::from_vec(file_region.shape().to_vec(), data)?;
        if self.layout.fortran_order {
            let reverse: Vec<usize> = (0..region.ndim()).rev().collect();
            Ok(block.permuted(&reverse))
        } else {
            Ok(block)
        }
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::InvalidFile {
                path: self.path.clone(),
                reason: "file is shorter than its shape says (truncated?)".into(),
            }
        } else {
            Error::io(&self.path, e)
        }
    }

    /// Writes a C-order block to `region`. Only files this type created (C
    /// order, little endian) are written.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a region outside the array, a block of
    /// the wrong shape or a file of another layout; [`Error::Io`].
    pub fn write_region<T: Element>(&self, region: &Region, block: &Block<T>) -> Result<()> {
        self.check::<T>(region)?;
        if self.layout.fortran_order || self.layout.big_endian != cfg!(target_endian = "big") {
            return Err(Error::invalid(format!(
                "{}: writing is supported for C-order native-endian files only",
                self.path.display()
            )));
        }
        if block.shape() != region.shape() {
            return Err(Error::invalid(format!(
                "region {region} has shape {}, got a block of shape {}",
                join_dims(region.shape()),
                join_dims(block.shape())
            )));
        }
        let itemsize = std::mem::size_of::<T>() as u64;
        let mut pos = 0usize;
        for (offset, len) in ContiguousRuns::new(&self.layout.shape, region) {
            let len = len as usize;
            let bytes: &[u8] = bytemuck::cast_slice(&block.as_slice()[pos..pos + len]);
            self.file
                .write_all_at(bytes, self.layout.data_offset + offset * itemsize)
                .map_err(|e| Error::io(&self.path, e))?;
            pos += len;
        }
        Ok(())
    }

    /// Flushes written data to disk.
    ///
    /// # Errors
    /// [`Error::Io`] when the flush fails (e.g. the disk is full).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_file(path: &Path, header: &[u8], values: &[f64], big_endian: bool) {
        let mut f = File::create(path).unwrap();
        f.write_all(header).unwrap();
        for v in values {
            f.write_all(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
            .unwrap();
        }
    }

    fn npy_header(descr: &str, fortran: bool, shape: &str) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut h = b"\x93NUMPY\x01\x00".to_vec();
        let total = (10 + dict.len() + 1).next_multiple_of(64);
        h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
        h.extend_from_slice(dict.as_bytes());
        h.resize(total - 1, b' ');
        h.push(b'\n');
        h
    }

    #[test]
    fn reads_fortran_big_endian_regions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        // A 3x4 array a[i][j] = 10i + j stored in Fortran order (column by column).
        let mut values = Vec::new();
        for j in 0..4 {
            for i in 0..3 {
                values.push(f64::from(10 * i + j));
            }
        }
        write_file(&path, &npy_header(">f8", true, "(3, 4)"), &values, true);
        let file = DenseFile::open_npy(&path).unwrap();
        let block = file
            .read_region::<f64>(&Region::new(vec![1, 1], vec![2, 3]))
            .unwrap();
        assert_eq!(block.as_slice(), &[11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
        assert!(file.read_region::<f32>(&Region::full(&[3, 4])).is_err());
        assert!(
            file.read_region::<f64>(&Region::new(vec![2, 0], vec![2, 1]))
                .is_err()
        );
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.npy");
        write_file(
            &short,
            &npy_header("<f8", false, "(4,)"),
            &[1.0, 2.0],
            false,
        );
        let err = DenseFile::open_npy(&short).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let ints = dir.path().join("ints.npy");
        write_file(&ints, &npy_header("<i8", false, "(2,)"), &[1.0, 2.0], false);
        let err = DenseFile::open_npy(&ints).unwrap_err().to_string();
        assert!(err.contains("<i8"), "{err}");
        let junk = dir.path().join("junk.npy");
        std::fs::write(&junk, b"hello").unwrap();
        assert!(
            DenseFile::open_npy(&junk)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        let raw = dir.path().join("x.raw");
        std::fs::write(&raw, [0u8; 12]).unwrap();
        let err = DenseFile::open_raw(&raw, vec![2], DType::F64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("12 bytes"), "{err}");
    }
}
