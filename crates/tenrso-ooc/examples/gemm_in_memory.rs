//! The in-memory GEMM our out-of-core contractions are measured against:
//! the build's kernel (faer, or OpenBLAS with `--features blas`; the one
//! the tiles use) on two N x N f64 matrices held in memory, with the given
//! threads, best of `REPEATS` runs (default 1).
//!
//! ```text
//! cargo run --release --example gemm_in_memory -- 16384 2
//! cargo run --release --features blas --example gemm_in_memory -- 16384 2
//! ```

use std::time::Instant;

use tenrso_ooc::ops::CounterRng;
use tenrso_ooc::{MatView, gemm_kernel, matmul_add};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4096);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let rng = CounterRng::new(1);
    let a: Vec<f64> = (0..n * n).map(|i| rng.uniform(0, i as u64)).collect();
    let b: Vec<f64> = (0..n * n).map(|i| rng.uniform(1, i as u64)).collect();
    let mut c = vec![0.0; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        c.fill(0.0);
        let t = Instant::now();
        matmul_add(
            &mut c,
            MatView::row_major(&a, n, n),
            MatView::row_major(&b, n, n),
            threads,
        );
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (n as f64).powi(3);
    println!(
        "in-memory gemm {n}^3 f64, {threads} threads: {best:.2}s  {:.2} GFLOP/s  (c[0] = {:.3}; {})",
        flops / best / 1e9,
        c[0],
        gemm_kernel()
    );
}
