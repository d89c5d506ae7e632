//! [`rechunking_plan`]: read, intermediate and write chunk shapes for moving
//! an array from one chunking to another under a memory budget.
//!
//! The algorithm is rechunker's (Abernathey et al., pangeo-data/rechunker):
//! consolidate target chunks into write blocks as large as the budget allows,
//! consolidate source chunks into read blocks up to the write block along the
//! axes where writes are larger, and take the intermediate chunks as the
//! smallest that fit in both.

/// Grows `chunks` along axes (last to first) up to `max_bytes` per block and
/// at most `limits[axis]` (`None`: do not grow that axis).
fn consolidate(
    shape: &[u64],
    chunks: &[u64],
    itemsize: u64,
    max_bytes: u64,
    limits: &[Option<u64>],
) -> Vec<u64> {
    let mut out = chunks.to_vec();
    let bytes = |c: &[u64]| c.iter().fold(itemsize, |a, d| a.saturating_mul(*d));
    let mut headroom = max_bytes / bytes(&out).max(1);
    for axis in (0..shape.len()).rev() {
        if headroom <= 1 {
            break;
        }
        let Some(limit) = limits[axis] else { continue };
        out[axis] = chunks[axis]
            .saturating_mul(headroom)
            .min(shape[axis].max(1))
            .min(limit.max(chunks[axis]));
        headroom = max_bytes / bytes(&out).max(1);
    }
    out
}

/// The read, intermediate and write chunk shapes for rechunking an array of
/// `shape` from `source` chunks to `target` chunks with blocks of at most
/// `max_bytes` (elements of `itemsize` bytes). Each returned block holds at
/// most `max(max_bytes, chunk bytes)`.
///
/// ```
/// use tenrso_ooc::plan::rechunking_plan;
/// // Rows to columns of a 4096x4096 f64 array with 8 MiB blocks.
/// let (read, int, write) = rechunking_plan(&[4096, 4096], &[1, 4096], &[4096, 1], 8, 8 << 20);
/// assert_eq!(write, vec![4096, 256]);
/// assert_eq!(read, vec![256, 4096]);
/// assert_eq!(int, vec![256, 256]);
/// ```
pub fn rechunking_plan(
    shape: &[u64],
    source: &[u64],
    target: &[u64],
    itemsize: u64,
    max_bytes: u64,
) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let all: Vec<Option<u64>> = shape.iter().map(|d| Some(*d)).collect();
    let write = consolidate(shape, target, itemsize, max_bytes, &all);
    let read_limits: Vec<Option<u64>> = source
        .iter()
        .zip(&write)
        .map(|(s, w)| (w > s).then_some(*w))
        .collect();
    let read = consolidate(shape, source, itemsize, max_bytes, &read_limits);
    let intermediate = read.iter().zip(&write).map(|(r, w)| *r.min(w)).collect();
    (read, intermediate, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rechunker_on_its_examples() {
        // rechunker's docstring: read (20, 5), target (4, 25) -> intermediate (4, 5).
        let (read, int, write) = rechunking_plan(&[100, 100], &[20, 5], &[4, 25], 8, 20 * 5 * 8);
        assert_eq!(read, vec![20, 5]);
        assert_eq!(write, vec![4, 25]);
        assert_eq!(int, vec![4, 5]);
        // Plenty of memory: one block each way.
        let (read, int, write) = rechunking_plan(&[100, 100], &[10, 100], &[100, 10], 8, 1 << 30);
        assert_eq!(
            (read, int.clone(), write),
            (vec![100, 100], vec![100, 100], vec![100, 100])
        );
    }

    #[test]
    fn blocks_respect_the_budget() {
        for (shape, src, tgt) in [
            (vec![1000u64, 800, 60], vec![1, 800, 60], vec![1000, 1, 60]),
            (vec![4096, 4096], vec![64, 4096], vec![4096, 64]),
            (vec![37, 91, 13], vec![5, 7, 13], vec![37, 2, 3]),
        ] {
            let budget = 1u64 << 20;
            let (read, int, write) = rechunking_plan(&shape, &src, &tgt, 8, budget);
            for (block, base) in [(&read, &src), (&write, &tgt), (&int, &src)] {
                let bytes: u64 = block.iter().product::<u64>() * 8;
                let base_bytes: u64 = base.iter().product::<u64>() * 8;
                assert!(bytes <= budget.max(base_bytes), "{block:?} of {shape:?}");
            }
            for axis in 0..shape.len() {
                let (r, s) = (read[axis], src[axis]);
                assert!(
                    r % s == 0 || r == shape[axis],
                    "read {read:?} is not made of source chunks {src:?}"
                );
                assert!(write[axis] >= tgt[axis]);
            }
        }
    }
}
