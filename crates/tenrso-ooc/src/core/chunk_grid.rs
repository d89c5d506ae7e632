//! [`ChunkGrid`]: a regular grid of chunks over an array.

use crate::core::shape::join_dims;
use crate::core::{Error, Region, Result, Shape};

/// The most axes an array may have (NumPy's `NPY_MAXDIMS`).
pub const MAX_AXES: usize = 64;

/// A regular chunk grid: the array is cut into chunks of `chunk_shape`; chunks at
/// the far edge of an axis are clipped to the array.
///
/// Chunks are addressed by their coordinates in the grid and ordered in C order
/// (last axis fastest), which is also the order [`ChunkGrid::iter`] yields them.
///
/// ```
/// use tenrso_ooc::{ChunkGrid, Region};
/// let grid = ChunkGrid::new(vec![10, 7], vec![4, 4]).unwrap();
/// assert_eq!(grid.grid_shape(), &[3, 2]);
/// // The last chunk is clipped to the array.
/// assert_eq!(grid.chunk_region(&[2, 1]), Region::new(vec![8, 4], vec![2, 3]));
/// // A region maps to the chunks it touches...
/// let chunks = grid.chunks_touching(&Region::new(vec![3, 0], vec![2, 5]));
/// assert_eq!(chunks, Region::new(vec![0, 0], vec![2, 2]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkGrid {
    shape: Shape,
    chunk_shape: Vec<u64>,
    grid_shape: Vec<u64>,
}

impl ChunkGrid {
    /// The grid of `chunk_shape` chunks over an array of `shape`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the ranks differ, a chunk extent is zero,
    /// or the element count overflows.
    pub fn new(shape: impl Into<Shape>, chunk_shape: impl Into<Vec<u64>>) -> Result<Self> {
        let shape = shape.into();
        let chunk_shape = chunk_shape.into();
        if shape.ndim() > MAX_AXES {
            return Err(Error::invalid(format!(
                "an array of {} axes: at most {MAX_AXES} are supported (NumPy's limit)",
                shape.ndim()
            )));
        }
        if shape.ndim() != chunk_shape.len() {
            return Err(Error::invalid(format!(
                "chunk shape {} has {} axes but the array shape {} has {}",
                join_dims(&chunk_shape),
                chunk_shape.len(),
                shape,
                shape.ndim()
            )));
        }
        if chunk_shape.contains(&0) {
            return Err(Error::invalid(format!(
                "chunk shape {} has a zero extent",
                join_dims(&chunk_shape)
            )));
        }
        let chunk_elements = chunk_shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if shape.checked_num_elements().is_none() || chunk_elements.is_none() {
            return Err(Error::invalid(format!(
                "shape {shape} or chunk shape {} is too large",
                join_dims(&chunk_shape)
            )));
        }
        let grid_shape = shape
            .dims()
            .iter()
            .zip(&chunk_shape)
            .map(|(d, c)| d.div_ceil(*c))
            .collect();
        Ok(Self {
            shape,
            chunk_shape,
            grid_shape,
        })
    }

    /// A chunk shape for an array of `shape` whose chunks hold at most
    /// `target_bytes` (elements of `itemsize` bytes): starting from the whole
    /// array, halve the largest extent (the earliest on ties, keeping rows
    /// long) until a chunk fits.
    ///
    /// ```
    /// use tenrso_ooc::ChunkGrid;
    /// assert_eq!(ChunkGrid::auto_chunk_shape(&[16384, 8192], 8, 8 << 20), vec![1024, 1024]);
    /// assert_eq!(ChunkGrid::auto_chunk_shape(&[10, 3], 8, 1 << 20), vec![10, 3]);
    /// ```
    pub fn auto_chunk_shape(shape: &[u64], itemsize: u64, target_bytes: u64) -> Vec<u64> {
        let mut chunk: Vec<u64> = shape.iter().map(|&d| d.max(1)).collect();
        let bytes = |c: &[u64]| {
            c.iter()
                .fold(u128::from(itemsize), |a, &d| a * u128::from(d))
        };
        while bytes(&chunk) > u128::from(target_bytes) {
            let mut axis = 0;
            for (k, &d) in chunk.iter().enumerate() {
                if d > chunk[axis] {
                    axis = k;
                }
            }
            if chunk.get(axis).is_none_or(|&d| d <= 1) {
                break;
            }
            chunk[axis] = chunk[axis].div_ceil(2);
        }
        chunk
    }

    /// The array shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The shape of an interior (unclipped) chunk.
    pub fn chunk_shape(&self) -> &[u64] {
        &self.chunk_shape
    }

    /// Number of chunks along each axis.
    pub fn grid_shape(&self) -> &[u64] {
        &self.grid_shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.chunk_shape.len()
    }

    /// Total number of chunks.
    pub fn num_chunks(&self) -> u64 {
        self.grid_shape.iter().product()
    }

    /// Elements in an interior (unclipped) chunk.
    pub fn chunk_elements(&self) -> u64 {
        self.chunk_shape.iter().product()
    }

    /// True when `chunk` is a valid coordinate of this grid.
    pub fn contains_chunk(&self, chunk: &[u64]) -> bool {
        chunk.len() == self.ndim() && chunk.iter().zip(&self.grid_shape).all(|(c, g)| c < g)
    }

    /// The part of the array covered by `chunk`, clipped at the array edge.
    ///
    /// # Panics
    /// If `chunk` is not in the grid (see [`ChunkGrid::contains_chunk`]).
    pub fn chunk_region(&self, chunk: &[u64]) -> Region {
        assert!(
            self.contains_chunk(chunk),
            "chunk {chunk:?} outside grid {:?}",
            self.grid_shape
        );
        let start: Vec<u64> = chunk
            .iter()
            .zip(&self.chunk_shape)
            .map(|(c, s)| c * s)
            .collect();
        let extent = start
            .iter()
            .zip(&self.chunk_shape)
            .zip(self.shape.dims())
            .map(|((s, c), d)| (*c).min(d - s))
            .collect::<Vec<_>>();
        Region::new(start, extent)
    }

    /// The chunks that `region` touches, as a region of chunk coordinates.
    ///
    /// # Panics
    /// If the ranks differ.
    pub fn chunks_touching(&self, region: &Region) -> Region {
        assert_eq!(
            region.ndim(),
            self.ndim(),
            "region rank differs from grid rank"
        );
        if region.is_empty() {
            return Region::new(vec![0; self.ndim()], vec![0; self.ndim()]);
        }
        let start: Vec<u64> = region
            .start()
            .iter()
            .zip(&self.chunk_shape)
            .map(|(s, c)| s / c)
            .collect();
        let end: Vec<u64> = region
            .end()
            .iter()
            .zip(&self.chunk_shape)
            .map(|(e, c)| e.div_ceil(*c))
            .collect();
        Region::from_bounds(&start, &end)
    }

    /// The chunk holding the element at `index`.
    pub fn chunk_of(&self, index: &[u64]) -> Vec<u64> {
        index
            .iter()
            .zip(&self.chunk_shape)
            .map(|(i, c)| i / c)
            .collect()
    }

    /// The C-order position of `chunk` among all chunks.
    pub fn chunk_linear_index(&self, chunk: &[u64]) -> u64 {
        Shape::new(self.grid_shape.clone()).linear_index(chunk)
    }

    /// The coordinates of the chunk at C-order position `linear`.
    pub fn chunk_coords(&self, linear: u64) -> Vec<u64> {
        Shape::new(self.grid_shape.clone()).unravel(linear)
    }

    /// All chunk coordinates in C order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Vec<u64>> + '_ {
        (0..self.num_chunks() as usize).map(|k| self.chunk_coords(k as u64))
    }

    /// The chunk coordinates inside `chunks` (a region of the grid), in C order.
    pub fn iter_region(chunks: &Region) -> impl Iterator<Item = Vec<u64>> + '_ {
        let local = Shape::new(chunks.shape().to_vec());
        (0..chunks.num_elements()).map(move |k| {
            local
                .unravel(k)
                .iter()
                .zip(chunks.start())
                .map(|(a, b)| a + b)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grid_strategy() -> impl Strategy<Value = ChunkGrid> {
        prop::collection::vec((0u64..20, 1u64..8), 1..5).prop_map(|dims| {
            let (shape, chunks): (Vec<u64>, Vec<u64>) = dims.into_iter().unzip();
            ChunkGrid::new(shape, chunks).unwrap()
        })
    }

    fn grid_and_region() -> impl Strategy<Value = (ChunkGrid, Region)> {
        grid_strategy().prop_flat_map(|grid| {
            let parts: Vec<_> = grid
                .shape()
                .dims()
                .iter()
                .map(|&d| (0..=d).prop_flat_map(move |s| (Just(s), 0..=d - s)))
                .collect();
            (Just(grid), parts).prop_map(|(grid, parts)| {
                let (start, ext): (Vec<u64>, Vec<u64>) = parts.into_iter().unzip();
                (grid, Region::new(start, ext))
            })
        })
    }

    proptest! {
        /// Chunk regions tile the array exactly: disjoint, inside it, covering
        /// every element once.
        #[test]
        fn chunks_tile_the_array(grid in grid_strategy()) {
            let total: u64 = grid.iter().map(|c| grid.chunk_region(&c).num_elements()).sum();
            prop_assert_eq!(total, grid.shape().num_elements());
            let full = Region::full(grid.shape().dims());
            for c in grid.iter() {
                let r = grid.chunk_region(&c);
                prop_assert!(full.contains(&r));
                prop_assert!(!r.is_empty());
                // Interior chunks are unclipped; edge chunks are clipped exactly.
                for (axis, &ci) in c.iter().enumerate() {
                    let expect = if ci + 1 < grid.grid_shape()[axis] {
                        grid.chunk_shape()[axis]
                    } else {
                        grid.shape().dims()[axis] - ci * grid.chunk_shape()[axis]
                    };
                    prop_assert_eq!(r.shape()[axis], expect);
                }
            }
        }

        /// Iteration is C order and agrees with the linear index both ways.
        #[test]
        fn iteration_is_c_order(grid in grid_strategy()) {
            let all: Vec<Vec<u64>> = grid.iter().collect();
            let mut sorted = all.clone();
            sorted.sort();
            prop_assert_eq!(&all, &sorted);
            for (k, c) in all.iter().enumerate() {
                prop_assert_eq!(grid.chunk_linear_index(c), k as u64);
                prop_assert_eq!(&grid.chunk_coords(k as u64), c);
            }
        }

        /// A region maps to exactly the chunks that overlap it, and back: the
        /// union of their overlaps is the region.
        #[test]
        fn region_to_chunks_and_back((grid, region) in grid_and_region()) {
            let touched = grid.chunks_touching(&region);
            let mut covered = 0u64;
            for c in grid.iter() {
                let overlap = grid.chunk_region(&c).intersect(&region);
                let inside = touched.contains(&Region::new(c.clone(), vec![1; grid.ndim()]));
                prop_assert_eq!(overlap.is_some(), inside && !region.is_empty(), "chunk {:?}", c);
                if let Some(o) = overlap {
                    prop_assert!(region.contains(&o));
                    covered += o.num_elements();
                }
            }
            prop_assert_eq!(covered, region.num_elements());
            let listed: Vec<Vec<u64>> = ChunkGrid::iter_region(&touched).collect();
            prop_assert_eq!(listed.len() as u64, touched.num_elements());
            for c in &listed {
                prop_assert!(grid.contains_chunk(c));
            }
        }

        /// Every element lies in the chunk `chunk_of` names.
        #[test]
        fn chunk_of_agrees_with_regions(grid in grid_strategy()) {
            for c in grid.iter() {
                let r = grid.chunk_region(&c);
                prop_assert_eq!(grid.chunk_of(r.start()), c.clone());
                let last: Vec<u64> = r.end().iter().map(|e| e - 1).collect();
                prop_assert_eq!(grid.chunk_of(&last), c);
            }
        }
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(ChunkGrid::new(vec![4, 4], vec![2]).is_err());
        assert!(ChunkGrid::new(vec![4, 4], vec![2, 0]).is_err());
        assert!(ChunkGrid::new(vec![u64::MAX, 4], vec![1, 1]).is_err());
        let empty = ChunkGrid::new(vec![0, 4], vec![2, 2]).unwrap();
        assert_eq!(empty.num_chunks(), 0);
        assert_eq!(empty.iter().count(), 0);
    }
}
