//! Decompositions against in-memory references: MTTKRP for 3-, 4- and 5-way
//! tensors with odd chunkings, CP-ALS sweeps (two passes vs one per mode),
//! planted low-rank recovery, Tucker, reconstruction, thread-count
//! determinism, resume and memory refusals.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use tenrso_ooc::decomp::{
    self, CpInit, CpModel, CpOptions, Matrix, SweepStrategy, TuckerInit, TuckerOptions,
};
use tenrso_ooc::exec::NoProgress;
use tenrso_ooc::ops::{CounterRng, Fill};
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{DType, Error, Shape};

mod common;
use common::{generated, session, values};

fn make(
    dir: &Path,
    name: &str,
    shape: &[u64],
    chunks: &[u64],
    dtype: DType,
    fill: Fill,
) -> Arc<ZarrArray> {
    let spec = ArraySpec::new(shape.to_vec(), chunks.to_vec(), dtype);
    generated(dir, name, spec, fill, 7)
}

fn random_factors(shape: &[u64], rank: usize, seed: u64) -> Vec<Matrix> {
    let rng = CounterRng::new(seed);
    shape
        .iter()
        .enumerate()
        .map(|(m, &i)| {
            let v = (0..i * rank as u64)
                .map(|e| rng.normal(m as u32, e))
                .collect();
            Matrix::from_vec(i as usize, rank, v).unwrap()
        })
        .collect()
}

/// `M[i, r] = Σ_idx X[idx] Π_{m≠mode} F_m[idx_m, r]`, element by element.
fn reference_mttkrp(x: &[f64], shape: &[u64], factors: &[Matrix], mode: usize) -> Matrix {
    let rank = factors[0].cols();
    let s = Shape::new(shape.to_vec());
    let mut out = Matrix::zeros(shape[mode] as usize, rank);
    for (lin, v) in x.iter().enumerate() {
        let idx = s.unravel(lin as u64);
        for r in 0..rank {
            let mut w = *v;
            for (m, f) in factors.iter().enumerate() {
                if m != mode {
                    w *= f.get(idx[m] as usize, r);
                }
            }
            out.as_mut_slice()[idx[mode] as usize * rank + r] += w;
        }
    }
    out
}

fn assert_close(got: &Matrix, want: &Matrix, tol: f64, what: &str) {
    assert_eq!(
        (got.rows(), got.cols()),
        (want.rows(), want.cols()),
        "{what}"
    );
    let scale = want
        .as_slice()
        .iter()
        .map(|v| v.abs())
        .fold(1e-300, f64::max);
    for (k, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}: element {k}: {g} vs {w}"
        );
    }
}

#[test]
fn mttkrp_matches_the_reference_for_3_4_and_5_way_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u64], &[u64]); 5] = [
        (&[7, 9, 5], &[3, 4, 5]),
        (&[11, 6, 13], &[11, 5, 2]),
        (&[5, 6, 4, 7], &[2, 5, 3, 3]),
        (&[4, 3, 5, 2, 6], &[3, 2, 2, 2, 5]),
        (&[3, 4, 2, 5, 3], &[1, 3, 2, 4, 2]),
    ];
    for (k, (shape, chunks)) in cases.iter().enumerate() {
        for dtype in [DType::F64, DType::F32] {
            let x = make(
                dir.path(),
                &format!("x{k}{dtype}.zarr"),
                shape,
                chunks,
                dtype,
                Fill::Normal,
            );
            let data = values(&x);
            let factors = random_factors(shape, 3, k as u64);
            for mode in 0..shape.len() {
                for threads in [1, 2] {
                    let s = session(threads, 8 << 20);
                    let got = decomp::mttkrp(&s, &x, &factors, mode, &NoProgress).unwrap();
                    let want = reference_mttkrp(&data, shape, &factors, mode);
                    assert_close(
                        &got,
                        &want,
                        1e-12,
                        &format!("{shape:?} mode {mode} {dtype}"),
                    );
                }
            }
        }
    }
}

#[test]
fn mttkrp_rejects_bad_factors_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x.zarr",
        &[4, 5, 6],
        &[2, 2, 2],
        DType::F64,
        Fill::Normal,
    );
    let s = session(1, 8 << 20);
    let mut factors = random_factors(&[4, 5, 6], 2, 0);
    assert!(matches!(
        decomp::mttkrp(&s, &x, &factors, 3, &NoProgress),
        Err(Error::InvalidArgument(_))
    ));
    factors[1] = Matrix::zeros(4, 2);
    let err = decomp::mttkrp(&s, &x, &factors, 0, &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("factor 1 is 4×2, expected 5×2"),
        "{err}"
    );
}

fn cp_opts(rank: usize, iters: usize, init: CpInit, sweep: SweepStrategy) -> CpOptions {
    CpOptions::new(rank)
        .with_n_iter_max(iters)
        .with_tol(0.0)
        .with_init(init)
        .with_sweep(sweep)
}

/// One ALS iteration in memory, straight from the definition (MTTKRP by
/// the element-wise reference, normal equations by Gaussian elimination).
fn reference_cp_iteration(x: &[f64], shape: &[u64], factors: &mut [Matrix]) {
    let rank = factors[0].cols();
    for mode in 0..shape.len() {
        let m = reference_mttkrp(x, shape, factors, mode);
        let mut v = Matrix::from_vec(rank, rank, vec![1.0; rank * rank]).unwrap();
        for (k, f) in factors.iter().enumerate() {
            if k != mode {
                v.hadamard_assign(&f.gram());
            }
        }
        // Solve F V = M row by row with V symmetric: V Fᵀ = Mᵀ.
        let mut f = Matrix::zeros(m.rows(), rank);
        for i in 0..m.rows() {
            let mut a = v.as_slice().to_vec();
            let mut b = m.row(i).to_vec();
            for c in 0..rank {
                let p = (c..rank)
                    .max_by(|&p, &q| a[p * rank + c].abs().total_cmp(&a[q * rank + c].abs()))
                    .unwrap();
                for j in 0..rank {
                    a.swap(c * rank + j, p * rank + j);
                }
                b.swap(c, p);
                for r in c + 1..rank {
                    let t = a[r * rank + c] / a[c * rank + c];
                    for j in c..rank {
                        a[r * rank + j] -= t * a[c * rank + j];
                    }
                    b[r] -= t * b[c];
                }
            }
            for c in (0..rank).rev() {
                let s: f64 = (c + 1..rank).map(|j| a[c * rank + j] * b[j]).sum();
                b[c] = (b[c] - s) / a[c * rank + c];
            }
            f.as_mut_slice()[i * rank..(i + 1) * rank].copy_from_slice(&b);
        }
        factors[mode] = f;
    }
}

/// A generated test tensor and its values.
struct Stored {
    shape: &'static [u64],
    chunks: &'static [u64],
    array: Arc<ZarrArray>,
    values: Vec<f64>,
}

/// The 3- and 4-way normal tensors, in chunks that divide nothing, that
/// the CP-ALS tests run on.
fn odd_tensors(dir: &Path) -> Vec<Stored> {
    [
        (&[9u64, 8, 7][..], &[4u64, 3, 7][..]),
        (&[5, 4, 6, 3], &[2, 4, 5, 2]),
    ]
    .into_iter()
    .enumerate()
    .map(|(k, (shape, chunks))| {
        let array = make(
            dir,
            &format!("x{k}.zarr"),
            shape,
            chunks,
            DType::F64,
            Fill::Normal,
        );
        let values = values(&array);
        Stored {
            shape,
            chunks,
            array,
            values,
        }
    })
    .collect()
}

#[test]
fn cp_als_matches_the_in_memory_reference_with_both_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    for (k, stored) in odd_tensors(dir.path()).into_iter().enumerate() {
        let Stored {
            shape,
            chunks,
            array: x,
            values: data,
        } = stored;
        let init = random_factors(shape, 3, 11);
        let mut reference = init.clone();
        for _ in 0..3 {
            reference_cp_iteration(&data, shape, &mut reference);
        }
        let given = CpInit::Given(CpModel {
            weights: vec![1.0; 3],
            factors: init,
        });
        for sweep in [SweepStrategy::TwoPass, SweepStrategy::PerMode] {
            let s = session(2, 8 << 20);
            let report = decomp::cp_als(
                &s,
                &x,
                &cp_opts(3, 3, given.clone(), sweep),
                &mut |_, _| ControlFlow::Continue(()),
                &NoProgress,
            )
            .unwrap();
            assert_eq!(
                report.run.passes_per_iteration,
                if sweep == SweepStrategy::TwoPass {
                    2
                } else {
                    shape.len()
                }
            );
            for (m, (got, want)) in report.model.factors.iter().zip(&reference).enumerate() {
                assert_close(got, want, 1e-9, &format!("{shape:?} {sweep:?} factor {m}"));
            }
            // The fit from Grams and the last MTTKRP equals the fit of the
            // reconstructed model.
            let out = dir.path().join(format!("rec{k}{sweep:?}.zarr"));
            let spec = ArraySpec::new(shape.to_vec(), chunks.to_vec(), DType::F64);
            let rec = decomp::Reconstruct::cp(&report.model, &out, spec.clone())
                .plan(&s)
                .unwrap()
                .run()
                .unwrap();
            let rec = values(&rec);
            let err: f64 = data
                .iter()
                .zip(&rec)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            let norm: f64 = data.iter().map(|a| a * a).sum::<f64>().sqrt();
            let fit = report.fit().unwrap();
            assert!(
                (fit - (1.0 - err / norm)).abs() < 1e-9,
                "fit {fit} vs {}",
                1.0 - err / norm
            );
        }
    }
}

/// `‖X − X̂‖ / ‖X‖` of a CP model, element by element.
fn reference_rec_error(x: &[f64], shape: &[u64], model: &CpModel) -> f64 {
    let s = Shape::new(shape.to_vec());
    let (mut diff, mut norm) = (0.0, 0.0);
    for (lin, v) in x.iter().enumerate() {
        let idx = s.unravel(lin as u64);
        let approx: f64 = (0..model.rank())
            .map(|r| {
                let product: f64 = model
                    .factors
                    .iter()
                    .enumerate()
                    .map(|(m, f)| f.get(idx[m] as usize, r))
                    .product();
                model.weights[r] * product
            })
            .sum();
        diff += (v - approx) * (v - approx);
        norm += v * v;
    }
    (diff / norm).sqrt()
}

#[test]
fn cp_als_reports_the_starting_model_as_iteration_zero() {
    let dir = tempfile::tempdir().unwrap();
    for stored in odd_tensors(dir.path()) {
        let Stored {
            shape,
            array: x,
            values: data,
            ..
        } = stored;
        let start = CpModel {
            weights: vec![1.0, 2.0, 0.5],
            factors: random_factors(shape, 3, 13),
        };
        let want = reference_rec_error(&data, shape, &start);
        for sweep in [SweepStrategy::TwoPass, SweepStrategy::PerMode] {
            let s = session(2, 8 << 20);
            let opts =
                cp_opts(3, 3, CpInit::Given(start.clone()), sweep).with_hold_in_memory(false);
            let plain = decomp::cp_als(
                &s,
                &x,
                &opts,
                &mut |_, _| ControlFlow::Continue(()),
                &NoProgress,
            )
            .unwrap();
            let mut seen = Vec::new();
            let reported = decomp::cp_als(
                &s,
                &x,
                &opts.clone().with_report_initial(true),
                &mut |i, m| {
                    seen.push((i.clone(), m.clone()));
                    ControlFlow::Continue(())
                },
                &NoProgress,
            )
            .unwrap();
            let what = format!("{shape:?} {sweep:?}");
            assert_eq!(seen.len(), 4, "{what}: the start and 3 iterations");
            let (first, model) = &seen[0];
            assert_eq!((first.iteration, first.passes), (0, 1), "{what}");
            // The start as given (its weights folded into the last factor,
            // as TensorLy does) and its error.
            assert_eq!(model.factors[0], start.factors[0], "{what}");
            let seen_error = reference_rec_error(&data, shape, model);
            for got in [first.rec_error, seen_error] {
                assert!((got - want).abs() < 1e-12 * want, "{what}: {got} vs {want}");
            }
            // Nothing else changes: the same iterations, the same model.
            assert_eq!(reported.run.iterations.len(), 3, "{what}");
            for ((got, _), plain) in seen[1..].iter().zip(&plain.run.iterations) {
                assert_eq!(
                    (got.iteration, got.rec_error.to_bits()),
                    (plain.iteration, plain.rec_error.to_bits()),
                    "{what}"
                );
            }
            assert_eq!(reported.model, plain.model, "{what}");
            assert_eq!(&seen[3].1, &plain.model, "{what}: the last model seen");
        }
    }
}

#[test]
fn cp_als_recovers_a_planted_low_rank_tensor_and_is_thread_independent() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x.zarr",
        &[24, 20, 18],
        &[7, 20, 5],
        DType::F64,
        Fill::LowRank {
            rank: 3,
            noise: 0.0,
        },
    );
    let mut runs = Vec::new();
    for threads in [1, 2] {
        let s = session(threads, 4 << 20);
        let opts = CpOptions::new(3).with_n_iter_max(400).with_tol(1e-12);
        let mut seen = 0;
        let report = decomp::cp_als(
            &s,
            &x,
            &opts,
            &mut |_, _| {
                seen += 1;
                ControlFlow::Continue(())
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(seen, report.run.iterations.len());
        assert!(report.fit().unwrap() > 0.9999, "fit {:?}", report.fit());
        runs.push(report.model);
    }
    assert_eq!(runs[0], runs[1], "bitwise equal for 1 and 2 threads");
}

#[test]
fn cp_als_normalized_and_regularised_options_behave() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x.zarr",
        &[12, 10, 8],
        &[5, 5, 5],
        DType::F64,
        Fill::LowRank {
            rank: 2,
            noise: 0.01,
        },
    );
    let s = session(2, 4 << 20);
    let opts = CpOptions::new(2)
        .with_n_iter_max(50)
        .with_normalize_factors(true);
    let report = decomp::cp_als(
        &s,
        &x,
        &opts,
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    for f in &report.model.factors {
        for n in f.column_norms() {
            assert!((n - 1.0).abs() < 1e-12, "unit columns, got {n}");
        }
    }
    assert!(report.fit().unwrap() > 0.98, "fit {:?}", report.fit());
    // Two-pass and per-mode sweeps agree with normalisation too.
    let per_mode = opts.clone().with_sweep(SweepStrategy::PerMode);
    let other = decomp::cp_als(
        &s,
        &x,
        &per_mode,
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert!((other.fit().unwrap() - report.fit().unwrap()).abs() < 1e-10);
    // A strong ridge shrinks the model.
    let ridge = CpOptions::new(2).with_l2_reg(1e6).with_n_iter_max(5);
    let shrunk = decomp::cp_als(
        &s,
        &x,
        &ridge,
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert!(shrunk.fit().unwrap() < report.fit().unwrap());
    for bad in [CpOptions::new(0), CpOptions::new(2).with_l2_reg(-1.0)] {
        assert!(matches!(
            decomp::cp_als(
                &s,
                &x,
                &bad,
                &mut |_, _| ControlFlow::Continue(()),
                &NoProgress
            ),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn resume_continues_to_the_same_factors_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x.zarr",
        &[14, 12, 10],
        &[5, 5, 5],
        DType::F64,
        Fill::LowRank {
            rank: 3,
            noise: 0.05,
        },
    );
    let s = session(2, 4 << 20);
    let full_dir = dir.path().join("full");
    let opts = |n, resume| {
        CpOptions::new(3)
            .with_n_iter_max(n)
            .with_tol(0.0)
            .with_init(CpInit::Random)
            .with_checkpoint(full_dir.clone())
            .with_resume(resume)
    };
    let full = decomp::cp_als(
        &s,
        &x,
        &opts(8, false),
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    let part = decomp::cp_als(
        &s,
        &x,
        &opts(3, false),
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(part.run.iterations.len(), 3);
    let resumed = decomp::cp_als(
        &s,
        &x,
        &opts(8, true),
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(resumed.run.resumed_after, Some(3));
    assert_eq!(resumed.model, full.model);
    assert_eq!(resumed.run.iterations.len(), 8);
    // Other options refuse the checkpoint.
    let other = opts(8, true).with_rank(2);
    let err = decomp::cp_als(
        &s,
        &x,
        &other,
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("other options"), "{err}");
}

#[test]
fn tucker_fits_low_rank_tensors_and_reconstructs() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [16u64, 14, 12, 6];
    let chunks = [5u64, 14, 4, 6];
    let x = make(
        dir.path(),
        "x.zarr",
        &shape,
        &chunks,
        DType::F32,
        Fill::LowRank {
            rank: 2,
            noise: 0.0,
        },
    );
    let data = values(&x);
    let mut fits = Vec::new();
    for threads in [1, 2] {
        let s = session(threads, 4 << 20);
        let opts = TuckerOptions::new(vec![2, 2, 2, 2]).with_n_iter_max(3);
        let report = decomp::tucker(
            &s,
            &x,
            &opts,
            &mut |_, _| ControlFlow::Continue(()),
            &NoProgress,
        )
        .unwrap();
        assert!(report.fit().unwrap() > 0.9999, "fit {:?}", report.fit());
        for f in &report.model.factors {
            let g = f.gram();
            assert_close(&g, &Matrix::identity(2), 1e-10, "orthonormal factors");
        }
        let out = dir.path().join(format!("rec{threads}.zarr"));
        let spec = ArraySpec::new(shape.to_vec(), vec![7, 7, 7, 7], DType::F64);
        let rec = values(
            &decomp::Reconstruct::tucker(&report.model, &out, spec.clone())
                .plan(&s)
                .unwrap()
                .run()
                .unwrap(),
        );
        let err: f64 = data
            .iter()
            .zip(&rec)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = data.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(err / norm < 1e-4, "relative error {}", err / norm);
        fits.push((
            report.model,
            report
                .run
                .iterations
                .iter()
                .map(|i| i.fit)
                .collect::<Vec<_>>(),
        ));
    }
    assert_eq!(fits[0], fits[1], "bitwise equal for 1 and 2 threads");
    let s = session(1, 4 << 20);
    let bad = TuckerOptions::new(vec![2, 2, 20, 2]);
    let err = decomp::tucker(
        &s,
        &x,
        &bad,
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rank 20 of mode 2"), "{err}");
    let random = TuckerOptions::new(vec![2, 2, 2, 2])
        .with_init(TuckerInit::Random)
        .with_n_iter_max(4);
    assert!(
        decomp::tucker(
            &s,
            &x,
            &random,
            &mut |_, _| ControlFlow::Continue(()),
            &NoProgress
        )
        .unwrap()
        .fit()
        .unwrap()
            > 0.9999
    );
}

#[test]
fn randomized_range_finder_spans_the_leading_subspace() {
    // A mode too large for its Gram under the limit uses the sketch.
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x.zarr",
        &[1200, 6, 5],
        &[256, 6, 5],
        DType::F64,
        Fill::LowRank {
            rank: 2,
            noise: 0.0,
        },
    );
    let s = session(2, 4 << 20);
    let (u, _, method) = decomp::leading_mode_vectors(
        &s,
        &x,
        decomp::ModeVectors {
            mode: 0,
            count: 2,
            seed: 0,
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(method, decomp::ModeSvdMethod::Randomized);
    let s_big = session(2, 64 << 20);
    let (exact, sv, method) = decomp::leading_mode_vectors(
        &s_big,
        &x,
        decomp::ModeVectors {
            mode: 0,
            count: 2,
            seed: 0,
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(method, decomp::ModeSvdMethod::Gram);
    // The exact path agrees with an in-memory SVD of the unfolding.
    let unfolding = Matrix::from_vec(1200, 30, values(&x)).unwrap();
    let (direct, dv) = decomp::linalg::leading_left_singular_vectors(&unfolding, 2).unwrap();
    for (a, b) in sv.iter().zip(&dv) {
        assert!((a - b).abs() < 1e-9 * b, "singular values {sv:?} vs {dv:?}");
    }
    assert_close(&exact, &direct, 1e-6, "leading vectors");
    // Same subspace: ‖UᵀV‖_F² = 2.
    let overlap = u.transpose().matmul(&exact).norm();
    assert!((overlap * overlap - 2.0).abs() < 1e-8, "overlap {overlap}");
}

#[test]
fn passes_that_cannot_fit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x.zarr",
        &[64, 64, 64],
        &[64, 64, 64],
        DType::F64,
        Fill::Normal,
    );
    let s = session(1, 1 << 20);
    let factors = random_factors(&[64, 64, 64], 4, 0);
    let err = decomp::mttkrp(&s, &x, &factors, 1, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::MemoryLimit { .. }), "{err}");
    assert_eq!(s.metrics().bytes_read.get(), 0);
}
