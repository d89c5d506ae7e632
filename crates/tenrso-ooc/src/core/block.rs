//! [`Block`]: the n-d data of one chunk or region.

use crate::core::Elements;
use crate::core::shape::join_dims;
use crate::core::{Element, Error, Region, Result, Shape, copy_region};

/// N-d data in C order: the contents of one chunk or one region, in memory
/// the block owns or, for a stored chunk loaded ahead, read in place from
/// its file ([`Block::is_mapped`]).
///
/// ```
/// use tenrso_ooc::{Block, Region};
/// let b = Block::from_vec(vec![2, 3], vec![0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
/// assert_eq!(b.get(&[1, 2]), 5.0);
/// let corner = b.extract(&Region::new(vec![0, 1], vec![2, 2]));
/// assert_eq!(corner.as_slice(), &[1.0, 2.0, 4.0, 5.0]);
/// ```
pub struct Block<T> {
    shape: Vec<u64>,
    data: Elements<T>,
}

impl<T: Element> Clone for Block<T> {
    /// A copy that owns its elements (also of a block read in place).
    fn clone(&self) -> Self {
        Self {
            shape: self.shape.clone(),
            data: self.data.clone(),
        }
    }
}

impl<T: Element> PartialEq for Block<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.as_slice() == other.as_slice()
    }
}

impl<T: Element> std::fmt::Debug for Block<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("shape", &self.shape)
            .field("data", &self.as_slice())
            .finish()
    }
}

impl<T: Element> Block<T> {
    /// A block of `shape` with every element set to `value`.
    pub fn filled(shape: impl Into<Vec<u64>>, value: T) -> Self {
        let shape = shape.into();
        let n = Shape::new(shape.clone()).num_elements() as usize;
        Self {
            shape,
            data: Elements::Owned(vec![value; n]),
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
        Self::from_elements(shape.into(), Elements::Owned(data))
    }

    /// Wraps C-order elements, owned or read in place from a stored chunk.
    ///
    /// # Errors
    /// As [`Block::from_vec`].
    pub(crate) fn from_elements(shape: Vec<u64>, data: Elements<T>) -> Result<Self> {
        let expected = Shape::new(shape.clone()).checked_num_elements();
        if expected != Some(data.as_slice().len() as u64) {
            return Err(Error::invalid(format!(
                "a block of shape {} needs {} elements, got {}",
                join_dims(&shape),
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                data.as_slice().len()
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
        self.data.as_slice().len()
    }

    /// True for a block without elements.
    pub fn is_empty(&self) -> bool {
        self.data.as_slice().is_empty()
    }

    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        std::mem::size_of_val(self.data.as_slice())
    }

    /// The elements in C order.
    pub fn as_slice(&self) -> &[T] {
        self.data.as_slice()
    }

    /// The elements in C order, mutable (copied first out of a stored
    /// chunk read in place).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data.to_mut()
    }

    /// The elements in C order, by value.
    pub fn into_vec(self) -> Vec<T> {
        self.data.into_vec()
    }

    /// Whether the elements are read in place from a stored chunk's file
    /// (a memory mapping) rather than held in memory the block owns.
    pub fn is_mapped(&self) -> bool {
        self.data.is_mapped()
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
        self.as_slice()[Shape::new(self.shape.clone()).linear_index(index) as usize]
    }

    /// The block's leading corner of `shape` (the region starting at the
    /// origin), compacted within the same buffer instead of copied out: a
    /// chunk clipped at the array's edge never needs a second buffer.
    ///
    /// ```
    /// use tenrso_ooc::Block;
    /// let b = Block::from_vec(vec![2, 3], vec![0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    /// assert_eq!(b.into_corner(&[2, 2]).as_slice(), &[0.0, 1.0, 3.0, 4.0]);
    /// ```
    ///
    /// # Panics
    /// If `shape` is not within the block's shape.
    pub fn into_corner(mut self, shape: &[u64]) -> Block<T> {
        let corner = Region::new(vec![0; shape.len()], shape.to_vec());
        assert!(
            Region::full(&self.shape).contains(&corner),
            "corner {corner} outside block"
        );
        if self.shape == shape {
            return self;
        }
        let data = self.data.to_mut();
        let filled = crate::core::compact_corner(data, &self.shape, shape);
        data.truncate(filled);
        // Give the rest back (the allocator shrinks in place), so the block
        // holds what its byte size says: the cache accounts by that.
        data.shrink_to_fit();
        self.shape = shape.to_vec();
        self
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
            self.as_slice(),
            &self.shape,
            region,
            out.data.to_mut(),
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
            src.as_slice(),
            &src.shape,
            &Region::full(&src.shape),
            self.data.to_mut(),
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
        // Input stride of each output axis.
        let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p] as usize).collect();
        let data = if self.is_empty() || ndim == 0 {
            self.data.clone()
        } else {
            Elements::Owned(permute_data(self.as_slice(), &out_shape, &strides))
        };
        Block {
            shape: out_shape,
            data,
        }
    }
}

/// Gathers `src` into C order of `out_shape`, where output axis `k` steps
/// `strides[k]` elements through `src`.
///
/// When the input's contiguous axis stays last, rows are copied as slices;
/// when it moves, each plane of (that axis, the last output axis) is
/// transposed in cache-sized tiles; otherwise elements are gathered one by one.
fn permute_data<T: Copy + Default>(src: &[T], out_shape: &[u64], strides: &[usize]) -> Vec<T> {
    let ndim = out_shape.len();
    let last = ndim - 1;
    let dims: Vec<usize> = out_shape.iter().map(|d| *d as usize).collect();
    let out_strides: Vec<usize> = Shape::new(out_shape.to_vec())
        .strides()
        .iter()
        .map(|s| *s as usize)
        .collect();
    let mut out = vec![T::default(); src.len()];
    // The output axis the input is contiguous along (ignoring length-1 axes).
    let contiguous = (0..ndim).find(|k| strides[*k] == 1 && dims[*k] > 1);
    // Visits every index of the axes not in `skip`, with its input and output offsets.
    let for_each_outer = |skip: &[usize], f: &mut dyn FnMut(usize, usize)| {
        let axes: Vec<usize> = (0..ndim).filter(|k| !skip.contains(k)).collect();
        let outer = Shape::new(axes.iter().map(|k| out_shape[*k]).collect::<Vec<_>>());
        for n in 0..outer.num_elements() {
            let idx = outer.unravel(n);
            let (mut a, mut b) = (0usize, 0usize);
            for (i, k) in idx.iter().zip(&axes) {
                a += *i as usize * strides[*k];
                b += *i as usize * out_strides[*k];
            }
            f(a, b);
        }
    };
    match contiguous {
        Some(q) if q == last => {
            let len = dims[last];
            for_each_outer(&[last], &mut |a, b| {
                out[b..b + len].copy_from_slice(&src[a..a + len])
            });
        }
        Some(q) => {
            const TILE: usize = 32;
            let (rows, cols, col_stride, row_out) =
                (dims[q], dims[last], strides[last], out_strides[q]);
            for_each_outer(&[q, last], &mut |a, b| {
                for i0 in (0..rows).step_by(TILE) {
                    for j0 in (0..cols).step_by(TILE) {
                        for i in i0..(i0 + TILE).min(rows) {
                            let o = b + i * row_out;
                            for j in j0..(j0 + TILE).min(cols) {
                                out[o + j] = src[a + i + j * col_stride];
                            }
                        }
                    }
                }
            });
        }
        None => {
            let (len, step) = (dims[last], strides[last]);
            for_each_outer(&[last], &mut |a, b| {
                for j in 0..len {
                    out[b + j] = src[a + j * step];
                }
            });
        }
    }
    out
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
    fn permuted_matches_the_definition_for_every_permutation() {
        // Shapes with length-1 axes and sizes around the tile edge.
        for shape in [vec![3u64, 1, 70, 33], vec![40, 2, 1, 65], vec![1, 1, 5, 1]] {
            let b = range_block(&shape);
            let mut perm = vec![0usize, 1, 2, 3];
            // All 24 permutations (Heap's algorithm).
            let mut c = [0usize; 4];
            let check = |perm: &[usize]| {
                let p = b.permuted(perm);
                let out = Shape::new(p.shape().to_vec());
                for k in 0..out.num_elements() {
                    let o = out.unravel(k);
                    let mut i = vec![0u64; 4];
                    for (axis, &src) in perm.iter().enumerate() {
                        i[src] = o[axis];
                    }
                    assert_eq!(p.as_slice()[k as usize], b.get(&i), "{shape:?} {perm:?}");
                }
            };
            check(&perm);
            let mut i = 0;
            while i < 4 {
                if c[i] < i {
                    if i % 2 == 0 {
                        perm.swap(0, i)
                    } else {
                        perm.swap(c[i], i)
                    }
                    check(&perm);
                    c[i] += 1;
                    i = 0;
                } else {
                    c[i] = 0;
                    i += 1;
                }
            }
        }
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
