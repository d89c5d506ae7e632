//! The distributed code paths with ranks as threads ([`LocalRanks`]): every
//! operation that shares its tasks among ranks writes the same files and
//! returns the same bits as one process, for 1 to 4 ranks, and operations
//! that do not share them yet refuse several ranks. (The same under real
//! MPI: the CLI's `tests/mpi.rs`, with `--features mpi`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::ops::ControlFlow;
use tenrso_ooc::DType;

use tenrso_ooc::decomp::{
    CpInit, CpOptions, DecompositionRun, Iteration, Matrix, Reconstruct, SweepStrategy,
    TuckerOptions, cp_als, tucker,
};
use tenrso_ooc::distributed::{LocalRanks, Ranks};
use tenrso_ooc::exec::{ExecOptions, NoProgress, Session};
use tenrso_ooc::ops::{
    Compare, Einsum, Expr, Fill, Generate, Map, Rechunk, Reduce, ReduceOp, Transpose, Verify,
};
use tenrso_ooc::store::ArraySpec;

mod common;
use common::generated;

/// Every file under `dir` with its bytes, by relative path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                found.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// Asserts `size` ranks wrote the files one process wrote, byte for byte.
fn assert_same_files(
    expected: &BTreeMap<PathBuf, Vec<u8>>,
    written: &BTreeMap<PathBuf, Vec<u8>>,
    size: usize,
) {
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{size} ranks"
    );
    for (name, bytes) in expected {
        assert!(
            &written[name] == bytes,
            "{} differs with {size} ranks",
            name.display()
        );
    }
}

/// Runs `job` SPMD on `size` threads, each a rank with its own session
/// (2 threads, a 16 MiB limit); returns each rank's result.
fn spmd<R: Send>(size: usize, job: impl Fn(&Session) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = LocalRanks::group(size)
            .into_iter()
            .map(|ranks| {
                let job = &job;
                s.spawn(move || {
                    let options = ExecOptions::default()
                        .with_threads(2)
                        .with_memory_limit(16 << 20);
                    job(&Session::new(options).with_ranks(Arc::new(ranks)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// What one run of every operation gives: full reductions' bits, verify's
/// counts, and the written stores under `out`.
fn every_operation(session: &Session, inputs: &Path, out: &Path) -> Vec<u64> {
    let open =
        |name: &str| Arc::new(tenrso_ooc::store::ZarrArray::open(inputs.join(name)).unwrap());
    let (x, y, a, b, c) = (open("x"), open("y"), open("a"), open("b"), open("c"));
    let mut bits = Vec::new();
    Map::new(Expr::parse("x*2+sin(y)").unwrap(), &x, out.join("map"))
        .with_y(&y)
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    for op in [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Norm,
        ReduceOp::Min,
        ReduceOp::Max,
    ] {
        let report = Reduce::new(op, &x).plan(session).unwrap().run().unwrap();
        bits.push(report.value.unwrap().to_bits());
    }
    Reduce::new(ReduceOp::Sum, &y)
        .with_axes([0])
        .with_out(out.join("reduce0"))
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    Transpose::new(&x, [1, 0], out.join("transpose"))
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    Rechunk::new(&y, [300, 70], out.join("rechunk"))
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    Einsum::new("ij,jk->ik", [&a, &b])
        .with_out(out.join("matmul"))
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    Einsum::new("ij,jk,kl->il", [&a, &b, &c])
        .with_out(out.join("chain"))
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    let dot = Einsum::new("ij,ij->", [&x, &y])
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    bits.push(dot.value.unwrap().to_bits());
    let spec = ArraySpec::new(vec![333, 250], vec![64, 64], DType::F64);
    let made = Generate::new(out.join("generated"), spec, Fill::Normal)
        .with_seed(9)
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    bits.push(made.chunks_written);
    let verified = Verify::new(&made.array)
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    bits.extend([verified.chunks_stored, verified.bad_chunks.len() as u64]);
    bits
}

#[test]
fn every_operation_is_bitwise_equal_for_one_to_four_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    let spec = |shape: [u64; 2], chunks: [u64; 2]| {
        ArraySpec::new(shape.to_vec(), chunks.to_vec(), DType::F64)
    };
    generated(
        &inputs,
        "x",
        spec([1000, 777], [128, 100]),
        Fill::Uniform,
        3,
    );
    generated(&inputs, "y", spec([1000, 777], [96, 130]), Fill::Normal, 4);
    generated(&inputs, "a", spec([600, 450], [128, 100]), Fill::Uniform, 5);
    generated(&inputs, "b", spec([450, 530], [100, 96]), Fill::Normal, 6);
    generated(&inputs, "c", spec([530, 310], [96, 64]), Fill::Uniform, 7);
    let reference_dir = dir.path().join("one");
    let reference = spmd(1, |s| every_operation(s, &inputs, &reference_dir)).remove(0);
    let expected = files(&reference_dir);
    assert_eq!(reference[7], 24, "chunks generated");
    for size in 2..=4 {
        let out = dir.path().join(format!("ranks{size}"));
        for got in spmd(size, |s| every_operation(s, &inputs, &out)) {
            assert_eq!(got, reference, "{size} ranks");
        }
        assert_same_files(&expected, &files(&out), size);
    }
}

#[test]
fn the_ranks_share_the_tasks_and_gather_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![1000, 777], vec![128, 100], DType::F64);
    let x = generated(dir.path(), "x", spec, Fill::Uniform, 3);
    let runs = spmd(3, |s| {
        let report = Map::new(Expr::parse("x+1").unwrap(), &x, dir.path().join("y"))
            .plan(s)
            .unwrap();
        // Each rank's share of the plan, the same on every rank.
        let shares: Vec<u64> = report.explain().ranks.iter().map(|r| r.tasks).collect();
        let run = report.run().unwrap().run;
        (s.ranks().rank(), shares, run)
    });
    for (rank, shares, run) in &runs {
        assert_eq!(shares, &vec![21, 21, 22], "rank {rank}");
        assert_eq!(run.tasks_run, 64, "totals over the ranks");
        let own: Vec<u64> = run.ranks.iter().map(|r| r.tasks_run).collect();
        assert_eq!(own, vec![21, 21, 22]);
        // Where the time went adds up over the ranks too.
        let sum = |f: fn(&tenrso_ooc::exec::RankRun) -> f64| run.ranks.iter().map(f).sum::<f64>();
        assert_eq!(run.task_seconds, sum(|r| r.task_seconds));
        assert_eq!(run.write_seconds, sum(|r| r.write_seconds));
        assert_eq!(run.read_wait_seconds, sum(|r| r.read_wait_seconds));
        assert!(
            run.ranks.iter().all(|r| r.write_seconds > 0.0),
            "{:?}",
            run.ranks
        );
    }
}

#[test]
fn operations_not_shared_yet_refuse_several_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![40, 30], vec![10, 10], DType::F64);
    let x = generated(dir.path(), "x", spec, Fill::Uniform, 3);
    let errors = spmd(2, |s| {
        Compare::new(&x, &x).plan(s).err().unwrap().to_string()
    });
    for e in errors {
        assert!(e.contains("compare runs in one process"), "{e}");
    }
}

/// The bits of a model's matrices and of each iteration's error.
fn model_bits(factors: &[Matrix], extra: &[f64], run: &DecompositionRun) -> Vec<u64> {
    factors
        .iter()
        .flat_map(|f| f.as_slice().iter())
        .chain(extra)
        .chain(run.iterations.iter().map(|i| &i.rec_error))
        .map(|v| v.to_bits())
        .collect()
}

/// CP-ALS (both sweeps, streamed and held in memory, SVD and random
/// starts), Tucker (HOSVD by exact Gram matrices and by the randomized
/// range finder, then HOOI) and the reconstructions of their models: the
/// same bits on every rank for 1 to 3 ranks as in one process, also when
/// rank 0's callback alone stops the run.
fn decompositions(session: &Session, dir: &Path, out: &Path) -> Vec<Vec<u64>> {
    let open = |name: &str| Arc::new(tenrso_ooc::store::ZarrArray::open(dir.join(name)).unwrap());
    let (x, tall) = (open("x"), open("tall"));
    let mut bits = Vec::new();
    for (k, (init, sweep, hold, normalize)) in [
        (CpInit::Svd, SweepStrategy::TwoPass, false, false),
        (CpInit::Random, SweepStrategy::PerMode, true, true),
        (CpInit::Svd, SweepStrategy::PerMode, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        let opts = CpOptions::new(4)
            .with_n_iter_max(4)
            .with_tol(0.0)
            .with_init(init)
            .with_sweep(sweep)
            .with_hold_in_memory(hold)
            .with_normalize_factors(normalize)
            .with_checkpoint(out.join(format!("cp{k}")));
        let report = cp_als(
            session,
            &x,
            &opts,
            &mut |_, _| ControlFlow::Continue(()),
            &NoProgress,
        )
        .unwrap();
        bits.push(model_bits(
            &report.model.factors,
            &report.model.weights,
            &report.run,
        ));
        Reconstruct::cp(
            &report.model,
            out.join(format!("cp{k}.zarr")),
            ArraySpec::new(x.shape().to_vec(), vec![16, 16, 16], DType::F64),
        )
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    }
    let stopped = cp_als(
        session,
        &x,
        &CpOptions::new(3).with_n_iter_max(5).with_tol(0.0),
        // Rank 0 alone asks to stop: every rank stops.
        &mut |i, _| stop_after(i, if session.ranks().is_root() { 2 } else { 0 }),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(stopped.run.iterations.len(), 2, "rank 0 stopped every rank");
    bits.push(model_bits(
        &stopped.model.factors,
        &stopped.model.weights,
        &stopped.run,
    ));
    for (k, (tensor, ranks, hold)) in [(&x, vec![5, 4, 3], false), (&tall, vec![6, 3, 3], true)]
        .into_iter()
        .enumerate()
    {
        let opts = TuckerOptions::new(ranks)
            .with_n_iter_max(3)
            .with_tol(0.0)
            .with_hold_in_memory(hold)
            .with_checkpoint(out.join(format!("tucker{k}")));
        let report = tucker(
            session,
            tensor,
            &opts,
            &mut |_, _| ControlFlow::Continue(()),
            &NoProgress,
        )
        .unwrap();
        bits.push(model_bits(
            &report.model.factors,
            &report.model.core,
            &report.run,
        ));
        Reconstruct::tucker(
            &report.model,
            out.join(format!("tucker{k}.zarr")),
            ArraySpec::new(tensor.shape().to_vec(), vec![40, 10, 10], DType::F32),
        )
        .plan(session)
        .unwrap()
        .run()
        .unwrap();
    }
    bits
}

/// The files under `dir` but each checkpoint's `state.json` (it holds
/// each iteration's seconds).
fn files_but_timings(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = files(dir);
    found.retain(|p, _| !p.ends_with("state.json"));
    found
}

#[test]
fn decompositions_are_bitwise_equal_for_one_to_three_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    let spec = |shape: [u64; 3], chunks: [u64; 3]| {
        ArraySpec::new(shape.to_vec(), chunks.to_vec(), DType::F64)
    };
    generated(
        &inputs,
        "x",
        spec([60, 50, 40], [16, 16, 16]),
        Fill::LowRank {
            rank: 4,
            noise: 0.1,
        },
        3,
    );
    // Mode 0's Gram matrix (11 MiB) is over a quarter of the 16 MiB limit:
    // its leading vectors come from the randomized range finder.
    generated(
        &inputs,
        "tall",
        spec([1200, 24, 20], [100, 12, 10]),
        Fill::Normal,
        4,
    );
    let reference_dir = dir.path().join("one");
    let reference = spmd(1, |s| decompositions(s, &inputs, &reference_dir)).remove(0);
    let expected = files_but_timings(&reference_dir);
    for size in 2..=3 {
        let out = dir.path().join(format!("ranks{size}"));
        for got in spmd(size, |s| decompositions(s, &inputs, &out)) {
            assert!(got == reference, "{size} ranks: other bits");
        }
        assert_same_files(&expected, &files_but_timings(&out), size);
    }
}

/// Stops a decomposition after iteration `at` (never when `at` is 0).
fn stop_after(iteration: &Iteration, at: usize) -> ControlFlow<()> {
    if iteration.iteration == at {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// A checkpointed decomposition `run(checkpoint, resume, stop_after)` run
/// whole in one process, and stopped after iteration 2 under `first` ranks
/// (as if killed after that checkpoint) then resumed under `then`: every
/// rank of the resumed run ends with the whole run's bits.
fn assert_resumes_bitwise<J>(
    dir: &Path,
    (first, then): (usize, usize),
    run: impl Fn(PathBuf, bool, usize) -> J,
) where
    J: Fn(&Session) -> Vec<u64> + Sync,
{
    let whole = spmd(1, run(dir.join("whole"), false, 0)).remove(0);
    spmd(first, run(dir.join("resumed"), false, 2));
    for got in spmd(then, run(dir.join("resumed"), true, 0)) {
        assert!(
            got == whole,
            "stopped under {first} ranks, resumed under {then}: other bits"
        );
    }
}

#[test]
fn cp_als_resumes_its_checkpoint_with_another_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![60, 50, 40], vec![16, 16, 16], DType::F64);
    let x = generated(dir.path(), "x", spec, Fill::Normal, 5);
    let x = &x;
    assert_resumes_bitwise(dir.path(), (2, 3), |out, resume, at| {
        move |s: &Session| {
            let opts = CpOptions::new(3)
                .with_n_iter_max(5)
                .with_tol(0.0)
                .with_checkpoint(&out)
                .with_resume(resume);
            let report = cp_als(s, x, &opts, &mut |i, _| stop_after(i, at), &NoProgress).unwrap();
            model_bits(&report.model.factors, &report.model.weights, &report.run)
        }
    });
}

#[test]
fn tucker_resumes_its_checkpoint_with_another_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![60, 50, 40], vec![16, 16, 16], DType::F64);
    let x = generated(dir.path(), "x", spec, Fill::Normal, 6);
    let x = &x;
    assert_resumes_bitwise(dir.path(), (3, 2), |out, resume, at| {
        move |s: &Session| {
            let opts = TuckerOptions::new(vec![4, 3, 3])
                .with_n_iter_max(4)
                .with_tol(0.0)
                .with_checkpoint(&out)
                .with_resume(resume);
            let report = tucker(s, x, &opts, &mut |i, _| stop_after(i, at), &NoProgress).unwrap();
            model_bits(&report.model.factors, &report.model.core, &report.run)
        }
    });
}

#[test]
fn a_resumed_run_may_use_another_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![1000, 777], vec![128, 100], DType::F64);
    let x = generated(dir.path(), "x", spec, Fill::Uniform, 3);
    let x = &x;
    let map = |out: PathBuf, resume: bool| {
        move |s: &Session| {
            Map::new(Expr::parse("x*3-1").unwrap(), x, &out)
                .with_output_options(tenrso_ooc::ops::OutputOptions::default().with_resume(resume))
                .plan(s)
                .unwrap()
                .run()
                .unwrap()
                .run
                .tasks_run
        }
    };
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    spmd(1, map(whole.clone(), false));
    spmd(2, map(resumed.clone(), false));
    // An interrupted run: some chunks never written.
    std::fs::remove_dir_all(resumed.join("c/3")).unwrap();
    std::fs::remove_file(resumed.join("c/7/1")).unwrap();
    for tasks_run in spmd(3, map(resumed.clone(), true)) {
        assert_eq!(tasks_run, 9, "the 9 missing chunks, shared by 3 ranks");
    }
    assert_eq!(files(&whole), files(&resumed));
}

/// A chain whose intermediate (11 MiB) is larger than each rank's 8 MiB
/// limit, each rank with its own local directory: every rank writes only
/// its tiles of the intermediate there, fetches the tiles it needs from
/// the others, and the result is bitwise that of one process; nothing is
/// left in any local directory.
#[test]
fn intermediates_stay_on_each_ranks_local_dir_and_are_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    let spec = |shape: [u64; 2]| ArraySpec::new(shape.to_vec(), vec![200, 200], DType::F64);
    for (name, seed) in [("a", 1), ("b", 2), ("c", 3)] {
        generated(&inputs, name, spec([1200, 1200]), Fill::Normal, seed);
    }
    let chain = |session: &Session, out: &Path| {
        let open =
            |name: &str| Arc::new(tenrso_ooc::store::ZarrArray::open(inputs.join(name)).unwrap());
        Einsum::new("ij,jk,kl->il", [open("a"), open("b"), open("c")])
            .with_out(out)
            .plan(session)
            .unwrap()
            .run()
            .unwrap();
        session.metrics().bytes_fetched.get()
    };
    let ranks_run = |size: usize, out: &Path| -> Vec<u64> {
        std::thread::scope(|s| {
            let handles: Vec<_> = LocalRanks::group(size)
                .into_iter()
                .map(|ranks| {
                    let local = dir.path().join(format!("local-{size}-{}", ranks.rank()));
                    s.spawn(move || {
                        let options = ExecOptions::default()
                            .with_threads(1)
                            .with_memory_limit(8 << 20)
                            .with_local_dir(&local);
                        let session = Session::new(options).with_ranks(Arc::new(ranks));
                        let fetched = chain(&session, out);
                        drop(session);
                        let left: Vec<_> = std::fs::read_dir(&local).unwrap().collect();
                        assert!(left.is_empty(), "left in {}: {left:?}", local.display());
                        fetched
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let one = dir.path().join("one");
    assert_eq!(ranks_run(1, &one), vec![0], "one process fetches nothing");
    for size in [2, 3] {
        let out = dir.path().join(format!("ranks{size}"));
        let fetched = ranks_run(size, &out);
        assert!(fetched.iter().sum::<u64>() > 0, "{size} ranks: {fetched:?}");
        assert_eq!(files(&one), files(&out), "{size} ranks");
    }
}

/// A reconstruction interrupted under 2 ranks (chunks missing) resumes
/// under 3 into the same bytes as an uninterrupted run; another model is
/// refused.
#[test]
fn a_reconstruction_resumes_with_another_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let factor = |rows: usize, seed: f64| {
        Matrix::from_vec(
            rows,
            2,
            (0..rows * 2).map(|v| (v as f64 * seed).sin()).collect(),
        )
        .unwrap()
    };
    let model = tenrso_ooc::decomp::CpModel {
        weights: vec![2.0, 0.5],
        factors: vec![factor(90, 0.3), factor(70, 0.7), factor(50, 1.1)],
    };
    let spec = ArraySpec::new(vec![90, 70, 50], vec![32, 32, 16], DType::F64);
    let run = |out: PathBuf, model: tenrso_ooc::decomp::CpModel, resume: bool| {
        let spec = spec.clone();
        move |s: &Session| {
            Reconstruct::cp(&model, &out, spec.clone())
                .with_resume(resume)
                .plan(s)
                .unwrap()
                .run()
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    spmd(1, run(whole.clone(), model.clone(), false))
        .remove(0)
        .unwrap();
    spmd(2, run(resumed.clone(), model.clone(), false))
        .remove(0)
        .unwrap();
    std::fs::remove_dir_all(resumed.join("c/1")).unwrap();
    std::fs::remove_file(resumed.join("c/2/0/3")).unwrap();
    for result in spmd(3, run(resumed.clone(), model.clone(), true)) {
        result.unwrap();
    }
    assert_eq!(files(&whole), files(&resumed));
    let mut other = model.clone();
    other.weights[0] = 3.0;
    let refused = spmd(1, run(resumed.clone(), other, true))
        .remove(0)
        .unwrap_err();
    assert!(refused.contains("another job"), "{refused}");
}
