//! What one chunk contributes to the streamed products of decompositions:
//! MTTKRP blocks, partial contractions with Khatri-Rao rows, Tucker
//! projections and mode Gram matrices. Every kernel multiplies the chunk as
//! a matrix (GEMM); Khatri-Rao products are formed only for the chunk's own
//! index ranges, never for a whole mode (DESIGN.md contract 7).

use std::ops::Range;

use crate::core::Region;
use crate::decomp::Matrix;
use crate::{MatView, matmul_add};

/// A chunk's contribution to a streamed accumulation. The accumulator block
/// of a chunk has one row per element of the chunk's extent over the
/// stream's output modes (C order) and [`cols`](Self::cols) columns.
pub(crate) trait ChunkKernel: Sync {
    /// Columns of the accumulated matrix.
    fn cols(&self) -> usize;
    /// `f64` elements of scratch a chunk of `shape` needs besides its
    /// accumulator block.
    fn scratch_elements(&self, shape: &[u64]) -> u64;
    /// Adds the contribution of `chunk` (C order, covering `region`) to `acc`.
    fn accumulate(&self, region: &Region, chunk: &[f64], acc: &mut [f64]);
}

fn dims(region: &Region) -> Vec<usize> {
    region.shape().iter().map(|d| *d as usize).collect()
}

fn product(d: &[usize]) -> usize {
    d.iter().product()
}

/// The chunk-local Khatri-Rao rows of `modes`: row `t` (C order over the
/// modes' extents in `region`) is the elementwise product of the factors'
/// rows at the chunk's indices. `rows(modes) × rank`.
pub(crate) fn khatri_rao_rows(
    factors: &[Matrix],
    region: &Region,
    modes: Range<usize>,
    rank: usize,
) -> Vec<f64> {
    let mut out = vec![1.0; rank];
    for m in modes {
        let (start, len) = (region.start()[m] as usize, region.shape()[m] as usize);
        let rows = factors[m].row_block(start, len);
        let mut next = Vec::with_capacity(out.len() * len);
        for prev in out.chunks_exact(rank) {
            for f in rows.chunks_exact(rank) {
                next.extend(prev.iter().zip(f).map(|(a, b)| a * b));
            }
        }
        out = next;
    }
    out
}

/// `P[left, r] = Σ_right X[left, right] · KR(right)[right, r]` for the
/// modes `split..N` (the right modes) contracted away: output modes
/// `0..split`.
pub(crate) struct RightPartial<'a> {
    /// The factors (only the right modes' are read).
    pub factors: &'a [Matrix],
    /// First contracted mode.
    pub split: usize,
    /// CP rank.
    pub rank: usize,
}

impl ChunkKernel for RightPartial<'_> {
    fn cols(&self) -> usize {
        self.rank
    }

    fn scratch_elements(&self, shape: &[u64]) -> u64 {
        shape[self.split..].iter().product::<u64>() * self.rank as u64
    }

    /// One GEMM with a long inner dimension, `X (left × right) · KR (right ×
    /// R)` — the fastest of the layouts measured for faer's kernels.
    fn accumulate(&self, region: &Region, chunk: &[f64], acc: &mut [f64]) {
        let d = dims(region);
        let (left, right) = (product(&d[..self.split]), product(&d[self.split..]));
        let kr = khatri_rao_rows(self.factors, region, self.split..d.len(), self.rank);
        matmul_add(
            acc,
            MatView::row_major(chunk, left, right),
            MatView::row_major(&kr, right, self.rank),
            1,
        );
    }
}

/// `Q[right, r] = Σ_left X[left, right] · KR(left)[left, r]` for the modes
/// `0..split` contracted away: output modes `split..N`.
pub(crate) struct LeftPartial<'a> {
    /// The factors (only the left modes' are read).
    pub factors: &'a [Matrix],
    /// First kept mode.
    pub split: usize,
    /// CP rank.
    pub rank: usize,
}

impl ChunkKernel for LeftPartial<'_> {
    fn cols(&self) -> usize {
        self.rank
    }

    fn scratch_elements(&self, shape: &[u64]) -> u64 {
        shape[..self.split].iter().product::<u64>() * self.rank as u64
    }

    /// One GEMM straight into the accumulator, `Q (right × R) += Xᵀ (right
    /// × left) · KR (left × R)`: `Xᵀ` is column-major, which the kernels
    /// read as stored, unpacked. (Computing `Qᵀ = KRᵀ · X` and adding it
    /// transposed made the kernels pack `X` across its long rows, then
    /// read `Qᵀ` across them: with 80 × 80 × 160 chunks on AMD EPYC
    /// (AVX2), CP-ALS iterations took 1.97–2.14 s that way, 1.50–1.76 s
    /// this way.)
    fn accumulate(&self, region: &Region, chunk: &[f64], acc: &mut [f64]) {
        let d = dims(region);
        let (left, right) = (product(&d[..self.split]), product(&d[self.split..]));
        let kr = khatri_rao_rows(self.factors, region, 0..self.split, self.rank);
        matmul_add(
            acc,
            MatView::transposed(chunk, right, left),
            MatView::row_major(&kr, left, self.rank),
            1,
        );
    }
}

/// The MTTKRP of one mode: `M[i, r] = Σ X[.., i, ..] · Π_{m≠mode} F_m[i_m, r]`.
/// Output mode: `mode`.
pub(crate) struct ModeMttkrp<'a> {
    /// The factors (all but `mode`'s are read).
    pub factors: &'a [Matrix],
    /// The mode of the product.
    pub mode: usize,
    /// CP rank.
    pub rank: usize,
}

impl ChunkKernel for ModeMttkrp<'_> {
    fn cols(&self) -> usize {
        self.rank
    }

    fn scratch_elements(&self, shape: &[u64]) -> u64 {
        let n = self.mode;
        let r = self.rank as u64;
        let through: u64 = shape[..=n].iter().product();
        let after: u64 = shape[n + 1..].iter().product();
        let before: u64 = shape[..n].iter().product();
        (through + after + before) * r
    }

    fn accumulate(&self, region: &Region, chunk: &[f64], acc: &mut [f64]) {
        let d = dims(region);
        let (n, rank) = (self.mode, self.rank);
        if n + 1 == d.len() {
            let left = LeftPartial {
                factors: self.factors,
                split: n,
                rank,
            };
            return left.accumulate(region, chunk, acc);
        }
        let (before, c) = (product(&d[..n]), d[n]);
        if n == 0 {
            let right = RightPartial {
                factors: self.factors,
                split: 1,
                rank,
            };
            return right.accumulate(region, chunk, acc);
        }
        // Contract the modes after `n` by GEMM, then those before it by a
        // weighted sum over the (small) partial.
        let mut partial = vec![0.0; before * c * rank];
        RightPartial {
            factors: self.factors,
            split: n + 1,
            rank,
        }
        .accumulate(region, chunk, &mut partial);
        let kr = khatri_rao_rows(self.factors, region, 0..n, rank);
        for (l, weights) in kr.chunks_exact(rank).enumerate() {
            let rows = &partial[l * c * rank..(l + 1) * c * rank];
            for (a, p) in acc.chunks_exact_mut(rank).zip(rows.chunks_exact(rank)) {
                for ((a, p), w) in a.iter_mut().zip(p).zip(weights) {
                    *a += p * w;
                }
            }
        }
    }
}

/// `Y = X ×_m A` for a C-order block of extents `d` and a matrix `A`
/// (`out × d[m]`): axis `m` of the result has extent `out`.
pub(crate) fn mode_product(x: &[f64], d: &[usize], m: usize, a: MatView<'_, f64>) -> Vec<f64> {
    let (before, c, after) = (product(&d[..m]), d[m], product(&d[m + 1..]));
    let out = a.rows;
    debug_assert_eq!(a.cols, c);
    let mut y = vec![0.0; before * out * after];
    if after == 1 {
        matmul_add(&mut y, MatView::row_major(x, before, c), a.transpose(), 1);
    } else {
        for (yl, xl) in y
            .chunks_exact_mut(out * after)
            .zip(x.chunks_exact(c * after))
        {
            matmul_add(yl, a, MatView::row_major(xl, c, after), 1);
        }
    }
    y
}

/// The Tucker projection of one mode: `X ×_{k≠mode} U_kᵀ`, unfolded along
/// `mode` (rows: the mode's index; columns: the other modes' ranks in C
/// order, as `numpy.moveaxis(Y, mode, 0).reshape(I, -1)`).
pub(crate) struct TuckerProjection<'a> {
    /// The factors (all but `mode`'s are read), `I_k × r_k`.
    pub factors: &'a [Matrix],
    /// The mode kept.
    pub mode: usize,
}

impl ChunkKernel for TuckerProjection<'_> {
    fn cols(&self) -> usize {
        (0..self.factors.len())
            .filter(|k| *k != self.mode)
            .map(|k| self.factors[k].cols())
            .product()
    }

    fn scratch_elements(&self, shape: &[u64]) -> u64 {
        // Two intermediates at most as large as the chunk, plus the result.
        2 * shape.iter().product::<u64>() + shape[self.mode] * self.cols() as u64
    }

    fn accumulate(&self, region: &Region, chunk: &[f64], acc: &mut [f64]) {
        let mut d = dims(region);
        let n = self.mode;
        let mut y: Option<Vec<f64>> = None;
        for m in (0..d.len()).rev().filter(|m| *m != n) {
            let r = self.factors[m].cols();
            let u = self.factors[m].row_block(region.start()[m] as usize, d[m]);
            let ut = MatView::transposed(u, r, d[m]);
            let next = mode_product(y.as_deref().unwrap_or(chunk), &d, m, ut);
            d[m] = r;
            y = Some(next);
        }
        let y = y.as_deref().unwrap_or(chunk);
        let (before, c, after) = (product(&d[..n]), d[n], product(&d[n + 1..]));
        let cols = before * after;
        for l in 0..before {
            for i in 0..c {
                let src = &y[(l * c + i) * after..][..after];
                let dst = &mut acc[i * cols + l * after..][..after];
                for (a, s) in dst.iter_mut().zip(src) {
                    *a += s;
                }
            }
        }
    }
}
