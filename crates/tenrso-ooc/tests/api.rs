//! The plan-then-run API: cancellation mid-run and resuming after it,
//! decompositions stopped by their callback, planning that writes nothing,
//! and 0-d scalars written and read back.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tenrso_ooc::decomp::{self, CpInit, CpOptions};
use tenrso_ooc::exec::{CancelToken, ExecOptions, NoProgress, Progress, Session};
use tenrso_ooc::memory::SpillDirSpec;
use tenrso_ooc::ops::{
    Einsum, Expr, Fill, Generate, Import, Map, OutputOptions, Reduce, ReduceOp, Transpose,
};
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{Block, DType, Error};

mod common;
use common::{all, generated, session};

/// A session spilling into `dir` only.
fn spilling_session(threads: usize, limit: u64, dir: &Path) -> Session {
    std::fs::create_dir_all(dir).unwrap();
    Session::new(
        ExecOptions::default()
            .with_threads(threads)
            .with_memory_limit(limit)
            .with_spill_dirs(vec![SpillDirSpec {
                path: dir.to_path_buf(),
                cap: None,
            }]),
    )
}

fn make(
    dir: &Path,
    name: &str,
    shape: &[u64],
    chunks: &[u64],
    fill: Fill,
    seed: u64,
) -> Arc<ZarrArray> {
    let spec = ArraySpec::new(shape.to_vec(), chunks.to_vec(), DType::F64);
    generated(dir, name, spec, fill, seed)
}

fn bits(b: &Block<f64>) -> Vec<u64> {
    b.as_slice().iter().map(|v| v.to_bits()).collect()
}

/// Cancels `token` once `after` units of work were reported (tasks, or
/// chunks for the simpler chunk operations): deterministic, and from a
/// worker thread, not the caller's.
struct CancelAfter {
    token: CancelToken,
    after: u64,
    seen: AtomicU64,
}

impl CancelAfter {
    fn new(token: &CancelToken, after: u64) -> Self {
        Self {
            token: token.clone(),
            after,
            seen: AtomicU64::new(0),
        }
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Progress for CancelAfter {
    fn advance(&self, _delta: u64) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.token.cancel();
        }
    }
}

/// Spill files (`*.spill`) anywhere under `dir`.
fn spill_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(spill_files(&path));
        } else if path.extension().is_some_and(|e| e == "spill") {
            found.push(path);
        }
    }
    found
}

/// Temporary stores (`temp-*`) in the session's spill directories.
fn temp_stores(s: &Session) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in s.spill().unwrap().dirs() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().starts_with("temp-") {
                found.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn cancelled_spilling_transpose_keeps_complete_chunks_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB of f64 in 512 KiB slabs along axis 0; the output's chunks (slabs
    // along the old axis 2) cross every input chunk: planned through a
    // spilled intermediate under a 4 MiB limit.
    let shape = [64u64, 128, 256];
    let x = make(dir.path(), "x", &shape, &[2, 128, 256], Fill::Normal, 21);
    let spill = dir.path().join("spill");
    let s = spilling_session(2, 4 << 20, &spill);
    let perm = [2usize, 1, 0];
    let opts = OutputOptions::default().with_chunk_shape([8, 128, 64]);
    let want = all(&x).permuted(&perm);
    // Cancelled after the first few tasks (in the stage filling the
    // intermediate), and in the second stage once some output chunks are
    // written.
    for late in [false, true] {
        let out = dir.path().join(format!("t-{late}"));
        let planned = Transpose::new(&x, perm, &out)
            .with_output_options(opts.clone())
            .plan(&s)
            .unwrap();
        let plan = planned.explain().clone();
        assert!(plan.operation.contains("intermediate"), "{plan}");
        assert!(plan.bytes_spilled > 0, "{plan}");
        assert!(plan.tasks > 20, "{plan}");
        assert_eq!(plan.stages, 2, "{plan}");
        let after = if late { plan.tasks - 20 } else { 5 };
        let cancel = CancelAfter::new(s.cancel_token(), after);
        let err = planned.run_with(&cancel).unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        assert!(
            cancel.seen() < plan.tasks,
            "stopped early: {} of {} tasks",
            cancel.seen(),
            plan.tasks
        );
        assert_eq!(s.pool().reserved(), 0, "{:?}", s.pool().consumers());
        assert!(spill_files(&spill).is_empty(), "{:?}", spill_files(&spill));
        // The output stays, and every chunk in it is complete and right.
        assert!(out.exists());
        let partial = ZarrArray::open(&out).unwrap();
        let written = partial.stored_chunks().unwrap();
        assert!(
            (written.len() as u64) < partial.chunk_grid().num_chunks(),
            "{} chunks written",
            written.len()
        );
        if late {
            assert!(!written.is_empty());
        }
        for c in &written {
            let got = partial.read_chunk::<f64>(c).unwrap();
            let region = partial.chunk_grid().chunk_region(c);
            assert_eq!(bits(&got), bits(&want.extract(&region)), "chunk {c:?}");
        }
        // While cancelled, every run is refused.
        let again = Transpose::new(&x, perm, &out)
            .with_output_options(opts.clone().with_resume(true))
            .plan(&s)
            .and_then(|p| p.run());
        assert!(matches!(again, Err(Error::Cancelled)));
        // Reset and resume: completes, bitwise equal to the reference.
        s.cancel_token().reset();
        let resumed = Transpose::new(&x, perm, &out)
            .with_output_options(opts.clone().with_resume(true))
            .plan(&s)
            .unwrap();
        assert!(resumed.explain().tasks <= plan.tasks);
        resumed.run().unwrap();
        assert_eq!(bits(&all(&ZarrArray::open(&out).unwrap())), bits(&want));
        assert_eq!(s.pool().reserved(), 0);
        assert!(spill_files(&spill).is_empty());
    }
}

/// Runs `request()` uncancelled, then cancelled after a few tasks of its
/// last step, then resumed; checks the cancelled run's clean-up and that
/// the resumed output equals the uncancelled one bitwise.
fn cancel_and_resume_einsum(dir: &Path, name: &str, request: &dyn Fn() -> Einsum) {
    cancel_and_resume_einsum_under(dir, name, 1 << 20, request);
}

/// [`cancel_and_resume_einsum`] under `limit`.
fn cancel_and_resume_einsum_under(
    dir: &Path,
    name: &str,
    limit: u64,
    request: &dyn Fn() -> Einsum,
) -> tenrso_ooc::ops::EinsumReport {
    let reference_session = spilling_session(2, limit, &dir.join(format!("spill-ref-{name}")));
    let reference_out = dir.join(format!("{name}-ref"));
    let reference = request()
        .with_out(&reference_out)
        .plan(&reference_session)
        .unwrap()
        .run()
        .unwrap();
    let want = all(&ZarrArray::open(&reference_out).unwrap());
    let last = reference.steps.last().unwrap().plan.tasks;
    assert!(last >= 2, "{}", reference.plan);
    let total_tasks: u64 = reference.steps.iter().map(|r| r.plan.tasks).sum();
    let before_last = total_tasks - last;

    let spill = dir.join(format!("spill-{name}"));
    let s = spilling_session(2, limit, &spill);
    let out = dir.join(name);
    let planned = request().with_out(&out).plan(&s).unwrap();
    assert_eq!(planned.explain().path, reference.plan.path);
    // Cancel in the last step, after a few of its tasks.
    let cancel = CancelAfter::new(s.cancel_token(), before_last + if last > 4 { 3 } else { 1 });
    let err = planned.run_with(&cancel).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{name}: {err}");
    assert!(cancel.seen() < total_tasks, "{name}");
    assert_eq!(s.pool().reserved(), 0, "{name}: {:?}", s.pool().consumers());
    assert!(temp_stores(&s).is_empty(), "{name}: {:?}", temp_stores(&s));
    assert!(spill_files(&spill).is_empty(), "{name}");
    // The output's chunks written so far are kept.
    assert!(out.exists(), "{name}");
    // Resume: completes and equals the uncancelled run bitwise.
    s.cancel_token().reset();
    request()
        .with_out(&out)
        .with_output_options(OutputOptions::default().with_resume(true))
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(
        bits(&all(&ZarrArray::open(&out).unwrap())),
        bits(&want),
        "{name}"
    );
    assert!(temp_stores(&s).is_empty(), "{name}");
    assert_eq!(s.pool().reserved(), 0, "{name}");
    reference
}

/// Tiles larger than the stored chunks: a cancelled run leaves some tiles
/// written (each many chunks); resuming must recompute every tile not
/// wholly on disk, not skip tiles whose coordinates match a stored chunk's.
#[test]
fn resumed_matmul_with_tiles_of_many_chunks_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make(d, "a", &[1024, 512], &[64, 64], Fill::Normal, 1);
    let b = make(d, "b", &[512, 1024], &[64, 64], Fill::Normal, 2);
    let request = || {
        Einsum::matmul(&a, &b)
            .unwrap()
            .with_output_options(OutputOptions::default().with_chunk_shape([64, 64]))
    };
    let report = cancel_and_resume_einsum_under(d, "big-tiles", 8 << 20, &request);
    let step = &report.plan.path.steps.last().unwrap().step;
    let tile_elements: u64 = step.output_tile().iter().product();
    assert!(
        tile_elements > 64 * 64,
        "the test needs tiles of several chunks: {step}"
    );
}

/// Without resume, an existing output is refused when planning — before
/// any work — and it is left as it was.
#[test]
fn existing_outputs_are_refused_when_planning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = session(2, 64 << 20);
    let x = make(d, "x", &[64, 32], &[16, 16], Fill::Normal, 1);
    let taken = d.join("taken");
    Transpose::new(&x, [1, 0], &taken)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let before = bits(&all(&ZarrArray::open(&taken).unwrap()));
    let refused = |r: tenrso_ooc::Result<()>| matches!(r, Err(Error::AlreadyExists { .. }));
    assert!(refused(
        Transpose::new(&x, [1, 0], &taken).plan(&s).map(|_| ())
    ));
    assert!(refused(
        Map::new(Expr::parse("x+1").unwrap(), &x, &taken)
            .plan(&s)
            .map(|_| ())
    ));
    assert!(refused(
        Einsum::new("ij->ji", [&x])
            .with_out(&taken)
            .plan(&s)
            .map(|_| ())
    ));
    let scalar = d.join("scalar");
    Reduce::new(ReduceOp::Sum, &x)
        .with_out(&scalar)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    assert!(refused(
        Reduce::new(ReduceOp::Sum, &x)
            .with_out(&scalar)
            .plan(&s)
            .map(|_| ())
    ));
    assert!(refused(
        Einsum::new("ij,ij->", [&x, &x])
            .with_out(&scalar)
            .plan(&s)
            .map(|_| ())
    ));
    assert_eq!(bits(&all(&ZarrArray::open(&taken).unwrap())), before);
    // With resume, a finished scalar of the same job is recomputed in place.
    let value = Reduce::new(ReduceOp::Sum, &x)
        .with_out(&scalar)
        .with_output_options(OutputOptions::default().with_resume(true))
        .plan(&s)
        .unwrap()
        .run()
        .unwrap()
        .value
        .unwrap();
    let stored = ZarrArray::open(&scalar)
        .unwrap()
        .read_chunk::<f64>(&[])
        .unwrap();
    assert_eq!(stored.as_slice(), &[value]);
}

/// Resuming refuses an output another job wrote: another operation, or the
/// same operation over an input rewritten in place since.
#[test]
fn resume_refuses_outputs_of_another_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = session(2, 64 << 20);
    let x = make(d, "x", &[64, 32], &[16, 16], Fill::Normal, 1);
    let out = d.join("out");
    Map::new(Expr::parse("x*2").unwrap(), &x, &out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let resume = OutputOptions::default().with_resume(true);
    let other = Map::new(Expr::parse("x*3").unwrap(), &x, &out).with_output_options(resume.clone());
    assert!(matches!(other.plan(&s), Err(Error::InvalidArgument(_))));
    // The same map resumes (nothing left to do)...
    let same = Map::new(Expr::parse("x*2").unwrap(), &x, &out).with_output_options(resume.clone());
    assert_eq!(same.plan(&s).unwrap().explain().tasks, 0);
    // ...until its input is regenerated with another seed.
    std::fs::remove_dir_all(d.join("x")).unwrap();
    let x = make(d, "x", &[64, 32], &[16, 16], Fill::Normal, 2);
    let again = Map::new(Expr::parse("x*2").unwrap(), &x, &out).with_output_options(resume);
    assert!(matches!(again.plan(&s), Err(Error::InvalidArgument(_))));
}

#[test]
fn cancelled_matmul_leaves_no_temporaries_and_resumes_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The 2 MiB product takes many tiles under a 1 MiB limit.
    let a = make(d, "a", &[512, 256], &[64, 64], Fill::Normal, 1);
    let b = make(d, "b", &[256, 512], &[64, 64], Fill::Normal, 2);
    cancel_and_resume_einsum(d, "matmul", &|| Einsum::matmul(&a, &b).unwrap());
}

/// Resuming a cancelled chain: its last step's output records its inputs,
/// one of which is the first step's temporary store.
#[test]
fn cancelled_einsum_chain_leaves_no_temporaries_and_resumes_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make(d, "a", &[512, 256], &[64, 64], Fill::Normal, 1);
    let b = make(d, "b", &[256, 512], &[64, 64], Fill::Normal, 2);
    let c = make(d, "c", &[512, 256], &[64, 64], Fill::Normal, 3);
    // Its first step's result is a temporary store in the spill directory
    // while the last step runs.
    cancel_and_resume_einsum(d, "chain", &|| {
        Einsum::new("ij,jk,kl->il", [&a, &b, &c])
            .with_path(tenrso_ooc::plan::PathStrategy::Sequential)
    });
}

fn cp_options(iters: usize, checkpoint: Option<PathBuf>, resume: bool) -> CpOptions {
    let mut opts = CpOptions::new(3)
        .with_n_iter_max(iters)
        .with_tol(0.0)
        .with_init(CpInit::Random)
        .with_resume(resume);
    opts.checkpoint = checkpoint;
    opts
}

fn low_rank(dir: &Path) -> Arc<ZarrArray> {
    make(
        dir,
        "x.zarr",
        &[14, 12, 10],
        &[5, 5, 5],
        Fill::LowRank {
            rank: 3,
            noise: 0.05,
        },
        3,
    )
}

#[test]
fn cancelled_cp_als_resumes_from_its_checkpoint_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let x = low_rank(dir.path());
    let s = session(2, 4 << 20);
    let full = decomp::cp_als(
        &s,
        &x,
        &cp_options(6, Some(dir.path().join("full")), false),
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(full.run.iterations.len(), 6);

    let ckpt = dir.path().join("ckpt");
    let token = s.cancel_token().clone();
    let mut seen = 0;
    let err = decomp::cp_als(
        &s,
        &x,
        &cp_options(6, Some(ckpt.clone()), false),
        &mut |it, _| {
            seen += 1;
            if it.iteration == 2 {
                token.cancel();
            }
            ControlFlow::Continue(())
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(seen, 2);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join("checkpoint").join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["iteration"], 2, "{state}");
    assert_eq!(s.pool().reserved(), 0);

    s.cancel_token().reset();
    let resumed = decomp::cp_als(
        &s,
        &x,
        &cp_options(6, Some(ckpt), true),
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(resumed.run.resumed_after, Some(2));
    assert_eq!(resumed.run.iterations.len(), 6);
    assert_eq!(resumed.model, full.model, "bitwise the same factors");
    for (g, w) in resumed.model.factors.iter().zip(&full.model.factors) {
        let g: Vec<u64> = g.as_slice().iter().map(|v| v.to_bits()).collect();
        let w: Vec<u64> = w.as_slice().iter().map(|v| v.to_bits()).collect();
        assert_eq!(g, w);
    }
}

#[test]
fn cp_als_callback_break_stops_with_a_valid_model() {
    let dir = tempfile::tempdir().unwrap();
    let x = low_rank(dir.path());
    let s = session(2, 4 << 20);
    let full = decomp::cp_als(
        &s,
        &x,
        &cp_options(6, None, false),
        &mut |_, _| ControlFlow::Continue(()),
        &NoProgress,
    )
    .unwrap();
    assert!(!full.run.stopped_early);
    let stopped = decomp::cp_als(
        &s,
        &x,
        &cp_options(6, None, false),
        &mut |it, _| {
            if it.iteration == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(stopped.run.iterations.len(), 3);
    assert!(stopped.run.stopped_early);
    assert!(!stopped.run.converged);
    assert_eq!(stopped.model.rank(), 3);
    for f in &stopped.model.factors {
        assert!(f.as_slice().iter().all(|v| v.is_finite()));
    }
    assert!(stopped.model.weights.iter().all(|w| w.is_finite()));
    assert_eq!(stopped.fit(), Some(full.run.iterations[2].fit));
    // The iterations it ran are those of the uninterrupted run.
    for (g, w) in stopped.run.iterations.iter().zip(&full.run.iterations) {
        assert_eq!(
            (g.iteration, g.fit, g.rec_error),
            (w.iteration, w.fit, w.rec_error)
        );
    }
}

fn names(display: &str, what: &str) -> bool {
    display.to_lowercase().contains(what)
}

#[test]
fn planning_writes_nothing_and_explains_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = session(2, 64 << 20);
    let x = make(d, "x", &[40, 30], &[16, 16], Fill::Normal, 1);
    let y = make(d, "y", &[30, 20], &[16, 16], Fill::Normal, 2);

    // Transpose.
    let out = d.join("t");
    let planned = Transpose::new(&x, [1, 0], &out).plan(&s).unwrap();
    assert!(!out.exists());
    let text = planned.to_string();
    assert!(!text.is_empty() && names(&text, "transpose"), "{text}");
    let plan = planned.explain().clone();
    let report = planned.run().unwrap();
    assert_eq!(report.plan, plan);
    assert_eq!(report.run.plan, plan);
    assert_eq!(report.run.bytes_written, plan.bytes_written);

    // Map.
    let out = d.join("m");
    let planned = Map::new(Expr::parse("x*2").unwrap(), &x, &out)
        .plan(&s)
        .unwrap();
    assert!(!out.exists());
    let text = planned.to_string();
    assert!(!text.is_empty() && names(&text, "map"), "{text}");
    let plan = planned.explain().clone();
    let report = planned.run().unwrap();
    assert_eq!(report.plan, plan);
    assert_eq!(report.plan.bytes_written, 40 * 30 * 8);

    // Reduce to an array.
    let out = d.join("r");
    let planned = Reduce::new(ReduceOp::Sum, &x)
        .with_axes([0])
        .with_out(&out)
        .plan(&s)
        .unwrap();
    assert!(!out.exists());
    let text = planned.to_string();
    assert!(
        !text.is_empty() && (names(&text, "reduce") || names(&text, "sum")),
        "{text}"
    );
    let plan = planned.explain().clone();
    let report = planned.run().unwrap();
    assert_eq!(report.op.plan, plan);
    assert_eq!(report.value, None);
    assert_eq!(ZarrArray::open(&out).unwrap().shape(), &[30]);

    // Einsum.
    let out = d.join("e");
    let planned = Einsum::new("ij,jk->ik", [&x, &y])
        .with_out(&out)
        .plan(&s)
        .unwrap();
    assert!(!out.exists());
    let text = planned.to_string();
    assert!(
        !text.is_empty() && (names(&text, "einsum") || text.contains("ij,jk->ik")),
        "{text}"
    );
    let plan = planned.explain().clone();
    let report = planned.run().unwrap();
    assert_eq!(report.plan.subscripts, plan.subscripts);
    assert_eq!(report.plan.path, plan.path);
    assert_eq!(report.plan.rechunked, plan.rechunked);
    assert_eq!(report.plan.output_shape, plan.output_shape);
    assert_eq!(report.plan.output_shape, vec![40, 20]);
    assert_eq!(report.plan.memory_limit, plan.memory_limit);
    assert_eq!(report.plan.flops(), plan.flops());

    // Generate.
    let out = d.join("g");
    let spec = ArraySpec::new(vec![20, 10], vec![8, 8], DType::F32);
    let planned = Generate::new(&out, spec, Fill::Uniform)
        .with_seed(4)
        .plan(&s)
        .unwrap();
    assert!(!out.exists());
    let text = planned.to_string();
    assert!(!text.is_empty() && names(&text, "generate"), "{text}");
    let plan = planned.explain().clone();
    assert_eq!(plan.tasks, 6);
    let report = planned.run().unwrap();
    assert_eq!(report.chunks_written, plan.tasks);
    assert_eq!(report.chunks_skipped, 0);
    assert_eq!(report.bytes_written, plan.bytes_written);
    assert_eq!(report.array.shape(), &[20, 10]);

    // Import (of a raw file written here).
    let raw = d.join("x.f64");
    let bytes: Vec<u8> = all(&x)
        .as_slice()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&raw, bytes).unwrap();
    let out = d.join("i");
    let planned = Import::new(&raw, &out)
        .with_options(
            tenrso_ooc::ops::ImportOptions::default()
                .with_raw([40, 30], DType::F64)
                .with_chunk_shape([16, 16]),
        )
        .plan(&s)
        .unwrap();
    assert!(!out.exists());
    let text = planned.to_string();
    assert!(!text.is_empty() && names(&text, "import"), "{text}");
    let plan = planned.explain().clone();
    let report = planned.run().unwrap();
    assert_eq!(report.chunks, plan.tasks);
    assert_eq!(report.bytes, plan.bytes_written);
    assert_eq!(report.shape, vec![40, 30]);
    assert_eq!(bits(&all(&ZarrArray::open(&out).unwrap())), bits(&all(&x)));
}

#[test]
fn scalars_are_0d_arrays_and_0d_arrays_are_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = session(2, 64 << 20);
    let x = make(d, "x", &[9, 7], &[4, 4], Fill::Normal, 5);

    // A scalar einsum with an output path writes a 0-d array.
    let out = d.join("dot");
    let report = Einsum::new("ij,ij->", [&x, &x])
        .with_out(&out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let value = report.value.unwrap();
    let dot = Arc::new(ZarrArray::open(&out).unwrap());
    assert_eq!(dot.shape(), &[] as &[u64]);
    let stored = dot.read_chunk::<f64>(&[]).unwrap();
    assert_eq!(stored.as_slice().len(), 1);
    assert_eq!(stored.as_slice()[0].to_bits(), value.to_bits());

    // A full reduction with an output path writes a 0-d array too.
    let out = d.join("sum");
    let report = Reduce::new(ReduceOp::Sum, &x)
        .with_out(&out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let value = report.value.unwrap();
    let sum = Arc::new(ZarrArray::open(&out).unwrap());
    assert_eq!(sum.shape(), &[] as &[u64]);
    let stored = sum.read_chunk::<f64>(&[]).unwrap();
    assert_eq!(stored.as_slice(), &[value]);
    let want: f64 = all(&x).as_slice().iter().sum();
    assert!((value - want).abs() <= 1e-12 * want.abs().max(1.0));

    // 0-d arrays as inputs: a reduction over one is its value.
    for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Mean] {
        let again = Reduce::new(op, &sum).plan(&s).unwrap().run().unwrap();
        assert_eq!(again.value, Some(value), "{op}");
    }
    // A 0-d operand of an einsum scales the other.
    let out = d.join("scaled");
    Einsum::new("ij,->ij", [&x, &dot])
        .with_out(&out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let scaled = all(&ZarrArray::open(&out).unwrap());
    let dot_value = dot.read_chunk::<f64>(&[]).unwrap().as_slice()[0];
    for (g, v) in scaled.as_slice().iter().zip(all(&x).as_slice()) {
        assert!(
            (g - v * dot_value).abs() <= 1e-12 * (v * dot_value).abs(),
            "{g} vs {}",
            v * dot_value
        );
    }
}
