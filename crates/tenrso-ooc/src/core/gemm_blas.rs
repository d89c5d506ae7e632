//! The `blas` feature's GEMM: the machine's OpenBLAS (`cblas_dgemm`,
//! `cblas_sgemm`), linked from the system library (Debian's
//! `libopenblas-dev`), always called with one OpenBLAS thread: the engine
//! runs its own threads (see [`super::gemm`]).

use std::ffi::{CStr, c_char, c_int};
use std::sync::Once;

use super::gemm::Strided;

#[link(name = "openblas")]
unsafe extern "C" {
    fn cblas_dgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
    fn cblas_sgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    fn openblas_set_num_threads(threads: c_int);
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

static ONE_THREAD: Once = Once::new();

/// OpenBLAS's kernels that use AVX2 and FMA (or AVX-512).
const VECTOR_KERNELS: [&str; 5] = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"];

/// The kernel OpenBLAS chose for this CPU at load time (e.g. `SkylakeX`).
fn core_name() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(openblas_get_corename()) }
        .to_string_lossy()
        .into_owned()
}

/// OpenBLAS's build and the kernel it picked for this CPU, e.g.
/// `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64`.
fn config() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let config = unsafe { CStr::from_ptr(openblas_get_config()) }.to_string_lossy();
    let core = core_name();
    if config.contains(&core) {
        config.trim().to_string()
    } else {
        format!("{} (kernel {core})", config.trim())
    }
}

/// Why OpenBLAS is not used on this machine, when it is not: an OpenBLAS
/// that does not know the CPU falls back to a generic SSE kernel (Debian's
/// 0.3.21 takes an Emerald Rapids Xeon for a Prescott, 4× slower than
/// faer), so on a CPU with AVX2 and FMA such a kernel is passed over.
pub(crate) fn passed_over() -> Option<String> {
    let core = core_name();
    if !vector_cpu() || VECTOR_KERNELS.contains(&core.to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(format!(
        "{} chose its {core} kernel, made for older CPUs than this one (it does not know it); \
         set OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) to use OpenBLAS",
        config()
    ))
}

/// True on a CPU with AVX2 and FMA.
fn vector_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernel [`matmul_add`](super::matmul_add) runs: OpenBLAS, or faer when
/// OpenBLAS is [`passed_over`].
pub(crate) fn description() -> String {
    match passed_over() {
        None => config(),
        Some(why) => format!("faer 0.24, not OpenBLAS: {why}"),
    }
}

/// True when GEMMs go to OpenBLAS (decided once per process).
fn in_use() -> bool {
    static IN_USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USE.get_or_init(|| passed_over().is_none())
}

/// One matrix operand as CBLAS takes it: transpose flag and leading
/// dimension of its row-major storage.
fn operand<T>(v: &Strided<'_, T>) -> Option<(c_int, c_int)> {
    let flag = if v.transposed { TRANS } else { NO_TRANS };
    Some((flag, c_int::try_from(v.ld.max(1)).ok()?))
}

macro_rules! blas_gemm {
    ($name:ident, $t:ty, $cblas:ident) => {
        /// `c += a · b` (`c` row-major `a.rows × b.cols`, rows `ldc`
        /// elements apart) by OpenBLAS on the calling thread; `false`
        /// (nothing done) when OpenBLAS is [`passed_over`] or a dimension
        /// does not fit CBLAS's 32-bit integers.
        pub(crate) fn $name(
            c: &mut [$t],
            ldc: usize,
            a: Strided<'_, $t>,
            b: Strided<'_, $t>,
        ) -> bool {
            let (Ok(m), Ok(n), Ok(k), Ok(ldc)) = (
                c_int::try_from(a.rows),
                c_int::try_from(b.cols),
                c_int::try_from(a.cols),
                c_int::try_from(ldc.max(1)),
            ) else {
                return false;
            };
            if !in_use() {
                return false;
            }
            let (Some((ta, lda)), Some((tb, ldb))) = (operand(&a), operand(&b)) else {
                return false;
            };
            if m == 0 || n == 0 || k == 0 {
                return true;
            }
            // SAFETY: sets a global thread count; no pointers involved.
            ONE_THREAD.call_once(|| unsafe { openblas_set_num_threads(1) });
            // SAFETY: `Strided` views hold every element their shape and
            // leading dimension address, and `c` holds `m` rows of `n`, `ldc`
            // apart (checked by
            // `matmul_add_block`).
            unsafe {
                $cblas(
                    ROW_MAJOR,
                    ta,
                    tb,
                    m,
                    n,
                    k,
                    1.0,
                    a.data.as_ptr(),
                    lda,
                    b.data.as_ptr(),
                    ldb,
                    1.0,
                    c.as_mut_ptr(),
                    ldc,
                )
            };
            true
        }
    };
}

blas_gemm!(dgemm, f64, cblas_dgemm);
blas_gemm!(sgemm, f32, cblas_sgemm);
