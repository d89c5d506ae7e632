//! [`Block`]: owned n-d data of one chunk or region.

use crate::core::shape::join_dims;
use crate::core::{Element, Error, Region, Result, Shape, copy_region};

/// Owned n-d data in C order: the contents of one chunk or one region.
///
/// ```
/// use tenrso_ooc::{Block, Region};
/// let b = Block::from_vec(vec![2, 3], vec![0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
/// assert_eq!(b.get(&[1, 2]), 5.0);
/// let corner = b.extract(&Region::new(vec![0, 1], vec![2, 2]));
/// assert_eq!(corner.as_slice(), &[1.0, 2.0, 4.0, 5.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Block<T> {
    shape: Vec<u64>,
    data: Vec<T>,
}

impl<T: Element> Block<T> {
    /// A block of `shape` with every element set to `value`.
    pub fn filled(shape: impl Into<Vec<u64>>, value: T) -> Self {
        let shape = shape.into();
        let n = Shape::new(shape.clone()).num_elements() as usize;
        Self {
            shape,
            data: vec![value; n],
        }
    }

    /// A block of zeros.
    pub fn zeros(shape: impl Into<Vec<u64>>) -> Self {
        Self::filled(shape, T::ZERO)
    }

    /// Wraps C-order `data` of `shape`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `data.len()` is not the number of elements of `shape`.
    pub fn from_vec(shape: impl Into<Vec<u64>>, data: Vec<T>) -> Result<Self> {
        let shape = shape.into();
        let expected = Shape::new(shape.clone()).checked_num_elements();
        if expected != Some(data.len() as u64) {
            return Err(Error::invalid(format!(
                "a block of shape {} needs {} elements, got {}",
                join_dims(&shape),
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// The extent along each axis.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for a block without elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        std::mem::size_of_val(self.data.as_slice())
    }

    /// The elements in C order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The elements in C order, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The elements in C order, by value.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The element at `index`.
    ///
    /// # Panics
    /// If `index` is outside the block.
    pub fn get(&self, index: &[u64]) -> T {
        assert!(
            index.len() == self.shape.len() && index.iter().zip(&self.shape).all(|(i, d)| i < d),
            "index {index:?} outside block of shape {:?}",
            self.shape
        );
        self.data[Shape::new(self.shape.clone()).linear_index(index) as usize]
    }

    /// A copy of `region` (in this block's coordinates).
    ///
    /// # Panics
    /// If `region` is not inside the block.
    pub fn extract(&self, region: &Region) -> Block<T> {
        assert!(
            Region::full(&self.shape).contains(region),
            "region {region} outside block"
        );
        let mut out = Block::zeros(region.shape().to_vec());
        let origin = vec![0; region.ndim()];
        copy_region(
            &self.data,
            &self.shape,
            region,
            &mut out.data,
            region.shape(),
            &origin,
        );
        out
    }

    /// Copies all of `src` into this block at `origin`.
    ///
    /// # Panics
    /// If `src` placed at `origin` does not fit.
    pub fn insert(&mut self, origin: &[u64], src: &Block<T>) {
        let target = Region::new(origin.to_vec(), src.shape.clone());
        assert!(
            Region::full(&self.shape).contains(&target),
            "block of shape {:?} does not fit at {origin:?}",
            src.shape
        );
        copy_region(
            &src.data,
            &src.shape,
            &Region::full(&src.shape),
            &mut self.data,
            &self.shape,
            origin,
        );
    }

    /// The block with its axes permuted: axis `k` of the result is axis
    /// `perm[k]` of `self` (NumPy's `transpose(perm)`).
    ///
    /// # Panics
    /// If `perm` is not a permutation of the axes.
    pub fn permuted(&self, perm: &[usize]) -> Block<T> {
        let ndim = self.shape.len();
        let mut seen = vec![false; ndim];
        assert!(
            perm.len() == ndim
                && perm
                    .iter()
                    .all(|&p| p < ndim && !std::mem::replace(&mut seen[p], true)),
            "{perm:?} is not a permutation of {ndim} axes"
        );
        let out_shape: Vec<u64> = perm.iter().map(|&p| self.shape[p]).collect();
        let in_strides = Shape::new(self.shape.clone()).strides();
        let strides: Vec<u64> = perm.iter().map(|&p| in_strides[p]).collect();
        let mut data = Vec::with_capacity(self.data.len());
        if !self.data.is_empty() {
            // Walk the output in C order; the innermost axis is a strided copy.
            let inner = out_shape.last().copied().unwrap_or(1) as usize;
            let inner_stride = strides.last().copied().unwrap_or(0) as usize;
            let outer = Shape::new(out_shape[..ndim.saturating_sub(1)].to_vec());
            for k in 0..outer.num_elements() {
                let index = outer.unravel(k);
                let base: u64 = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
                let base = base as usize;
                data.extend((0..inner).map(|j| self.data[base + j * inner_stride]));
            }
        }
        Block {
            shape: out_shape,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range_block(shape: &[u64]) -> Block<f64> {
        let n = Shape::new(shape.to_vec()).num_elements();
        Block::from_vec(shape.to_vec(), (0..n).map(|v| v as f64).collect()).unwrap()
    }

    #[test]
    fn from_vec_checks_length() {
        assert!(Block::<f32>::from_vec(vec![2, 2], vec![0.0; 3]).is_err());
        assert!(Block::<f32>::from_vec(vec![], vec![1.0]).is_ok());
    }

    #[test]
    fn extract_then_insert_round_trips() {
        let b = range_block(&[4, 5, 3]);
        let r = Region::new(vec![1, 2, 0], vec![2, 3, 3]);
        let part = b.extract(&r);
        assert_eq!(part.get(&[0, 0, 0]), b.get(&[1, 2, 0]));
        assert_eq!(part.get(&[1, 2, 2]), b.get(&[2, 4, 2]));
        let mut z = Block::<f64>::zeros(vec![4, 5, 3]);
        z.insert(r.start(), &part);
        assert_eq!(z.get(&[2, 3, 1]), b.get(&[2, 3, 1]));
        assert_eq!(z.get(&[0, 0, 0]), 0.0);
    }

    #[test]
    fn permuted_matches_index_definition() {
        let b = range_block(&[2, 3, 4]);
        let p = b.permuted(&[2, 0, 1]);
        assert_eq!(p.shape(), &[4, 2, 3]);
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    assert_eq!(p.get(&[k, i, j]), b.get(&[i, j, k]));
                }
            }
        }
        // Reversing the axes twice is the identity.
        assert_eq!(b.permuted(&[2, 1, 0]).permuted(&[2, 1, 0]), b);
    }
}
