//! Basic-indexing selections (`a[2:9:3, 5, ...]`) read from and written to
//! stored arrays, touching only the chunks that hold selected elements.
//!
//! The Python layer turns an index expression into one [`AxisSelection`]
//! per axis (positive steps; it flips negative ones and drops integer axes
//! itself); here each touched chunk's bounding box of selected elements is
//! read (or read, updated and written back) once.

use tenrso_ooc::io::ReadableArray;
use tenrso_ooc::store::ZarrArray;
use tenrso_ooc::{Block, ChunkGrid, Element, Error, Region, Result, Shape};

/// The selected indices of one axis: `start, start + step, …`, `count` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisSelection {
    /// First index.
    pub start: u64,
    /// Distance between selected indices (at least 1).
    pub step: u64,
    /// How many indices are selected.
    pub count: u64,
}

impl AxisSelection {
    /// The last selected index (for a non-empty selection).
    fn last(&self) -> u64 {
        self.start + (self.count - 1) * self.step
    }
}

/// Checks `selection` against `shape`.
pub fn check(selection: &[AxisSelection], shape: &[u64]) -> Result<()> {
    if selection.len() != shape.len() {
        return Err(Error::invalid(format!(
            "a selection of {} axes for an array of {} axes",
            selection.len(),
            shape.len()
        )));
    }
    for (axis, (s, &n)) in selection.iter().zip(shape).enumerate() {
        if s.step == 0 {
            return Err(Error::invalid("slice step cannot be zero"));
        }
        if s.count > 0 && s.last() >= n {
            return Err(Error::invalid(format!(
                "index {} is out of bounds for axis {axis} with size {n}",
                s.last()
            )));
        }
    }
    Ok(())
}

/// Elements selected.
pub fn len(selection: &[AxisSelection]) -> u64 {
    selection.iter().map(|s| s.count).product()
}

/// One touched chunk: the region read from the array (the bounding box of
/// its selected elements) and where its first selected element goes in
/// the selection's output (per axis).
struct ChunkPiece {
    region: Region,
    out_origin: Vec<u64>,
    counts: Vec<u64>,
}

/// The touched chunks of `selection` in `grid`, each with its piece.
fn pieces(grid: &ChunkGrid, selection: &[AxisSelection]) -> Vec<ChunkPiece> {
    if len(selection) == 0 {
        return Vec::new();
    }
    // Per axis: for every touched chunk, (first selected index, output
    // offset, count) of its selected indices.
    let per_axis: Vec<Vec<(u64, u64, u64)>> = selection
        .iter()
        .zip(grid.chunk_shape())
        .map(|(s, &c)| {
            let mut runs = Vec::new();
            let mut k = 0;
            while k < s.count {
                let first = s.start + k * s.step;
                let chunk_end = (first / c + 1) * c;
                // Selected indices below chunk_end, from k on.
                let n = (chunk_end - first).div_ceil(s.step).min(s.count - k);
                runs.push((first, k, n));
                k += n;
            }
            runs
        })
        .collect();
    // Every combination of one run per axis, last axis fastest.
    let grid_of_runs = Shape::new(per_axis.iter().map(|r| r.len() as u64).collect::<Vec<_>>());
    (0..grid_of_runs.num_elements())
        .map(|linear| {
            let index = grid_of_runs.unravel(linear);
            let mut start = Vec::with_capacity(index.len());
            let mut extent = Vec::with_capacity(index.len());
            let mut out_origin = Vec::with_capacity(index.len());
            let mut counts = Vec::with_capacity(index.len());
            for (axis, &i) in index.iter().enumerate() {
                let (first, offset, n) = per_axis[axis][i as usize];
                start.push(first);
                extent.push((n - 1) * selection[axis].step + 1);
                out_origin.push(offset);
                counts.push(n);
            }
            ChunkPiece {
                region: Region::new(start, extent),
                out_origin,
                counts,
            }
        })
        .collect()
}

/// Calls `f(block_offset, out_offset)` for every selected element of a
/// piece: `block_offset` into the piece's region, `out_offset` into the
/// selection's output of shape `out_shape`.
fn for_each_element(
    piece: &ChunkPiece,
    selection: &[AxisSelection],
    out_shape: &[u64],
    mut f: impl FnMut(usize, usize),
) {
    let bs = Shape::new(piece.region.shape().to_vec()).strides();
    let os = Shape::new(out_shape.to_vec()).strides();
    let ndim = selection.len();
    if ndim == 0 {
        f(0, 0);
        return;
    }
    let mut k = vec![0u64; ndim];
    loop {
        let mut b = 0;
        let mut o = 0;
        for axis in 0..ndim {
            b += k[axis] * selection[axis].step * bs[axis];
            o += (piece.out_origin[axis] + k[axis]) * os[axis];
        }
        f(b as usize, o as usize);
        let mut axis = ndim;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            k[axis] += 1;
            if k[axis] < piece.counts[axis] {
                break;
            }
            k[axis] = 0;
        }
    }
}

/// Reads `selection` of `array` (checked) in C order.
pub fn read<T: Element>(array: &dyn ReadableArray, selection: &[AxisSelection]) -> Result<Vec<T>> {
    check(selection, array.shape())?;
    let out_shape: Vec<u64> = selection.iter().map(|s| s.count).collect();
    if selection.iter().all(|s| s.step == 1) && len(selection) > 0 {
        let region = Region::new(
            selection.iter().map(|s| s.start).collect::<Vec<_>>(),
            out_shape,
        );
        return Ok(array.read_region::<T>(&region)?.into_vec());
    }
    let mut out = vec![T::default(); len(selection) as usize];
    for piece in pieces(array.chunk_grid(), selection) {
        let block = array.read_region::<T>(&piece.region)?;
        let src = block.as_slice();
        for_each_element(&piece, selection, &out_shape, |b, o| out[o] = src[b]);
    }
    Ok(out)
}

/// Writes `values` (C order, the selection's shape) into `selection` of
/// `array`; chunks only partly selected are read, updated and rewritten.
pub fn write<T: Element>(
    array: &ZarrArray,
    selection: &[AxisSelection],
    values: &[T],
) -> Result<()> {
    check(selection, array.shape())?;
    if values.len() as u64 != len(selection) {
        return Err(Error::invalid(format!(
            "{} values for a selection of {} elements",
            values.len(),
            len(selection)
        )));
    }
    let out_shape: Vec<u64> = selection.iter().map(|s| s.count).collect();
    if selection.iter().all(|s| s.step == 1) && len(selection) > 0 {
        let region = Region::new(
            selection.iter().map(|s| s.start).collect::<Vec<_>>(),
            out_shape,
        );
        let block = Block::from_vec(region.shape().to_vec(), values.to_vec())?;
        return array.write_region(&region, &block);
    }
    for piece in pieces(array.chunk_grid(), selection) {
        let mut block = array.read_region::<T>(&piece.region)?;
        let dst = block.as_mut_slice();
        for_each_element(&piece, selection, &out_shape, |b, o| dst[b] = values[o]);
        array.write_region(&piece.region, &block)?;
    }
    Ok(())
}
