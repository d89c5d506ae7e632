//! Small dense results every rank needs and rank 0 alone computes (the
//! solves, eigen- and singular-vector problems of an iteration), sent to
//! the other ranks as bits, so that no rank's result depends on its CPU's
//! kernels; and decisions (a callback's stop) that rank 0 makes for all.

use crate::core::{Error, Result};
use crate::decomp::Matrix;
use crate::distributed::Ranks;

/// `compute`'s matrices on every rank: run by rank 0 alone and broadcast
/// as bits (in one process, just run). An error on rank 0 is an error on
/// every rank.
///
/// # Errors
/// `compute`'s error on rank 0; on the other ranks
/// [`Error::Internal`] quoting it.
pub(crate) fn on_root(
    ranks: &dyn Ranks,
    compute: impl FnOnce() -> Result<Vec<Matrix>>,
) -> Result<Vec<Matrix>> {
    if !ranks.is_distributed() {
        return compute();
    }
    if ranks.is_root() {
        let result = compute();
        ranks.broadcast(&encode(&result));
        return result;
    }
    decode(&ranks.broadcast(&[]))
}

/// Rank 0's `decision`, on every rank.
pub(crate) fn root_decides(ranks: &dyn Ranks, decision: bool) -> bool {
    if !ranks.is_distributed() {
        return decision;
    }
    ranks.broadcast(&[u8::from(decision)]).first() == Some(&1)
}

/// `[1][count][rows cols values…]…` for matrices, `[0][message]` for an
/// error; integers and values little-endian.
fn encode(result: &Result<Vec<Matrix>>) -> Vec<u8> {
    match result {
        Err(err) => std::iter::once(0u8)
            .chain(err.to_string().into_bytes())
            .collect(),
        Ok(matrices) => {
            let mut bytes = vec![1u8];
            bytes.extend((matrices.len() as u64).to_le_bytes());
            for m in matrices {
                bytes.extend((m.rows() as u64).to_le_bytes());
                bytes.extend((m.cols() as u64).to_le_bytes());
                bytes.extend(m.as_slice().iter().flat_map(|v| v.to_le_bytes()));
            }
            bytes
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Vec<Matrix>> {
    let broken = || Error::internal("rank 0 sent a malformed matrix message");
    match bytes.split_first() {
        Some((0, message)) => Err(Error::internal(format!(
            "rank 0 failed: {}",
            String::from_utf8_lossy(message)
        ))),
        Some((1, mut rest)) => {
            let mut word = || -> Result<u64> {
                let (head, tail) = rest.split_at_checked(8).ok_or_else(broken)?;
                rest = tail;
                Ok(u64::from_le_bytes(head.try_into().map_err(|_| broken())?))
            };
            let count = word()?;
            let mut matrices = Vec::new();
            for _ in 0..count {
                let (rows, cols) = (word()? as usize, word()? as usize);
                let values = (0..rows.checked_mul(cols).ok_or_else(broken)?)
                    .map(|_| word().map(f64::from_bits))
                    .collect::<Result<Vec<f64>>>()?;
                matrices.push(Matrix::from_vec(rows, cols, values)?);
            }
            Ok(matrices)
        }
        _ => Err(broken()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::LocalRanks;

    #[test]
    fn every_rank_gets_rank_zeros_bits_and_errors() {
        let ranks = LocalRanks::group(3);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .iter()
                .map(|r| {
                    s.spawn(move || {
                        // Each rank would compute something else: rank 0's wins.
                        let mine = r.rank() as f64;
                        let got = on_root(r, || {
                            Ok(vec![
                                Matrix::from_vec(1, 2, vec![mine, -0.0])?,
                                Matrix::zeros(0, 3),
                            ])
                        })
                        .unwrap();
                        let failed = on_root(r, || Err(Error::invalid("singular"))).unwrap_err();
                        let stop = root_decides(r, r.rank() == 0);
                        (got, failed.to_string(), stop)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (got, failed, stop) in results {
            assert_eq!(got[0].as_slice()[0].to_bits(), 0.0f64.to_bits());
            assert_eq!(got[0].as_slice()[1].to_bits(), (-0.0f64).to_bits());
            assert_eq!((got[1].rows(), got[1].cols()), (0, 3));
            assert!(failed.contains("singular"), "{failed}");
            assert!(stop);
        }
    }
}
