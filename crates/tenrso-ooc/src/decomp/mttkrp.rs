//! Streaming MTTKRP (matricized tensor times Khatri-Rao product): for one
//! mode, or for every mode of an ALS sweep from two partial contractions.

use crate::core::{Error, Result, Shape};
use crate::decomp::Matrix;
use crate::decomp::chunk_kernels::{LeftPartial, ModeMttkrp, RightPartial};
use crate::decomp::stream::{ResidentTensor, stream_accumulate, stream_accumulate_held};
use crate::exec::{Progress, Session};
use crate::io::{ArrayRef, IntoArrayRef};
use crate::memory::Reservation;

/// `X₍ₙ₎ · (F_N ⊙ … ⊙ F_{n+1} ⊙ F_{n-1} ⊙ … ⊙ F_1)`: the MTTKRP of `mode`
/// (`I_n × R`), streamed chunk by chunk in one pass over `x`. Each chunk is
/// multiplied (GEMM) by the Khatri-Rao rows of the other factors restricted
/// to its own index ranges; the full Khatri-Rao product is never formed.
/// The summation order is fixed by the chunk grid, so the result is bitwise
/// the same for any thread count.
///
/// `factors[m]` is `I_m × R`; `factors[mode]` is not read but must have the
/// right shape.
///
/// ```
/// use tenrso_ooc::decomp::{Matrix, mttkrp};
/// use tenrso_ooc::exec::{ExecOptions, NoProgress, Session};
/// use tenrso_ooc::ops::{Fill, Generate};
/// use tenrso_ooc::store::ArraySpec;
/// use tenrso_ooc::DType;
/// # let dir = tempfile::tempdir()?;
/// let session = Session::new(ExecOptions::default().with_memory_limit(16 << 20));
/// let spec = ArraySpec::new(vec![6, 5, 4], vec![4, 2, 3], DType::F64);
/// let x = Generate::new(dir.path().join("x.zarr"), spec, Fill::Ones).plan(&session)?.run()?.array;
/// let factors: Vec<Matrix> = [6, 5, 4].iter().map(|&i| Matrix::from_vec(i, 2, vec![1.0; i * 2]).unwrap()).collect();
/// let m = mttkrp(&session, &x, &factors, 1, &NoProgress)?;
/// assert_eq!((m.rows(), m.cols()), (5, 2));
/// assert_eq!(m.get(0, 0), 24.0); // 6 × 4 ones
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad mode or factor shapes;
/// [`Error::MemoryLimit`]; store errors.
pub fn mttkrp(
    session: &Session,
    x: &impl IntoArrayRef,
    factors: &[Matrix],
    mode: usize,
    progress: &dyn Progress,
) -> Result<Matrix> {
    let x = &x.array_ref();
    let rank = check_factors(x.shape(), factors)?;
    if mode >= x.shape().len() {
        return Err(Error::invalid(format!(
            "mode {mode} is out of range for a tensor of {} modes",
            x.shape().len()
        )));
    }
    let kernel = ModeMttkrp {
        factors,
        mode,
        rank,
    };
    let label = format!("MTTKRP of mode {mode}");
    stream_accumulate(session, x, None, &[mode], &kernel, &label, progress)
}

/// [`mttkrp`] over a tensor that may be held in memory.
pub(crate) fn mode_mttkrp(
    session: &Session,
    x: &ArrayRef,
    resident: Option<&ResidentTensor>,
    factors: &[Matrix],
    mode: usize,
    label: &str,
    progress: &dyn Progress,
) -> Result<Matrix> {
    let kernel = ModeMttkrp {
        factors,
        mode,
        rank: factors[0].cols(),
    };
    stream_accumulate(session, x, resident, &[mode], &kernel, label, progress)
}

/// Checks that `factors` has one `I_m × R` matrix per mode; returns `R`.
pub(crate) fn check_factors(shape: &[u64], factors: &[Matrix]) -> Result<usize> {
    if factors.len() != shape.len() {
        return Err(Error::invalid(format!(
            "{} factors given for a tensor of {} modes",
            factors.len(),
            shape.len()
        )));
    }
    let rank = factors.first().map_or(0, Matrix::cols);
    for (m, (f, &extent)) in factors.iter().zip(shape).enumerate() {
        if f.rows() as u64 != extent || f.cols() != rank {
            return Err(Error::invalid(format!(
                "factor {m} is {}×{}, expected {extent}×{rank}",
                f.rows(),
                f.cols()
            )));
        }
    }
    Ok(rank)
}

/// `P[i_0..i_{s-1}, r] = Σ X[i, j] · Π_{m≥s} F_m[j_m, r]`: the tensor with
/// the modes `split..N` contracted against the factors (one pass).
pub(crate) fn right_partial(
    session: &Session,
    x: &ArrayRef,
    resident: Option<&ResidentTensor>,
    factors: &[Matrix],
    split: usize,
    label: &str,
    progress: &dyn Progress,
) -> Result<(Matrix, Reservation)> {
    let rank = factors[0].cols();
    let kernel = RightPartial {
        factors,
        split,
        rank,
    };
    let modes: Vec<usize> = (0..split).collect();
    stream_accumulate_held(session, x, resident, &modes, &kernel, label, progress)
}

/// `Q[j_s..j_{N-1}, r] = Σ X[i, j] · Π_{m<s} F_m[i_m, r]`: the tensor with
/// the modes `0..split` contracted against the factors (one pass).
pub(crate) fn left_partial(
    session: &Session,
    x: &ArrayRef,
    resident: Option<&ResidentTensor>,
    factors: &[Matrix],
    split: usize,
    label: &str,
    progress: &dyn Progress,
) -> Result<(Matrix, Reservation)> {
    let rank = factors[0].cols();
    let kernel = LeftPartial {
        factors,
        split,
        rank,
    };
    let modes: Vec<usize> = (split..factors.len()).collect();
    stream_accumulate_held(session, x, resident, &modes, &kernel, label, progress)
}

/// The MTTKRP of mode `modes.start + within` from a partial contraction
/// whose rows run (C order) over the extents of `modes`:
/// `M[i, r] = Σ_{rows with index i} P[row, r] · Π_{other modes m} F_m[i_m, r]`.
pub(crate) fn mttkrp_from_partial(
    partial: &Matrix,
    factors: &[Matrix],
    modes: std::ops::Range<usize>,
    mode: usize,
) -> Matrix {
    let rank = partial.cols();
    let extents: Vec<u64> = modes.clone().map(|m| factors[m].rows() as u64).collect();
    let within = mode - modes.start;
    let shape = Shape::new(extents.clone());
    let mut out = Matrix::zeros(factors[mode].rows(), rank);
    let mut index = vec![0u64; extents.len()];
    let mut weights = vec![1.0; rank];
    for row in 0..partial.rows() {
        weights.fill(1.0);
        for (k, &i) in index.iter().enumerate() {
            if k != within {
                let f = factors[modes.start + k].row(i as usize);
                weights.iter_mut().zip(f).for_each(|(w, v)| *w *= v);
            }
        }
        let target = index[within] as usize;
        let dst = &mut out.as_mut_slice()[target * rank..(target + 1) * rank];
        for ((d, p), w) in dst.iter_mut().zip(partial.row(row)).zip(&weights) {
            *d += p * w;
        }
        // Next index in C order.
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < shape.dims()[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// The split `s` (`1 ≤ s < N`) whose larger partial, `Π_{m<s} I_m` or
/// `Π_{m≥s} I_m` rows, is smallest; and that number of rows.
pub(crate) fn best_split(shape: &[u64]) -> (usize, u64) {
    (1..shape.len().max(2))
        .map(|s| {
            let left: u64 = shape[..s.min(shape.len())].iter().product();
            let right: u64 = shape[s.min(shape.len())..].iter().product();
            (s, left.max(right))
        })
        .min_by_key(|(_, rows)| *rows)
        .unwrap_or((1, 1))
}
