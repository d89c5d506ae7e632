//! [`matmul_add`]: `C += A·B` on row-major blocks through the build's GEMM
//! kernel (faer, or OpenBLAS with the `blas` feature), split by rows over
//! threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::core::{DType, Element};

/// A matrix stored in a slice: `rows × cols` in row-major order, or the
/// transpose of a row-major `cols × rows` matrix (so blocks whose axes come
/// in the other order multiply without being copied); either may be a block
/// of a larger row-major matrix whose rows are `ld` elements apart.
#[derive(Debug, Clone, Copy)]
pub struct MatView<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Rows of the matrix as used.
    pub rows: usize,
    /// Columns of the matrix as used.
    pub cols: usize,
    /// `data` holds the transpose (`cols × rows`, row-major).
    pub transposed: bool,
    /// Elements between consecutive rows of the storage: `cols` (`rows`
    /// when transposed) unless the matrix is a block of a wider one.
    pub ld: usize,
}

impl<'a, T> MatView<'a, T> {
    /// `rows × cols` stored row-major in `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            transposed: false,
            ld: cols,
        }
    }

    /// `rows × cols`, the transpose of the row-major `cols × rows` in `data`.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            transposed: true,
            ld: rows,
        }
    }

    /// `rows × cols` stored row-major in `data` with its rows `ld`
    /// elements apart: a block of a wider matrix, starting at `data[0]`.
    ///
    /// ```
    /// use tenrso_ooc::MatView;
    /// let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [[1, 2, 3], [4, 5, 6]]
    /// let right = MatView::strided(&m[1..], 2, 2, 3); // [[2, 3], [5, 6]]
    /// assert_eq!((right.data[0], right.data[3]), (2.0, 5.0));
    /// ```
    ///
    /// # Panics
    /// If the rows overlap (`ld < cols`) or `data` is too short.
    pub fn strided(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(ld >= cols, "rows {ld} apart cannot hold {cols} columns");
        let view = Self {
            data,
            rows,
            cols,
            transposed: false,
            ld,
        };
        assert!(data.len() >= view.span(), "matrix data too short");
        view
    }

    /// The transpose of this matrix, from the same storage.
    pub fn transpose(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
            ..self
        }
    }

    /// Elements the storage spans: `ld` per stored row but the last.
    fn span(&self) -> usize {
        let (stored_rows, stored_cols) = if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        };
        if stored_rows == 0 || stored_cols == 0 {
            0
        } else {
            (stored_rows - 1) * self.ld + stored_cols
        }
    }
}

/// The kernel behind [`matmul_add`] in this build: faer's GEMM, or with the
/// `blas` feature the machine's OpenBLAS (its build and the kernel it chose
/// for this CPU).
///
/// ```
/// let kernel = tenrso_ooc::gemm_kernel();
/// assert!(kernel.starts_with("faer") || kernel.starts_with("OpenBLAS"));
/// ```
pub fn gemm_kernel() -> String {
    #[cfg(feature = "blas")]
    {
        super::gemm_blas::description()
    }
    #[cfg(not(feature = "blas"))]
    {
        "faer 0.24 (pure Rust, runtime-dispatched SIMD)".to_string()
    }
}

/// The GEMM speed of this machine on one thread, in GFLOP/s: the build's
/// kernel on 768 × 768 f64 matrices, best of three, measured once per
/// process (about 30 ms and 9 MiB the first time).
pub fn gemm_gflops() -> f64 {
    static MEASURED: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *MEASURED.get_or_init(|| {
        const N: usize = 768;
        let a: Vec<f64> = (0..N * N).map(|i| (i % 7) as f64 - 3.0).collect();
        let mut c = vec![0.0; N * N];
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            matmul_add(
                &mut c,
                MatView::row_major(&a, N, N),
                MatView::transposed(&a, N, N),
                1,
            );
            best = best.min(start.elapsed().as_secs_f64());
        }
        2.0 * (N as f64).powi(3) / best.max(1e-9) / 1e9
    })
}

/// Rows of `c` per kernel call, about, when a product is split (each call
/// packs all of `b` again: 512-row blocks cost 2–4 % of a 1024³ product).
const PART_ROWS: usize = 1024;

/// Multiply-adds below which a product is one kernel call.
const MIN_SPLIT_WORK: usize = 1 << 26;

/// `c += a · b`, where `c` is `a.rows × b.cols` row-major, by the build's
/// kernel ([`gemm_kernel`]) on up to `threads` threads.
///
/// A large product is cut into blocks of about 1024 rows of `c` by its shape
/// alone, and each block is one sequential kernel call; threads share the
/// blocks. So the kernel calls, and therefore the bits of the result, are
/// the same for any `threads`. (Cutting by thread count would not do:
/// OpenBLAS sums a block of a few rows in another order than a large one.)
///
/// ```
/// use tenrso_ooc::{MatView, matmul_add};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let b = [5.0, 6.0];           // [[5], [6]]
/// let mut c = [1.0, 1.0];
/// matmul_add(&mut c, MatView::row_major(&a, 2, 2), MatView::row_major(&b, 2, 1), 1);
/// assert_eq!(c, [18.0, 40.0]);
/// ```
///
/// # Panics
/// If the shapes do not agree or a slice is too short.
pub fn matmul_add<T: Element>(c: &mut [T], a: MatView<'_, T>, b: MatView<'_, T>, threads: usize) {
    assert_eq!(c.len(), a.rows * b.cols, "output has the wrong length");
    matmul_add_block(c, b.cols, a, b, threads);
}

/// [`matmul_add`] into a block of a wider row-major `c`: its `a.rows` rows
/// start `ldc` elements apart (`ldc ≥ b.cols`), from `c[0]` on.
///
/// # Panics
/// If the shapes do not agree or a slice is too short.
pub(crate) fn matmul_add_block<T: Element>(
    c: &mut [T],
    ldc: usize,
    a: MatView<'_, T>,
    b: MatView<'_, T>,
    threads: usize,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert!(ldc >= b.cols, "output rows overlap");
    let c_span = if a.rows == 0 || b.cols == 0 {
        0
    } else {
        (a.rows - 1) * ldc + b.cols
    };
    assert!(c.len() >= c_span, "output too short");
    assert!(a.data.len() >= a.span() && b.data.len() >= b.span());
    let c = &mut c[..c_span];
    let a = Strided::of(a);
    let b = Strided::of(b);
    let work = a.rows.saturating_mul(a.cols).saturating_mul(b.cols);
    if work < MIN_SPLIT_WORK || a.rows < 2 * PART_ROWS {
        return kernel(c, ldc, a, b);
    }
    let rows_per_part = a.rows.div_ceil(a.rows.div_ceil(PART_ROWS));
    let mut shares: Vec<Vec<(usize, &mut [T])>> = (0..threads.max(1)).map(|_| Vec::new()).collect();
    let count = shares.len();
    for (p, part) in c.chunks_mut(rows_per_part * ldc).enumerate() {
        shares[p % count].push((p * rows_per_part, part));
    }
    let rows = a.rows;
    let run = move |share: Vec<(usize, &mut [T])>| {
        for (start, part) in share {
            let count = rows_per_part.min(rows - start);
            kernel(part, ldc, a.rows_range(start, count), b);
        }
    };
    std::thread::scope(|scope| {
        let mut shares = shares.into_iter().filter(|s| !s.is_empty());
        let mine = shares.next();
        for share in shares {
            scope.spawn(move || run(share));
        }
        if let Some(share) = mine {
            run(share);
        }
    });
}

/// A [`MatView`] with an explicit leading dimension, so that a block of its
/// rows is a view too.
#[derive(Debug, Clone, Copy)]
pub(super) struct Strided<'a, T> {
    pub(super) data: &'a [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Elements between consecutive rows of the storage (`cols` of the
    /// matrix as used, or `rows` when transposed).
    pub(super) ld: usize,
    pub(super) transposed: bool,
}

impl<'a, T> Strided<'a, T> {
    fn of(v: MatView<'a, T>) -> Self {
        Self {
            data: &v.data[..v.span()],
            rows: v.rows,
            cols: v.cols,
            ld: v.ld,
            transposed: v.transposed,
        }
    }

    /// Rows `start .. start + count` of the matrix as used.
    fn rows_range(self, start: usize, count: usize) -> Self {
        let data = if self.transposed {
            // Columns of the stored `cols × rows` matrix.
            &self.data[start..]
        } else {
            let end = ((start + count) * self.ld).min(self.data.len());
            &self.data[start * self.ld..end]
        };
        Self {
            data,
            rows: count,
            ..self
        }
    }
}

/// `c += a · b` on the calling thread by the build's kernel, `c`'s rows
/// `ldc` elements apart.
fn kernel<T: Element>(c: &mut [T], ldc: usize, a: Strided<'_, T>, b: Strided<'_, T>) {
    #[cfg(feature = "blas")]
    {
        let done = match T::DTYPE {
            DType::F64 => {
                super::gemm_blas::dgemm(bytemuck::cast_slice_mut(c), ldc, cast(a), cast(b))
            }
            DType::F32 => {
                super::gemm_blas::sgemm(bytemuck::cast_slice_mut(c), ldc, cast(a), cast(b))
            }
        };
        if done {
            return;
        }
    }
    match T::DTYPE {
        DType::F64 => faer_gemm::<f64>(bytemuck::cast_slice_mut(c), ldc, cast(a), cast(b)),
        DType::F32 => faer_gemm::<f32>(bytemuck::cast_slice_mut(c), ldc, cast(a), cast(b)),
    }
}

fn cast<'a, T: Element, U: Element>(v: Strided<'a, T>) -> Strided<'a, U> {
    Strided {
        data: bytemuck::cast_slice(v.data),
        rows: v.rows,
        cols: v.cols,
        ld: v.ld,
        transposed: v.transposed,
    }
}

fn faer_ref<'a, T>(v: Strided<'a, T>) -> MatRef<'a, T> {
    if v.transposed {
        MatRef::from_row_major_slice_with_stride(v.data, v.cols, v.rows, v.ld).transpose()
    } else {
        MatRef::from_row_major_slice_with_stride(v.data, v.rows, v.cols, v.ld)
    }
}

fn faer_gemm<T: faer::traits::ComplexField + Copy>(
    c: &mut [T],
    ldc: usize,
    a: Strided<'_, T>,
    b: Strided<'_, T>,
) {
    let (m, n) = (a.rows, b.cols);
    // (faer 0.24's `from_row_major_slice_with_stride_mut` strides its
    // columns, not its rows: the transpose of a column-major `n × m`.)
    let dst = MatMut::from_column_major_slice_with_stride_mut(c, n, m, ldc).transpose_mut();
    let (a, b) = (faer_ref(a), faer_ref(b));
    let whole = faer_whole_blocks(n, std::mem::size_of::<T>());
    if whole == n {
        matmul(dst, Accum::Add, a, b, T::one_impl(), Par::Seq);
    } else {
        let (left, right) = dst.split_at_col_mut(whole);
        matmul(
            left,
            Accum::Add,
            a,
            b.subcols(0, whole),
            T::one_impl(),
            Par::Seq,
        );
        let rest = b.subcols(whole, n - whole);
        matmul(right, Accum::Add, a, rest, T::one_impl(), Par::Seq);
    }
}

/// The columns of a row-major `c` that are `n` wide which faer's kernel
/// should take in one call: all of them, except for f64 on AVX-512.
///
/// There faer's kernel fills 48 of its destination's contiguous elements
/// (our columns) at a time, and the last `n % 48` columns cost a whole
/// 48-wide pass: a 1024-wide product spent 5–6 % of its time on its last
/// 16 columns. Below 48 columns faer uses a 24 × 8 kernel, so those columns
/// go in a call of their own (1024³: 6 % faster on an AVX-512 Xeon).
fn faer_whole_blocks(n: usize, element_bytes: usize) -> usize {
    const F64_BLOCK: usize = 48;
    if element_bytes != 8 || n <= F64_BLOCK || !has_avx512() {
        return n;
    }
    n - n % F64_BLOCK
}

/// Whether faer runs its AVX-512 kernels on this CPU.
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::CounterRng;

    /// Shapes around the kernels' register blocks and the split thresholds,
    /// most not divisible by anything.
    const SHAPES: [(usize, usize, usize); 7] = [
        (1, 1, 1),
        (7, 3, 5),
        (130, 257, 129),
        (70, 90, 1024),
        (333, 191, 301),
        (2100, 113, 560),
        (3601, 67, 999),
    ];

    fn filled(seed: u64, n: usize) -> Vec<f64> {
        let rng = CounterRng::new(seed);
        (0..n).map(|i| rng.uniform(0, i as u64) - 0.5).collect()
    }

    /// `a · b` by a plain triple loop, with each view's layout.
    fn reference(a: MatView<'_, f64>, b: MatView<'_, f64>) -> Vec<f64> {
        let at = |v: &MatView<'_, f64>, i: usize, j: usize| {
            if v.transposed {
                v.data[j * v.rows + i]
            } else {
                v.data[i * v.cols + j]
            }
        };
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            }
        }
        c
    }

    fn view(data: &[f64], rows: usize, cols: usize, transposed: bool) -> MatView<'_, f64> {
        if transposed {
            MatView::transposed(data, rows, cols)
        } else {
            MatView::row_major(data, rows, cols)
        }
    }

    fn assert_close(got: &[f64], want: &[f64], what: &str) {
        let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * scale,
                "{what}: element {k} is {g}, expected {w}"
            );
        }
    }

    #[test]
    fn faer_takes_f64_columns_in_whole_blocks_on_avx512() {
        let avx512 = has_avx512();
        for (n, whole) in [
            (1024, 1008),
            (1000, 960),
            (96, 96),
            (49, 48),
            (48, 48),
            (47, 47),
        ] {
            let expected = if avx512 { whole } else { n };
            assert_eq!(faer_whole_blocks(n, 8), expected, "{n} f64 columns");
            assert_eq!(faer_whole_blocks(n, 4), n, "{n} f32 columns");
        }
    }

    #[test]
    fn every_thread_count_gives_the_same_bits_and_the_right_product() {
        for (m, k, n) in SHAPES {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let x = filled(1, m * k);
                let y = filled(2, k * n);
                let (a, b) = (view(&x, m, k, ta), view(&y, k, n, tb));
                let start = filled(3, m * n);
                let mut want = reference(a, b);
                want.iter_mut().zip(&start).for_each(|(w, s)| *w += s);
                let mut first = None;
                for threads in 1..=4 {
                    let mut c = start.clone();
                    matmul_add(&mut c, a, b, threads);
                    let what = format!("{m}x{k}x{n} transposed {ta}/{tb}, {threads} threads");
                    assert_close(&c, &want, &what);
                    let bits: Vec<u64> = c.iter().map(|v| v.to_bits()).collect();
                    match &first {
                        None => first = Some(bits),
                        Some(f) => assert!(*f == bits, "{what}: bits differ from 1 thread"),
                    }
                }
            }
        }
    }

    /// Operands that are blocks of wider matrices, multiplied into a block
    /// of a wider output: the right product, the same bits for any thread
    /// count, and nothing outside the block touched.
    #[test]
    fn blocks_of_wider_matrices_multiply_into_a_block_of_the_output() {
        for (m, k, n) in SHAPES {
            for (ta, tb) in [(false, false), (true, true)] {
                // Each operand sits at (2, 3) of a matrix 5 wider and 4 taller.
                let embed = |seed, rows: usize, cols: usize, transposed: bool| {
                    let (r, c) = if transposed {
                        (cols, rows)
                    } else {
                        (rows, cols)
                    };
                    (filled(seed, (r + 4) * (c + 5)), c + 5)
                };
                let (x, ldx) = embed(1, m, k, ta);
                let (y, ldy) = embed(2, k, n, tb);
                // The `rows × cols` matrix at (2, 3), or its transpose's storage there.
                fn block(
                    data: &[f64],
                    ld: usize,
                    rows: usize,
                    cols: usize,
                    transposed: bool,
                ) -> MatView<'_, f64> {
                    let at = &data[2 * ld + 3..];
                    if transposed {
                        MatView::strided(at, cols, rows, ld).transpose()
                    } else {
                        MatView::strided(at, rows, cols, ld)
                    }
                }
                let a = block(&x, ldx, m, k, ta);
                let b = block(&y, ldy, k, n, tb);
                let copy = |v: MatView<'_, f64>| {
                    let (r, c) = if v.transposed {
                        (v.cols, v.rows)
                    } else {
                        (v.rows, v.cols)
                    };
                    let data: Vec<f64> = (0..r * c).map(|i| v.data[i / c * v.ld + i % c]).collect();
                    data
                };
                let (xa, yb) = (copy(a), copy(b));
                let want = reference(view(&xa, m, k, ta), view(&yb, k, n, tb));
                let ldc = n + 7;
                let start = filled(3, (m + 1) * ldc);
                let mut first = None;
                for threads in 1..=3 {
                    let mut c = start.clone();
                    matmul_add_block(&mut c[ldc + 4..], ldc, a, b, threads);
                    let what = format!("{m}x{k}x{n} transposed {ta}/{tb}, {threads} threads");
                    let (mut got, mut expected) = (Vec::new(), Vec::new());
                    for (i, (v, s)) in c.iter().zip(&start).enumerate() {
                        let (row, col) = (i / ldc, i % ldc);
                        if (1..=m).contains(&row) && (4..4 + n).contains(&col) {
                            got.push(*v);
                            expected.push(s + want[(row - 1) * n + col - 4]);
                        } else {
                            assert_eq!(v.to_bits(), s.to_bits(), "{what}: [{row}, {col}] touched");
                        }
                    }
                    assert_close(&got, &expected, &what);
                    let bits: Vec<u64> = c.iter().map(|v| v.to_bits()).collect();
                    match &first {
                        None => first = Some(bits),
                        Some(f) => assert!(*f == bits, "{what}: bits differ from 1 thread"),
                    }
                }
            }
        }
    }

    #[cfg(feature = "blas")]
    #[test]
    fn openblas_equals_faer_within_1e_12() {
        for (m, k, n) in SHAPES {
            let x = filled(6, m * k);
            let y = filled(7, k * n);
            let (a, b) = (
                Strided::of(view(&x, m, k, false)),
                Strided::of(view(&y, k, n, true)),
            );
            // Into the left `n` columns of a wider output too.
            for ldc in [n, n + 3] {
                let mut blas = vec![0.0; m * ldc];
                let used = crate::core::gemm_blas::dgemm(&mut blas, ldc, a, b);
                let mut faer = vec![0.0; m * ldc];
                faer_gemm::<f64>(&mut faer, ldc, a, b);
                if used {
                    assert_close(&blas, &faer, &format!("{m}x{k}x{n}, rows {ldc} apart"));
                }
            }
        }
    }

    #[cfg(feature = "blas")]
    #[test]
    fn openblas_is_used_unless_its_kernel_is_older_than_the_cpu() {
        // scripts/test runs this with OPENBLAS_CORETYPE set on AVX2
        // machines, where it must reach OpenBLAS.
        let kernel = gemm_kernel();
        let mut c = [0.0];
        let used = crate::core::gemm_blas::dgemm(
            &mut c,
            1,
            Strided::of(MatView::row_major(&[2.0], 1, 1)),
            Strided::of(MatView::row_major(&[3.0], 1, 1)),
        );
        match crate::core::gemm_blas::passed_over() {
            None => {
                assert!(used && c == [6.0], "OpenBLAS not called");
                assert!(kernel.starts_with("OpenBLAS"), "{kernel}");
            }
            Some(why) => {
                assert!(!used && kernel.starts_with("faer"), "{kernel}");
                assert!(why.contains("OPENBLAS_CORETYPE"), "{why}");
                assert!(
                    std::env::var_os("OPENBLAS_CORETYPE").is_none(),
                    "OPENBLAS_CORETYPE is set, yet OpenBLAS was passed over: {why}"
                );
            }
        }
    }
}
