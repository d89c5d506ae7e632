//! Slab arithmetic of arrays stored as rows (Arrow record batches, Parquet
//! row groups): which units a range of rows touches, and regions cut out of
//! whole rows.

use std::ops::Range;

use crate::core::{Block, Element, Region, Result};

/// Reads `region` of an array of `shape` stored as rows into `out`:
/// `read_rows` reads whole rows (all inner axes); a region that covers only
/// part of the inner axes is cut out of whole rows.
pub(crate) fn read_region_by_rows<T: Element>(
    shape: &[u64],
    region: &Region,
    out: &mut [T],
    read_rows: impl Fn(Range<u64>, &mut [T]) -> Result<()>,
) -> Result<()> {
    let rows = region.start()[0]..region.start()[0] + region.shape()[0];
    let whole = region.start()[1..].iter().all(|&s| s == 0) && region.shape()[1..] == shape[1..];
    if whole {
        return read_rows(rows, out);
    }
    let mut full_shape = shape.to_vec();
    full_shape[0] = region.shape()[0];
    let mut buffer = vec![T::ZERO; full_shape.iter().product::<u64>() as usize];
    read_rows(rows, &mut buffer)?;
    let block = Block::from_vec(full_shape, buffer)?;
    let mut start = region.start().to_vec();
    start[0] = 0;
    let part = block.extract(&Region::new(start, region.shape().to_vec()));
    out.copy_from_slice(part.as_slice());
    Ok(())
}

/// The units (record batches, row groups; `first_rows[u]` is the first row
/// of unit `u`, `total` rows in all) overlapping `rows`, each with the rows
/// to read relative to the unit and the offset of those rows in `rows`.
pub(crate) fn units_overlapping(
    first_rows: &[u64],
    total: u64,
    rows: Range<u64>,
) -> Vec<(usize, Range<usize>, usize)> {
    let mut out = Vec::new();
    let mut unit = first_rows
        .partition_point(|&f| f <= rows.start)
        .saturating_sub(1);
    while unit < first_rows.len() && first_rows[unit] < rows.end {
        let unit_end = first_rows.get(unit + 1).copied().unwrap_or(total);
        let lo = rows.start.max(first_rows[unit]);
        let hi = rows.end.min(unit_end);
        if lo < hi {
            let base = first_rows[unit];
            out.push((
                unit,
                (lo - base) as usize..(hi - base) as usize,
                (lo - rows.start) as usize,
            ));
        }
        unit += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_onto_units() {
        let first = [0, 10, 20, 25];
        assert_eq!(
            units_overlapping(&first, 40, 5..22),
            vec![(0, 5..10, 0), (1, 0..10, 5), (2, 0..2, 15)]
        );
        assert_eq!(units_overlapping(&first, 40, 25..40), vec![(3, 0..15, 0)]);
        assert_eq!(units_overlapping(&first, 40, 12..13), vec![(1, 2..3, 0)]);
    }
}
