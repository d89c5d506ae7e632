//! [`Matrix`]: the small dense row-major `f64` matrices decompositions keep in
//! memory (factors, Gram matrices, partial contractions), read from and
//! written to `.npy` files through the io layer.

use std::path::Path;

use crate::core::{Error, Result};
use crate::io::{encode_npy_values, read_npy_values};
use crate::store::AtomicFile;
use crate::{MatView, matmul_add};

/// A dense `rows × cols` matrix of `f64`, row-major.
///
/// ```
/// use tenrso_ooc::decomp::Matrix;
/// let a = Matrix::from_vec(2, 2, vec![1.0, 2.0, 3.0, 4.0])?;
/// assert_eq!(a.gram().as_slice(), &[10.0, 14.0, 14.0, 20.0]);
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The `n × n` identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// A matrix over row-major `data`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `data` does not hold `rows × cols` values.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(Error::invalid(format!(
                "a {rows}×{cols} matrix needs {} values, got {}",
                rows * cols,
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The elements, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The elements, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// The elements, row-major.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows `start..start + len`, row-major (contiguous).
    pub fn row_block(&self, start: usize, len: usize) -> &[f64] {
        &self.data[start * self.cols..(start + len) * self.cols]
    }

    /// Bytes of the elements.
    pub fn nbytes(&self) -> u64 {
        (self.data.len() * 8) as u64
    }

    /// The transpose.
    pub fn transpose(&self) -> Self {
        let mut t = Self::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        t
    }

    /// `self · other` (sequential, so bitwise reproducible).
    ///
    /// # Panics
    /// If the inner dimensions differ.
    pub fn matmul(&self, other: &Matrix) -> Matrix {
        let mut c = Matrix::zeros(self.rows, other.cols);
        matmul_add(&mut c.data, self.view(), other.view(), 1);
        c
    }

    /// `selfᵀ · self` (`cols × cols`).
    pub fn gram(&self) -> Matrix {
        let mut c = Matrix::zeros(self.cols, self.cols);
        matmul_add(
            &mut c.data,
            MatView::transposed(&self.data, self.cols, self.rows),
            self.view(),
            1,
        );
        c
    }

    /// Elementwise `self *= other`.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn hadamard_assign(&mut self, other: &Matrix) {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a *= b;
        }
    }

    /// The Euclidean norm of each column.
    pub fn column_norms(&self) -> Vec<f64> {
        let mut sq = vec![0.0; self.cols];
        for row in self.data.chunks_exact(self.cols.max(1)) {
            for (s, x) in sq.iter_mut().zip(row) {
                *s += x * x;
            }
        }
        sq.into_iter().map(f64::sqrt).collect()
    }

    /// Multiplies column `j` by `scale[j]`.
    pub fn scale_columns(&mut self, scale: &[f64]) {
        for row in self.data.chunks_exact_mut(self.cols.max(1)) {
            for (x, s) in row.iter_mut().zip(scale) {
                *x *= s;
            }
        }
    }

    /// The Frobenius norm.
    pub fn norm(&self) -> f64 {
        self.data.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    /// A row-major view for [`matmul_add`].
    pub fn view(&self) -> MatView<'_, f64> {
        MatView::row_major(&self.data, self.rows, self.cols)
    }

    /// Reads a 2-d `f32`/`f64` `.npy` file (a 1-d file is one column).
    ///
    /// # Errors
    /// [`Error::InvalidFile`] for a malformed file or one that is not 1- or
    /// 2-d; I/O errors.
    pub fn read_npy(path: &Path) -> Result<Self> {
        let (shape, data) = read_npy_values(path)?;
        match *shape.as_slice() {
            [n] => Self::from_vec(n as usize, 1, data),
            [r, c] => Self::from_vec(r as usize, c as usize, data),
            _ => Err(Error::InvalidFile {
                path: path.to_path_buf(),
                reason: format!("expected a matrix, found {} axes", shape.len()),
            }),
        }
    }

    /// Writes a 2-d `f64` `.npy` file atomically ([`write_npy_values`]).
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        write_npy_values(path, &[self.rows as u64, self.cols as u64], &self.data)
    }
}

/// Writes `values` of `shape` as an `f64` `.npy` file, atomically: the
/// encoding is [`io::encode_npy_values`](crate::io::encode_npy_values), the
/// replacement [`AtomicFile`].
///
/// # Errors
/// I/O errors, naming the file.
pub fn write_npy_values(path: &Path, shape: &[u64], values: &[f64]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    encode_npy_values(std::io::BufWriter::new(file.file()), shape, values)
        .map_err(|e| Error::io(path, e))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_products() {
        let dir = tempfile::tempdir().unwrap();
        let a = Matrix::from_vec(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let path = dir.path().join("a.npy");
        a.write_npy(&path).unwrap();
        assert_eq!(Matrix::read_npy(&path).unwrap(), a);
        let t = a.transpose();
        assert_eq!(t.matmul(&a), a.gram());
        assert_eq!(a.column_norms()[0], (1.0f64 + 9.0 + 25.0).sqrt());
        assert!(Matrix::from_vec(2, 2, vec![1.0]).is_err());
    }
}
