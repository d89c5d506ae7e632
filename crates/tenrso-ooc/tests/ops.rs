//! Every streaming operation against an in-memory reference, over shapes,
//! chunkings, axes, memory limits and thread counts.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use tenrso_ooc::exec::{ExecOptions, Session};
use tenrso_ooc::ops::{
    Compare, Expr, Fill, Map, OutputOptions, Rechunk, Reduce, ReduceOp, Transpose,
};
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{DType, Shape};

mod common;
use common::{all, generated, session};

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

fn shape_and_chunks(max_ndim: usize) -> impl Strategy<Value = (Vec<u64>, Vec<u64>, Vec<u64>)> {
    prop::collection::vec((1u64..13, 1u64..6, 1u64..6), 1..=max_ndim).prop_map(|d| {
        let shape = d.iter().map(|x| x.0).collect();
        let a = d.iter().map(|x| x.1).collect();
        let b = d.iter().map(|x| x.2).collect();
        (shape, a, b)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn map_matches_memory((shape, ca, cb) in shape_and_chunks(4), threads in 1usize..3) {
        let dir = tempfile::tempdir().unwrap();
        let x = make(dir.path(), "x", &shape, &ca, Fill::Normal, 1);
        let y = make(dir.path(), "y", &shape, &cb, Fill::Uniform, 2);
        let s = session(threads, 64 << 20);
        for text in ["x*2+1", "x*y - y", "sqrt(abs(x)) + clip(y, 0.2, 0.8)", "pow(x, 2) + exp(y) - log(y + 1)"] {
            let e = Expr::parse(text).unwrap();
            let out = dir.path().join(format!("out{}", text.len()));
            Map::new(e.clone(), &x, &out).with_y(&y).with_output_options(OutputOptions::default()).plan(&s).unwrap().run().unwrap();
            let (xv, yv) = (all(&x), all(&y));
            let mut want = vec![0.0; xv.len()];
            e.eval(xv.as_slice(), Some(yv.as_slice()), &mut want);
            let got = all(&ZarrArray::open(&out).unwrap());
            prop_assert_eq!(got.as_slice(), &want[..], "{}", text);
        }
    }

    #[test]
    fn full_reductions_match_memory((shape, ca, _) in shape_and_chunks(4), threads in 1usize..3) {
        let dir = tempfile::tempdir().unwrap();
        let x = make(dir.path(), "x", &shape, &ca, Fill::Normal, 3);
        let v = all(&x);
        let n = v.len() as f64;
        let sum: f64 = v.as_slice().iter().sum();
        let s = session(threads, 64 << 20);
        let got = |op| Reduce::new(op, &x).with_output_options(OutputOptions::default()).plan(&s).unwrap().run().unwrap().value.unwrap();
        let tol = 1e-12 * v.as_slice().iter().map(|a| a.abs()).sum::<f64>().max(1.0);
        prop_assert!((got(ReduceOp::Sum) - sum).abs() <= tol);
        prop_assert!((got(ReduceOp::Mean) - sum / n).abs() <= tol / n);
        let norm = v.as_slice().iter().map(|a| a * a).sum::<f64>().sqrt();
        prop_assert!((got(ReduceOp::Norm) - norm).abs() <= 1e-12 * norm.max(1.0));
        prop_assert_eq!(got(ReduceOp::Min), v.as_slice().iter().copied().fold(f64::INFINITY, f64::min));
        prop_assert_eq!(got(ReduceOp::Max), v.as_slice().iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }

    #[test]
    fn axis_reductions_match_memory((shape, ca, _) in shape_and_chunks(4), mask in 1u32..15, threads in 1usize..3) {
        let ndim = shape.len();
        let axes: Vec<usize> = (0..ndim).filter(|a| mask & (1 << a) != 0).collect();
        prop_assume!(!axes.is_empty() && axes.len() < ndim);
        let dir = tempfile::tempdir().unwrap();
        let x = make(dir.path(), "x", &shape, &ca, Fill::Normal, 4);
        let v = all(&x);
        let kept: Vec<usize> = (0..ndim).filter(|a| !axes.contains(a)).collect();
        let out_shape = Shape::new(kept.iter().map(|a| shape[*a]).collect::<Vec<_>>());
        let s = session(threads, 64 << 20);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Min, ReduceOp::Max, ReduceOp::Norm] {
            let out = dir.path().join(format!("r{op}"));
            Reduce::new(op, &x).with_axes(axes.clone()).with_out(&out).with_output_options(OutputOptions::default()).plan(&s).unwrap().run().unwrap();
            let got = all(&ZarrArray::open(&out).unwrap());
            prop_assert_eq!(got.shape(), out_shape.dims());
            // Reference: group elements by their kept coordinates.
            let mut groups = vec![Vec::new(); out_shape.num_elements() as usize];
            let in_shape = Shape::new(shape.clone());
            for (i, value) in v.as_slice().iter().enumerate() {
                let idx = in_shape.unravel(i as u64);
                let o: Vec<u64> = kept.iter().map(|a| idx[*a]).collect();
                groups[out_shape.linear_index(&o) as usize].push(*value);
            }
            for (g, got) in groups.iter().zip(got.as_slice()) {
                let want = match op {
                    ReduceOp::Sum => g.iter().sum::<f64>(),
                    ReduceOp::Mean => g.iter().sum::<f64>() / g.len() as f64,
                    ReduceOp::Norm => g.iter().map(|a| a * a).sum::<f64>().sqrt(),
                    ReduceOp::Min => g.iter().copied().fold(f64::INFINITY, f64::min),
                    ReduceOp::Max => g.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                };
                prop_assert!((got - want).abs() <= 1e-12 * (1.0 + want.abs()) * g.len() as f64, "{} {} vs {}", op, got, want);
            }
        }
    }

    #[test]
    fn transposes_and_rechunks_match_memory(
        (shape, ca, cb) in shape_and_chunks(4),
        perm_seed in any::<u64>(),
        limit_kib in prop::sample::select(vec![8u64, 32, 1 << 14]),
        threads in 1usize..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let x = make(dir.path(), "x", &shape, &ca, Fill::Range, 0);
        let v = all(&x);
        let ndim = shape.len();
        let mut perm: Vec<usize> = (0..ndim).collect();
        for i in (1..ndim).rev() {
            perm.swap(i, (perm_seed >> (4 * i)) as usize % (i + 1));
        }
        let s = session(threads, limit_kib << 10);
        // Transpose with default chunks, then with other chunks (planned like a rechunk).
        let t1 = dir.path().join("t1");
        let t2 = dir.path().join("t2");
        let r1 = dir.path().join("r1");
        let want = v.permuted(&perm);
        let ok = Transpose::new(&x, perm.clone(), &t1).with_output_options(OutputOptions::default()).plan(&s).and_then(|p| p.run());
        // Tiny limits may refuse a plan; that must happen before anything is written.
        if let Err(e) = &ok {
            prop_assert!(matches!(e, tenrso_ooc::Error::MemoryLimit { .. }), "{}", e);
            prop_assert!(!t1.exists());
            return Ok(());
        }
        prop_assert_eq!(&all(&ZarrArray::open(&t1).unwrap()), &want);
        let opts = OutputOptions::default().with_chunk_shape(cb.clone());
        if Transpose::new(&x, perm.clone(), &t2).with_output_options(opts.clone()).plan(&s).and_then(|p| p.run()).is_ok() {
            prop_assert_eq!(&all(&ZarrArray::open(&t2).unwrap()), &want);
        }
        if Rechunk::new(&x, cb.clone(), &r1).with_compression(opts.compression).with_resume(opts.resume).plan(&s).and_then(|p| p.run()).is_ok() {
            let r = ZarrArray::open(&r1).unwrap();
            prop_assert_eq!(r.chunk_grid().chunk_shape(), &cb[..]);
            prop_assert_eq!(&all(&r), &v);
        }
    }
}

/// Outputs do not depend on the thread count, bit for bit.
#[test]
fn outputs_are_bitwise_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(dir.path(), "x", &[60, 50, 7], &[7, 9, 7], Fill::Normal, 9);
    let mut values = Vec::new();
    for threads in [1, 2, 3] {
        let s = session(threads, 1 << 20);
        let o = OutputOptions::default();
        let sum = Reduce::new(ReduceOp::Sum, &x)
            .with_output_options(o.clone())
            .plan(&s)
            .unwrap()
            .run()
            .unwrap()
            .value
            .unwrap();
        values.push(sum.to_bits());
        let r = dir.path().join(format!("r{threads}"));
        Reduce::new(ReduceOp::Norm, &x)
            .with_axes([0, 2])
            .with_out(&r)
            .with_output_options(o.clone())
            .plan(&s)
            .unwrap()
            .run()
            .unwrap();
        let t = dir.path().join(format!("t{threads}"));
        let ro = OutputOptions::default().with_chunk_shape([50, 60, 1]);
        Transpose::new(&x, [1, 0, 2], &t)
            .with_output_options(ro)
            .plan(&s)
            .unwrap()
            .run()
            .unwrap();
    }
    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
    let s = Session::default();
    for name in ["r", "t"] {
        let a = Arc::new(ZarrArray::open(dir.path().join(format!("{name}1"))).unwrap());
        for threads in [2, 3] {
            let b = Arc::new(ZarrArray::open(dir.path().join(format!("{name}{threads}"))).unwrap());
            assert!(
                Compare::new(&a, &b)
                    .plan(&s)
                    .unwrap()
                    .run()
                    .unwrap()
                    .is_identical(),
                "{name} with {threads} threads"
            );
        }
    }
}

/// Full reductions combine per-chunk partials in a tree of fan-in 64 laid
/// over grid order: chunk counts that are not multiples of the fan-in
/// (65, 4161 = 64² + 65), with chunks never written among them, give the
/// same bits for any thread count, and the in-memory values within
/// rounding.
#[test]
fn tree_reductions_are_bitwise_equal_for_any_thread_count_on_uneven_grids() {
    let dir = tempfile::tempdir().unwrap();
    for rows in [65u64, 4161] {
        let x = make(
            dir.path(),
            &format!("x{rows}"),
            &[rows, 8],
            &[1, 8],
            Fill::Normal,
            rows,
        );
        // The same values with every third chunk never written (fill 0.25).
        let spec = ArraySpec::new(vec![rows, 8], vec![1, 8], DType::F64).with_fill_value(0.25);
        let sparse =
            Arc::new(ZarrArray::create(dir.path().join(format!("s{rows}")), &spec).unwrap());
        let mut reference = all(&x).as_slice().to_vec();
        for r in 0..rows {
            let row = &mut reference[r as usize * 8..(r as usize + 1) * 8];
            if r % 3 == 1 {
                row.fill(0.25);
            } else {
                let block = tenrso_ooc::Block::from_vec(vec![1, 8], row.to_vec()).unwrap();
                sparse.write_chunk(&[r, 0], &block).unwrap();
            }
        }
        for op in [
            ReduceOp::Sum,
            ReduceOp::Mean,
            ReduceOp::Norm,
            ReduceOp::Min,
            ReduceOp::Max,
        ] {
            let n = reference.len() as f64;
            let want = match op {
                ReduceOp::Sum => reference.iter().sum::<f64>(),
                ReduceOp::Mean => reference.iter().sum::<f64>() / n,
                ReduceOp::Norm => reference.iter().map(|v| v * v).sum::<f64>().sqrt(),
                ReduceOp::Min => reference.iter().copied().fold(f64::INFINITY, f64::min),
                ReduceOp::Max => reference.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            };
            let bits: Vec<u64> = [1, 2, 3]
                .into_iter()
                .map(|threads| {
                    let v = Reduce::new(op, &sparse)
                        .plan(&session(threads, 1 << 20))
                        .unwrap()
                        .run()
                        .unwrap()
                        .value
                        .unwrap();
                    assert!(
                        (v - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "{op} {rows}: {v} vs {want}"
                    );
                    v.to_bits()
                })
                .collect();
            assert!(
                bits.windows(2).all(|w| w[0] == w[1]),
                "{op} {rows}: {bits:?}"
            );
        }
    }
}

/// A sharded store lists its shards: shards never written are the fill
/// value, and partly written shards read their missing inner chunks as it.
#[test]
fn sharded_stores_count_absent_shards_as_the_fill() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![64, 8], vec![2, 8], DType::F64)
        .with_shards(vec![8, 8])
        .with_fill_value(-1.0);
    let x = Arc::new(ZarrArray::create(dir.path().join("x"), &spec).unwrap());
    // Shards 1 and 6 of 8 are written; shard 6 only in its first half.
    let ones = tenrso_ooc::Block::filled(vec![8, 8], 2.0f64);
    x.write_chunk(&[1, 0], &ones).unwrap();
    x.write_region(
        &tenrso_ooc::Region::new(vec![48, 0], vec![4, 8]),
        &tenrso_ooc::Block::filled(vec![4, 8], 3.0f64),
    )
    .unwrap();
    assert_eq!(x.stored_chunks().unwrap(), vec![vec![1, 0], vec![6, 0]]);
    let reference: Vec<f64> = all(&x).as_slice().to_vec();
    let want: f64 = reference.iter().sum();
    let s = session(2, 1 << 20);
    let report = Reduce::new(ReduceOp::Sum, &x).plan(&s).unwrap();
    assert_eq!(report.explain().absent_chunks, 6);
    assert_eq!(report.run().unwrap().value, Some(want));
}

/// A transpose whose output chunks cross every input chunk, under a limit
/// far below the array: planned through an intermediate that spills, and
/// still exact.
#[test]
fn transpose_through_a_spilling_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    // 1024 x 1024 f64 = 8 MiB in row chunks; the output's chunks cross all of them.
    let x = make(dir.path(), "x", &[1024, 1024], &[16, 1024], Fill::Normal, 5);
    let s = Session::new(
        ExecOptions::default()
            .with_threads(2)
            .with_memory_limit(4 << 20)
            .with_spill_dirs(vec![tenrso_ooc::memory::SpillDirSpec {
                path: dir.path().to_path_buf(),
                cap: None,
            }]),
    );
    let out = dir.path().join("t");
    let opts = OutputOptions::default().with_chunk_shape([16, 1024]);
    let plan = Transpose::new(&x, [1, 0], &out)
        .with_output_options(opts.clone())
        .plan(&s)
        .unwrap()
        .into_plan();
    assert!(plan.operation.contains("intermediate"), "{plan}");
    assert!(plan.bytes_spilled > 0, "{plan}");
    assert!(!out.exists(), "explain writes nothing");
    let report = Transpose::new(&x, [1, 0], &out)
        .with_output_options(opts)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let run = report.run;
    assert!(run.bytes_spilled > 0, "{run:?}");
    assert!(run.pool_peak <= 4 << 20);
    assert_eq!(
        all(&ZarrArray::open(&out).unwrap()),
        all(&x).permuted(&[1, 0])
    );
    // Bytes moved stay within 3x the array (read + spill + write), as planned.
    assert!(run.bytes_read <= 2 * x.nbytes(), "{run:?}");
    let spill_dirs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("tenrso-spill").then_some(name)
        })
        .collect();
    drop(s);
    for d in spill_dirs {
        assert!(
            !dir.path().join(d).exists(),
            "spill directory removed with the session"
        );
    }
}

/// A plan whose smallest task cannot fit is refused before anything is read
/// or created.
#[test]
fn impossible_plans_are_refused_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(dir.path(), "x", &[512, 512], &[512, 512], Fill::Ones, 0);
    let s = session(2, 1 << 20);
    let before = s.metrics().bytes_read.get();
    let out = dir.path().join("t");
    let err = Transpose::new(&x, [1, 0], &out)
        .with_output_options(OutputOptions::default())
        .plan(&s)
        .and_then(|p| p.run())
        .unwrap_err();
    assert!(
        matches!(err, tenrso_ooc::Error::MemoryLimit { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1.00 MiB is too small"), "{err}");
    assert_eq!(s.metrics().bytes_read.get(), before);
    assert!(!out.exists());
    let sum = Reduce::new(ReduceOp::Sum, &x)
        .with_output_options(OutputOptions::default())
        .plan(&s)
        .and_then(|p| p.run());
    assert!(matches!(sum, Err(tenrso_ooc::Error::MemoryLimit { .. })));
}

/// Spill directories too small for the plan: refused up front, and nothing
/// of the output remains.
#[test]
fn tiny_spill_cap_is_a_typed_error_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let x = make(dir.path(), "x", &[1024, 1024], &[16, 1024], Fill::Normal, 6);
    let s = Session::new(
        ExecOptions::default()
            .with_memory_limit(4 << 20)
            .with_spill_dirs(vec![tenrso_ooc::memory::SpillDirSpec {
                path: dir.path().to_path_buf(),
                cap: Some(1 << 20),
            }]),
    );
    let out = dir.path().join("t");
    let opts = OutputOptions::default().with_chunk_shape([16, 1024]);
    let err = Transpose::new(&x, [1, 0], &out)
        .with_output_options(opts)
        .plan(&s)
        .and_then(|p| p.run())
        .unwrap_err();
    assert!(matches!(err, tenrso_ooc::Error::SpillFull { .. }), "{err}");
    assert!(!out.exists());
}

/// Belady's MIN never misses more than LRU or LFU on the chunk requests of
/// real runs (recorded by the cache), at any cache size.
#[test]
fn min_beats_lru_and_lfu_on_recorded_traces() {
    use tenrso_ooc::memory::{PolicyKind, simulate};
    let dir = tempfile::tempdir().unwrap();
    let x = make(
        dir.path(),
        "x",
        &[96, 80, 12],
        &[16, 16, 12],
        Fill::Normal,
        11,
    );
    let s = Session::new(
        ExecOptions::default()
            .with_threads(2)
            .with_memory_limit(64 << 20)
            .with_trace(true),
    );
    let mut traces = Vec::new();
    let o = OutputOptions::default().with_chunk_shape([12, 7, 96]);
    let t = Transpose::new(&x, [2, 1, 0], dir.path().join("t"))
        .with_output_options(o)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    traces.push(t.run.trace.unwrap());
    let r = Reduce::new(ReduceOp::Sum, &x)
        .with_axes([0])
        .with_out(dir.path().join("r"))
        .with_output_options(OutputOptions::default())
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    traces.push(r.op.run.trace.unwrap());
    for trace in &traces {
        assert!(trace.len() > 20, "recorded {} requests", trace.len());
        for capacity in [1, 2, 4, 8, 16] {
            let min = simulate(PolicyKind::Min.build(trace), trace, capacity);
            let lru = simulate(PolicyKind::Lru.build(trace), trace, capacity);
            let lfu = simulate(PolicyKind::Lfu.build(trace), trace, capacity);
            assert!(
                min.misses <= lru.misses && min.misses <= lfu.misses,
                "capacity {capacity}: min {min:?} lru {lru:?} lfu {lfu:?}"
            );
        }
    }
}
