//! The GEMM calls of an out-of-core matmul's plan, with its operands held
//! in memory: C = A·B for N × N f64 matrices stored as T × T tiles, each
//! output tile one task (`C_ij += A_ik · B_kj` for every k, one kernel call
//! per tile pair on the task's thread), tasks shared by THREADS workers as
//! the executor shares them. No reading, checksumming or writing: what the
//! store-to-store product would take if its I/O cost nothing (its ceiling
//! with these tiles), to set against one in-memory GEMM of the whole
//! matrices (`gemm_in_memory`). Seconds of the best of `REPEATS` runs.
//!
//! ```text
//! cargo run --release --example gemm_tiles -- 8192 1024 2
//! cargo run --release --features blas --example gemm_tiles -- 8192 1024 2
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tenrso_ooc::ops::CounterRng;
use tenrso_ooc::{MatView, gemm_kernel, matmul_add};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: usize| args.next().and_then(|s| s.parse().ok()).unwrap_or(default);
    let (n, t, threads, repeats) = (arg(8192), arg(1024), arg(2), arg(1));
    assert!(t > 0 && n % t == 0, "the tile must divide the matrix");
    let tiles = n / t;
    let rng = CounterRng::new(1);
    // Tile (i, k) of A is a_tiles[i * tiles + k]; tile (k, j) of B likewise.
    let tile = |stream: u32, index: usize| -> Vec<f64> {
        let base = (index * t * t) as u64;
        (0..t * t)
            .map(|e| rng.uniform(stream, base + e as u64))
            .collect()
    };
    let a_tiles: Vec<Vec<f64>> = (0..tiles * tiles).map(|i| tile(0, i)).collect();
    let b_tiles: Vec<Vec<f64>> = (0..tiles * tiles).map(|i| tile(1, i)).collect();
    let mut best = f64::INFINITY;
    let mut checksum = 0.0;
    for _ in 0..repeats.max(1) {
        let next = AtomicUsize::new(0);
        let start = Instant::now();
        checksum = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    let (next, a_tiles, b_tiles) = (&next, &a_tiles, &b_tiles);
                    scope.spawn(move || {
                        let mut sum = 0.0;
                        loop {
                            let task = next.fetch_add(1, Ordering::Relaxed);
                            if task >= tiles * tiles {
                                return sum;
                            }
                            let (i, j) = (task / tiles, task % tiles);
                            let mut c = vec![0.0; t * t];
                            for k in 0..tiles {
                                matmul_add(
                                    &mut c,
                                    MatView::row_major(&a_tiles[i * tiles + k], t, t),
                                    MatView::row_major(&b_tiles[k * tiles + j], t, t),
                                    1,
                                );
                            }
                            sum += c[0];
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (n as f64).powi(3);
    println!(
        "tiled gemm {n}^3 f64 in {t}^2 tiles, {threads} workers: {best:.2}s  {:.2} GFLOP/s  (sum of c[0]s = {checksum:.3}; {})",
        flops / best / 1e9,
        gemm_kernel()
    );
}
