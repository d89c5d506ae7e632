//! Generated arrays are bitwise the same for any chunk shape and thread count.

use std::sync::Arc;

use tenrso_ooc::exec::{ExecOptions, Session};
use tenrso_ooc::ops::{Compare, Fill, Generate, Generator};
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
use tenrso_ooc::{DType, Element, Region};

fn make(
    dir: &std::path::Path,
    name: &str,
    dtype: DType,
    chunks: Vec<u64>,
    fill: Fill,
    threads: usize,
) -> Arc<ZarrArray> {
    let spec = ArraySpec::new(vec![23, 17, 9], chunks, dtype)
        .with_compression(Compression::Zstd { level: 1 });
    let exec = Session::new(
        ExecOptions::default()
            .with_threads(threads)
            .with_memory_limit(64 << 20),
    );
    Generate::new(dir.join(name), spec, fill)
        .with_seed(1234)
        .plan(&exec)
        .unwrap()
        .run()
        .unwrap()
        .array
}

#[test]
fn same_seed_same_bits_across_chunkings_and_threads() {
    let fills = [
        Fill::Zeros,
        Fill::Ones,
        Fill::Range,
        Fill::Uniform,
        Fill::Normal,
        Fill::LowRank {
            rank: 4,
            noise: 0.05,
        },
    ];
    for dtype in [DType::F32, DType::F64] {
        for fill in fills {
            let dir = tempfile::tempdir().unwrap();
            let a = make(dir.path(), "a", dtype, vec![23, 17, 9], fill, 1);
            let b = make(dir.path(), "b", dtype, vec![5, 4, 2], fill, 2);
            let c = make(dir.path(), "c", dtype, vec![8, 17, 3], fill, 3);
            let exec = Session::new(ExecOptions::default());
            for other in [&b, &c] {
                let report = Compare::new(&a, other).plan(&exec).unwrap().run().unwrap();
                assert!(report.is_identical(), "{dtype} {fill}: {report:?}");
            }
        }
    }
}

#[test]
fn different_seeds_differ() {
    let g1 = Generator::new(Fill::Normal, &[100], 1).unwrap();
    let g2 = Generator::new(Fill::Normal, &[100], 2).unwrap();
    let r = Region::full(&[100]);
    assert_ne!(g1.block::<f64>(&r), g2.block::<f64>(&r));
}

fn stored_values<T: Element>(a: &ZarrArray) -> Vec<f64> {
    a.read_region::<T>(&Region::full(a.shape()))
        .unwrap()
        .as_slice()
        .iter()
        .map(|v| v.to_f64())
        .collect()
}

#[test]
fn range_is_the_linear_index_and_ones_are_one() {
    let dir = tempfile::tempdir().unwrap();
    let r = make(dir.path(), "r", DType::F64, vec![4, 4, 4], Fill::Range, 2);
    let values = stored_values::<f64>(&r);
    assert!(values.iter().enumerate().all(|(i, v)| *v == i as f64));
    let o = make(dir.path(), "o", DType::F32, vec![4, 4, 4], Fill::Ones, 2);
    assert!(stored_values::<f32>(&o).iter().all(|v| *v == 1.0));
    assert_eq!(r.attributes()["tenrso_generator"]["fill"], "range");
}

#[test]
fn resume_skips_written_chunks_and_finishes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let full = make(
        dir.path(),
        "full",
        DType::F64,
        vec![5, 5, 5],
        Fill::Normal,
        2,
    );
    let spec = ArraySpec::new(vec![23, 17, 9], vec![5, 5, 5], DType::F64)
        .with_compression(Compression::Zstd { level: 1 });
    let path = dir.path().join("partial");
    // An "interrupted" run: the job's record and only some chunks written.
    let mut partial = ZarrArray::create(&path, &spec).unwrap();
    partial
        .record_job(
            "tenrso_generator",
            serde_json::json!({ "fill": "normal", "seed": 1234 }),
            false,
        )
        .unwrap();
    let g = Generator::new(Fill::Normal, &[23, 17, 9], 1234).unwrap();
    let some: Vec<Vec<u64>> = partial.chunk_grid().iter().step_by(3).collect();
    for c in &some {
        partial
            .write_chunk(c, &g.block::<f64>(&partial.chunk_grid().chunk_region(c)))
            .unwrap();
    }
    // Another job (other seed, other fill) may not resume into it.
    for (fill, seed) in [(Fill::Normal, 1), (Fill::Uniform, 1234)] {
        let session = Session::default();
        let err = Generate::new(&path, spec.clone(), fill)
            .with_seed(seed)
            .with_resume(true)
            .plan(&session)
            .and_then(|p| p.run())
            .unwrap_err();
        assert!(err.to_string().contains("filled by another job"), "{err}");
    }
    let session = Session::default();
    let report = Generate::new(&path, spec.clone(), Fill::Normal)
        .with_seed(1234)
        .with_resume(true)
        .plan(&session)
        .unwrap()
        .run()
        .unwrap();
    let resumed = report.array.clone();
    assert_eq!(report.chunks_skipped, some.len() as u64);
    assert_eq!(
        report.chunks_written + report.chunks_skipped,
        resumed.chunk_grid().num_chunks()
    );
    assert!(
        Compare::new(&full, &resumed)
            .plan(&session)
            .unwrap()
            .run()
            .unwrap()
            .is_identical()
    );
}

#[test]
fn memory_limit_smaller_than_a_chunk_is_refused_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(vec![1024, 1024], vec![1024, 1024], DType::F64);
    let path = dir.path().join("a");
    let exec = Session::new(ExecOptions::default().with_memory_limit(1 << 20));
    let err = Generate::new(&path, spec, Fill::Ones)
        .plan(&exec)
        .and_then(|p| p.run())
        .unwrap_err();
    assert!(
        matches!(err, tenrso_ooc::Error::MemoryLimit { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("8.00 MiB"), "{err}");
    // Refused before any work: not even the array was created.
    assert!(!path.exists());
}
