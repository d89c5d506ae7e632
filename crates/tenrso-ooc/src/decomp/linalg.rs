//! The small dense linear algebra of decompositions, on faer: normal
//! equations (Cholesky, pseudo-inverse when ill-conditioned), leading
//! eigenvectors and singular vectors with a fixed sign convention, and
//! orthonormal bases.
//!
//! Everything here runs sequentially (`Par::Seq`), so results never depend
//! on the thread count.

use faer::linalg::solvers::Solve;
use faer::{MatRef, Side};

use crate::core::{Error, Result};
use crate::decomp::Matrix;

/// Reciprocal condition (min/max eigenvalue, estimated from the Cholesky
/// diagonal) below which normal equations are solved by pseudo-inverse.
const MIN_RECIPROCAL_CONDITION: f64 = 1e-13;

fn faer_ref(m: &Matrix) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(m.as_slice(), m.rows(), m.cols())
}

fn from_faer(m: MatRef<'_, f64>) -> Matrix {
    let mut out = Matrix::zeros(m.nrows(), m.ncols());
    let cols = m.ncols();
    for i in 0..m.nrows() {
        for j in 0..cols {
            out.as_mut_slice()[i * cols + j] = m[(i, j)];
        }
    }
    out
}

fn sequential() {
    faer::set_global_parallelism(faer::Par::Seq);
}

/// `X = B · A⁻¹` for a symmetric positive semi-definite `A` (`r × r`) and
/// `B` (`n × r`): the factor update of ALS. Solved by Cholesky; when `A` is
/// singular or too ill-conditioned for it, by the pseudo-inverse from its
/// eigendecomposition (eigenvalues below `r·ε·λmax` dropped).
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes or non-finite input.
pub fn solve_right_spd(b: &Matrix, a: &Matrix) -> Result<Matrix> {
    let r = a.rows();
    if a.cols() != r || b.cols() != r {
        return Err(Error::invalid(format!(
            "normal equations: a {}×{} system for a {}×{} right-hand side",
            a.rows(),
            a.cols(),
            b.rows(),
            b.cols()
        )));
    }
    if !a
        .as_slice()
        .iter()
        .chain(b.as_slice())
        .all(|x| x.is_finite())
    {
        return Err(Error::invalid(
            "normal equations hold NaN or infinite values (the data or the factors diverged)",
        ));
    }
    sequential();
    // A is symmetric, so X·A = B  ⇔  A·Xᵀ = Bᵀ.
    let bt = b.transpose();
    if let Ok(llt) = faer_ref(a).llt(Side::Lower) {
        let l = llt.L();
        let diag: Vec<f64> = (0..r).map(|i| l[(i, i)]).collect();
        let hi = diag.iter().cloned().fold(0.0f64, f64::max);
        let lo = diag.iter().cloned().fold(f64::INFINITY, f64::min);
        if r == 0 || (lo * lo) >= MIN_RECIPROCAL_CONDITION * hi * hi {
            let xt = llt.solve(faer_ref(&bt));
            return Ok(from_faer(xt.as_ref()).transpose());
        }
    }
    let pinv = pseudo_inverse_symmetric(a)?;
    Ok(b.matmul(&pinv))
}

/// The pseudo-inverse of a symmetric matrix.
fn pseudo_inverse_symmetric(a: &Matrix) -> Result<Matrix> {
    let r = a.rows();
    let evd = faer_ref(a)
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::invalid(format!("eigendecomposition failed: {e:?}")))?;
    let u = from_faer(evd.U());
    let s: Vec<f64> = (0..r).map(|i| evd.S()[i]).collect();
    let max = s.iter().cloned().fold(0.0f64, |m, x| m.max(x.abs()));
    let tol = max * r as f64 * f64::EPSILON;
    let inv: Vec<f64> = s
        .iter()
        .map(|&x| if x.abs() > tol { 1.0 / x } else { 0.0 })
        .collect();
    let mut us = u.clone();
    us.scale_columns(&inv);
    Ok(us.matmul(&u.transpose()))
}

/// Flips the sign of each column so that its entry of largest magnitude is
/// positive (the convention of scikit-learn's and TensorLy's `svd_flip`).
pub fn flip_signs(u: &mut Matrix) {
    let (rows, cols) = (u.rows(), u.cols());
    for j in 0..cols {
        let mut best = 0.0f64;
        for i in 0..rows {
            let v = u.get(i, j);
            if v.abs() > best.abs() {
                best = v;
            }
        }
        if best < 0.0 {
            for i in 0..rows {
                u.as_mut_slice()[i * cols + j] = -u.get(i, j);
            }
        }
    }
}

/// The `k` leading eigenvectors (columns, by decreasing eigenvalue) and
/// eigenvalues of the symmetric `a`, signs as [`flip_signs`].
///
/// # Errors
/// When the eigendecomposition fails (non-finite input).
pub fn leading_eigenvectors(a: &Matrix, k: usize) -> Result<(Matrix, Vec<f64>)> {
    sequential();
    let n = a.rows();
    let k = k.min(n);
    let evd = faer_ref(a)
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::invalid(format!("eigendecomposition failed: {e:?}")))?;
    let mut u = Matrix::zeros(n, k);
    let mut values = Vec::with_capacity(k);
    for j in 0..k {
        let src = n - 1 - j; // eigenvalues ascend
        values.push(evd.S()[src]);
        for i in 0..n {
            u.as_mut_slice()[i * k + j] = evd.U()[(i, src)];
        }
    }
    flip_signs(&mut u);
    Ok((u, values))
}

/// The `k` leading left singular vectors (columns) and singular values of
/// `a`, signs as [`flip_signs`].
///
/// # Errors
/// When the SVD fails (non-finite input).
pub fn leading_left_singular_vectors(a: &Matrix, k: usize) -> Result<(Matrix, Vec<f64>)> {
    sequential();
    let svd = faer_ref(a)
        .thin_svd()
        .map_err(|e| Error::invalid(format!("SVD failed: {e:?}")))?;
    let avail = svd.U().ncols();
    let k = k.min(avail);
    let mut u = Matrix::zeros(a.rows(), k);
    for i in 0..a.rows() {
        for j in 0..k {
            u.as_mut_slice()[i * k + j] = svd.U()[(i, j)];
        }
    }
    flip_signs(&mut u);
    Ok((u, (0..k).map(|j| svd.S()[j]).collect()))
}

/// An orthonormal basis of the columns of `a` (`rows × min(rows, cols)`),
/// from a Householder QR.
pub fn orthonormal_basis(a: &Matrix) -> Matrix {
    sequential();
    let q = faer_ref(a).qr().compute_thin_Q();
    from_faer(q.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Matrix, b: &Matrix, tol: f64) -> bool {
        a.as_slice()
            .iter()
            .zip(b.as_slice())
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    #[test]
    fn solves_well_and_ill_conditioned_systems() {
        let a = Matrix::from_vec(2, 2, vec![4.0, 1.0, 1.0, 3.0]).unwrap();
        let x = Matrix::from_vec(3, 2, vec![1.0, 2.0, -1.0, 0.5, 3.0, 3.0]).unwrap();
        let b = x.matmul(&a);
        assert!(close(&solve_right_spd(&b, &a).unwrap(), &x, 1e-12));
        // Rank one: the pseudo-inverse gives the least-norm solution.
        let s = Matrix::from_vec(2, 2, vec![1.0, 1.0, 1.0, 1.0]).unwrap();
        let b = Matrix::from_vec(1, 2, vec![2.0, 2.0]).unwrap();
        let x = solve_right_spd(&b, &s).unwrap();
        assert!(close(
            &x,
            &Matrix::from_vec(1, 2, vec![1.0, 1.0]).unwrap(),
            1e-12
        ));
        let nan = Matrix::from_vec(1, 2, vec![f64::NAN, 0.0]).unwrap();
        assert!(solve_right_spd(&nan, &a).is_err());
    }

    #[test]
    fn leading_vectors_are_sorted_and_sign_fixed() {
        let a = Matrix::from_vec(3, 3, vec![2.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
        let (u, s) = leading_eigenvectors(&a, 2).unwrap();
        assert!((s[0] - 5.0).abs() < 1e-12 && (s[1] - 2.0).abs() < 1e-12);
        assert!((u.get(1, 0) - 1.0).abs() < 1e-12 && (u.get(0, 1) - 1.0).abs() < 1e-12);
        let m = Matrix::from_vec(3, 2, vec![0.0, -3.0, 0.0, 0.0, -1.0, 0.0]).unwrap();
        let (u, s) = leading_left_singular_vectors(&m, 1).unwrap();
        assert!((s[0] - 3.0).abs() < 1e-12 && (u.get(0, 0) - 1.0).abs() < 1e-12);
        let q = orthonormal_basis(&m);
        assert!(close(&q.gram(), &Matrix::identity(2), 1e-12));
    }
}
