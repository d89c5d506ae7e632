//! C-order memory layout: the contiguous runs a region occupies in a larger array.
//!
//! Reading a region of a C-order file or buffer is a sequence of contiguous runs;
//! the region's own elements, in C order, are exactly those runs concatenated.
//! Every copy between an n-d buffer and a region of another (chunk assembly,
//! `.npy` and raw file I/O) goes through [`ContiguousRuns`], so no hot loop does
//! per-element index arithmetic.

use crate::core::Region;

/// The contiguous runs of `region` inside a C-order array of `array_shape`, as
/// `(linear offset in the array, run length)` pairs in C order of the region.
///
/// Trailing axes the region spans in full are merged into one run.
///
/// ```
/// use tenrso_ooc::{ContiguousRuns, Region};
/// // Rows 1..3, columns 2..4 of a 4x5 array: two runs of 2 elements.
/// let runs: Vec<_> = ContiguousRuns::new(&[4, 5], &Region::new(vec![1, 2], vec![2, 2])).collect();
/// assert_eq!(runs, vec![(7, 2), (12, 2)]);
/// // Full rows merge into a single run.
/// let runs: Vec<_> = ContiguousRuns::new(&[4, 5], &Region::new(vec![1, 0], vec![2, 5])).collect();
/// assert_eq!(runs, vec![(5, 10)]);
/// ```
#[derive(Debug, Clone)]
pub struct ContiguousRuns {
    /// Region start on the outer (non-merged) axes.
    outer_start: Vec<u64>,
    /// Region extent on the outer axes.
    outer_shape: Vec<u64>,
    /// Array strides of the outer axes.
    outer_strides: Vec<u64>,
    /// Offset of the region's first element along the merged axes.
    inner_offset: u64,
    run_len: u64,
    /// Odometer over the outer axes; `None` when exhausted.
    next: Option<Vec<u64>>,
}

impl ContiguousRuns {
    /// The runs of `region` within an array of `array_shape`.
    ///
    /// # Panics
    /// If the ranks differ (a programming error; regions are checked against
    /// their array before I/O).
    pub fn new(array_shape: &[u64], region: &Region) -> Self {
        assert_eq!(
            array_shape.len(),
            region.ndim(),
            "region rank differs from array rank"
        );
        let ndim = array_shape.len();
        let strides = crate::core::Shape::new(array_shape.to_vec()).strides();
        // Find the split axis: the last axis the region does not span fully.
        let mut split = ndim;
        let mut run_len = 1u64;
        while split > 0 {
            let axis = split - 1;
            run_len *= region.shape()[axis];
            split -= 1;
            if region.shape()[axis] != array_shape[axis] {
                break;
            }
        }
        let inner_offset = if split < ndim {
            region.start()[split] * strides[split]
        } else {
            0
        };
        let next = (!region.is_empty()).then(|| vec![0u64; split]);
        Self {
            outer_start: region.start()[..split].to_vec(),
            outer_shape: region.shape()[..split].to_vec(),
            outer_strides: strides[..split].to_vec(),
            inner_offset,
            run_len,
            next,
        }
    }

    /// Elements per run.
    pub fn run_len(&self) -> u64 {
        self.run_len
    }
}

impl Iterator for ContiguousRuns {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let index = self.next.as_mut()?;
        let offset = self.inner_offset
            + index
                .iter()
                .zip(&self.outer_start)
                .zip(&self.outer_strides)
                .map(|((i, s), st)| (i + s) * st)
                .sum::<u64>();
        // Advance the odometer.
        let mut axis = index.len();
        loop {
            if axis == 0 {
                self.next = None;
                break;
            }
            axis -= 1;
            index[axis] += 1;
            if index[axis] < self.outer_shape[axis] {
                break;
            }
            index[axis] = 0;
        }
        Some((offset, self.run_len))
    }
}

/// Copies `region` of the C-order buffer `src` (of shape `src_shape`) into
/// `dst` (of shape `dst_shape`) at `dst_start`.
///
/// # Panics
/// If a region falls outside its buffer (callers check regions first).
pub(crate) fn copy_region<T: Copy>(
    src: &[T],
    src_shape: &[u64],
    region: &Region,
    dst: &mut [T],
    dst_shape: &[u64],
    dst_start: &[u64],
) {
    let dst_region = Region::new(dst_start.to_vec(), region.shape().to_vec());
    let src_runs = ContiguousRuns::new(src_shape, region);
    let dst_runs = ContiguousRuns::new(dst_shape, &dst_region);
    // The two sides may merge different numbers of axes; walk both at the
    // granularity of the shorter run.
    let unit = src_runs.run_len().min(dst_runs.run_len()) as usize;
    if unit == 0 {
        return;
    }
    let mut dst_iter = split_runs(dst_runs, unit);
    for (s, _) in split_runs(src_runs, unit) {
        let (d, _) = dst_iter
            .next()
            .expect("source and destination regions have equal size");
        let (s, d) = (s as usize, d as usize);
        dst[d..d + unit].copy_from_slice(&src[s..s + unit]);
    }
}

/// Moves the leading corner of extents `corner` (the region at the origin)
/// of C-order `data` of `shape` to the front of `data`, densely, in place;
/// returns its number of elements. Runs come in ascending source order and
/// land at or before their source (the corner is dense), so moving them in
/// order never overwrites a run not yet moved.
///
/// # Panics
/// If the corner is not within `shape` or `data` is shorter than `shape`.
pub(crate) fn compact_corner<T: Copy>(data: &mut [T], shape: &[u64], corner: &[u64]) -> usize {
    let region = Region::new(vec![0; corner.len()], corner.to_vec());
    let mut filled = 0usize;
    for (start, len) in ContiguousRuns::new(shape, &region) {
        let (start, len) = (start as usize, len as usize);
        data.copy_within(start..start + len, filled);
        filled += len;
    }
    filled
}

/// Splits each run into pieces of `unit` elements (`unit` divides every run:
/// both run lengths are products of trailing region extents).
fn split_runs(runs: ContiguousRuns, unit: usize) -> impl Iterator<Item = (u64, u64)> {
    let unit = unit as u64;
    runs.flat_map(move |(offset, len)| (0..len / unit).map(move |k| (offset + k * unit, unit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Shape;
    use proptest::prelude::*;

    /// The reference: every element of the region, one by one.
    fn element_offsets(shape: &[u64], region: &Region) -> Vec<u64> {
        let s = Shape::new(region.shape().to_vec());
        let array = Shape::new(shape.to_vec());
        (0..region.num_elements())
            .map(|k| {
                let local = s.unravel(k);
                let global: Vec<u64> = local
                    .iter()
                    .zip(region.start())
                    .map(|(a, b)| a + b)
                    .collect();
                array.linear_index(&global)
            })
            .collect()
    }

    fn shape_and_region() -> impl Strategy<Value = (Vec<u64>, Region)> {
        prop::collection::vec(1u64..6, 0..5).prop_flat_map(|shape| {
            let parts: Vec<_> = shape
                .iter()
                .map(|&d| (0..d).prop_flat_map(move |s| (Just(s), 0..=d - s)))
                .collect();
            (Just(shape), parts).prop_map(|(shape, parts)| {
                let (start, ext): (Vec<u64>, Vec<u64>) = parts.into_iter().unzip();
                (shape, Region::new(start, ext))
            })
        })
    }

    proptest! {
        #[test]
        fn runs_cover_region_in_c_order((shape, region) in shape_and_region()) {
            let from_runs: Vec<u64> = ContiguousRuns::new(&shape, &region)
                .flat_map(|(o, n)| o..o + n)
                .collect();
            prop_assert_eq!(from_runs, element_offsets(&shape, &region));
        }

        #[test]
        fn copy_region_matches_elementwise((shape, region) in shape_and_region(), pad in 0u64..3) {
            let src: Vec<u32> = (0..Shape::new(shape.clone()).num_elements() as u32).collect();
            let dst_shape: Vec<u64> = region.shape().iter().map(|d| d + pad).collect();
            let dst_start = vec![pad; shape.len()];
            let mut dst = vec![u32::MAX; Shape::new(dst_shape.clone()).num_elements() as usize];
            copy_region(&src, &shape, &region, &mut dst, &dst_shape, &dst_start);
            let dst_region = Region::new(dst_start, region.shape().to_vec());
            let expected = element_offsets(&shape, &region);
            let got: Vec<u32> = element_offsets(&dst_shape, &dst_region)
                .into_iter()
                .map(|o| dst[o as usize])
                .collect();
            prop_assert_eq!(got, expected.into_iter().map(|o| o as u32).collect::<Vec<_>>());
        }
    }
}
