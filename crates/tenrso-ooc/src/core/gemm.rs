//! [`matmul_add`]: `C += A·B` on row-major blocks through the build's GEMM
//! kernel (faer, or OpenBLAS with the `blas` feature), split by rows over
//! threads.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::core::{DType, Element};

/// A matrix stored in a slice: `rows × cols` in row-major order, or the
/// transpose of a row-major `cols × rows` matrix (so blocks whose axes come
/// in the other order multiply without being copied).
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
}

impl<'a, T> MatView<'a, T> {
    /// `rows × cols` stored row-major in `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// `rows × cols`, the transpose of the row-major `cols × rows` in `data`.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            transposed: true,
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
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!(c.len(), a.rows * b.cols, "output has the wrong length");
    assert!(a.data.len() >= a.rows * a.cols && b.data.len() >= b.rows * b.cols);
    let a = Strided::of(a);
    let b = Strided::of(b);
    let work = a.rows.saturating_mul(a.cols).saturating_mul(b.cols);
    if work < MIN_SPLIT_WORK || a.rows < 2 * PART_ROWS {
        return kernel(c, a, b);
    }
    let rows_per_part = a.rows.div_ceil(a.rows.div_ceil(PART_ROWS));
    let mut shares: Vec<Vec<(usize, &mut [T])>> = (0..threads.max(1)).map(|_| Vec::new()).collect();
    let count = shares.len();
    for (p, part) in c.chunks_mut(rows_per_part * b.cols).enumerate() {
        shares[p % count].push((p * rows_per_part, part));
    }
    let run = move |share: Vec<(usize, &mut [T])>| {
        for (start, part) in share {
            kernel(part, a.rows_range(start, part.len() / b.cols), b);
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
        let ld = if v.transposed { v.rows } else { v.cols };
        Self {
            data: &v.data[..v.rows * v.cols],
            rows: v.rows,
            cols: v.cols,
            ld,
            transposed: v.transposed,
        }
    }

    /// Rows `start .. start + count` of the matrix as used.
    fn rows_range(self, start: usize, count: usize) -> Self {
        let data = if self.transposed {
            // Columns of the stored `cols × rows` matrix.
            &self.data[start..]
        } else {
            &self.data[start * self.ld..(start + count) * self.ld]
        };
        Self {
            data,
            rows: count,
            ..self
        }
    }
}

/// `c += a · b` on the calling thread by the build's kernel.
fn kernel<T: Element>(c: &mut [T], a: Strided<'_, T>, b: Strided<'_, T>) {
    #[cfg(feature = "blas")]
    {
        let done = match T::DTYPE {
            DType::F64 => super::gemm_blas::dgemm(bytemuck::cast_slice_mut(c), cast(a), cast(b)),
            DType::F32 => super::gemm_blas::sgemm(bytemuck::cast_slice_mut(c), cast(a), cast(b)),
        };
        if done {
            return;
        }
    }
    match T::DTYPE {
        DType::F64 => faer_gemm::<f64>(bytemuck::cast_slice_mut(c), cast(a), cast(b)),
        DType::F32 => faer_gemm::<f32>(bytemuck::cast_slice_mut(c), cast(a), cast(b)),
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
    a: Strided<'_, T>,
    b: Strided<'_, T>,
) {
    let (m, n) = (a.rows, b.cols);
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
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
            let mut blas = vec![0.0; m * n];
            let used = crate::core::gemm_blas::dgemm(&mut blas, a, b);
            let mut faer = vec![0.0; m * n];
            faer_gemm::<f64>(&mut faer, a, b);
            if used {
                assert_close(&blas, &faer, &format!("{m}x{k}x{n}"));
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
