//! einsum, tensordot and matmul against a straightforward in-memory
//! reference, over random subscripts, shapes, chunkings, limits and thread
//! counts. Tolerances: f64 relative 1e-10 of the sum of absolute terms,
//! f32 1e-4.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use tenrso_ooc::exec::Session;
use tenrso_ooc::ops::{Einsum, Fill, OutputOptions};
use tenrso_ooc::plan::{EinsumSpec, Label, PathStrategy};
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{DType, Error, Shape};

mod common;
use common::{generated, session, values};

/// The output options and path strategy of an einsum request.
#[derive(Debug, Clone, Default)]
struct EinsumOptions {
    output: OutputOptions,
    path: PathStrategy,
}

/// The einsum request of `subscripts` over `inputs`, with `opts`.
fn request(subscripts: &str, inputs: &[Arc<ZarrArray>], opts: &EinsumOptions) -> Einsum {
    let operands: Vec<&Arc<ZarrArray>> = inputs.iter().collect();
    Einsum::new(subscripts, &operands)
        .with_output_options(opts.output.clone())
        .with_path(opts.path)
}

fn make(
    dir: &Path,
    name: &str,
    shape: &[u64],
    chunks: &[u64],
    dtype: DType,
    seed: u64,
) -> Arc<ZarrArray> {
    let spec = ArraySpec::new(shape.to_vec(), chunks.to_vec(), dtype);
    generated(dir, name, spec, Fill::Normal, seed)
}

/// The einsum by its definition: every assignment of the indices, the
/// product of the operands' elements added to the output element. Returns
/// the values and, per output element, the sum of absolute terms (for the
/// tolerance).
fn reference(subscripts: &str, inputs: &[Arc<ZarrArray>]) -> (Vec<f64>, Vec<f64>) {
    let shapes: Vec<&[u64]> = inputs.iter().map(|a| a.shape()).collect();
    let p = EinsumSpec::parse(subscripts)
        .unwrap()
        .bind(&shapes)
        .unwrap();
    let data: Vec<Vec<f64>> = inputs.iter().map(|a| values(a)).collect();
    let labels: Vec<Label> = p.sizes.keys().copied().collect();
    let sizes: Vec<u64> = labels.iter().map(|l| p.sizes[l]).collect();
    let out_shape = p.output_shape();
    let out_len = out_shape.iter().product::<u64>().max(1) as usize;
    let mut out = vec![0.0; out_len];
    let mut mag = vec![0.0; out_len];
    let all = Shape::new(sizes.clone());
    for linear in 0..all.num_elements() {
        let idx = all.unravel(linear);
        let at: BTreeMap<Label, u64> = labels.iter().copied().zip(idx).collect();
        let mut term = 1.0;
        for (k, axes) in p.operands.iter().enumerate() {
            let index: Vec<u64> = axes.iter().map(|l| l.map_or(0, |l| at[&l])).collect();
            term *= data[k][Shape::new(inputs[k].shape().to_vec()).linear_index(&index) as usize];
        }
        let o: Vec<u64> = p.output.iter().map(|l| at[l]).collect();
        let pos = if o.is_empty() {
            0
        } else {
            Shape::new(out_shape.clone()).linear_index(&o) as usize
        };
        out[pos] += term;
        mag[pos] += term.abs();
    }
    (out, mag)
}

/// Runs the einsum and compares with the reference; returns the values.
fn check(
    s: &Session,
    dir: &Path,
    subscripts: &str,
    inputs: &[Arc<ZarrArray>],
    opts: &EinsumOptions,
    tol: f64,
) -> Result<Vec<f64>, Error> {
    let out = dir.join(format!("out-{}", subscripts.replace(['>', ',', '.'], "_")));
    let _ = std::fs::remove_dir_all(&out);
    let report = request(subscripts, inputs, opts)
        .with_out(&out)
        .plan(s)?
        .run()?;
    let got = match report.value {
        Some(v) => vec![v],
        None => values(&ZarrArray::open(&out).unwrap()),
    };
    let (want, mag) = reference(subscripts, inputs);
    assert_eq!(got.len(), want.len(), "{subscripts}");
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol * mag[k].max(1e-300),
            "{subscripts}: element {k}: got {g}, want {w}"
        );
    }
    assert!(report.pool_peak() <= s.memory_limit());
    Ok(got)
}

#[test]
fn fixed_specs_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = session(2, 1 << 20);
    let a = make(d, "a", &[7, 9], &[3, 4], DType::F64, 1);
    let b = make(d, "b", &[9, 5], &[2, 5], DType::F64, 2);
    let sq = make(d, "sq", &[6, 6], &[4, 5], DType::F64, 3);
    let t3 = make(d, "t3", &[5, 9, 4], &[2, 4, 3], DType::F64, 4);
    let m = make(d, "m", &[9, 3], &[4, 3], DType::F64, 5);
    let bt = make(d, "bt", &[3, 5, 9], &[2, 5, 4], DType::F64, 6);
    let bt2 = make(d, "bt2", &[3, 9, 4], &[1, 9, 3], DType::F64, 7);
    let v = make(d, "v", &[9], &[4], DType::F64, 8);
    let c1 = make(d, "c1", &[4, 5, 6], &[3, 5, 2], DType::F64, 9);
    let c2 = make(d, "c2", &[6, 7], &[4, 7], DType::F64, 10);
    let c3 = make(d, "c3", &[7, 5], &[7, 2], DType::F64, 11);
    let o = EinsumOptions::default();
    let cases: Vec<(&str, Vec<Arc<ZarrArray>>)> = vec![
        ("ij,jk->ik", vec![a.clone(), b.clone()]),
        ("ij,jk", vec![a.clone(), b.clone()]),
        ("ij,kj->ik", vec![a.clone(), a.clone()]),
        ("ji,jk->ik", vec![b.clone(), b.clone()]),
        ("ijk,jl->ilk", vec![t3.clone(), m.clone()]),
        ("ijk,jl->il", vec![t3.clone(), m.clone()]),
        // Slices of `x` used where they lie in its chunks (chunks whole
        // along the contracted and trailing kept indices), with batch.
        (
            "ijk,jl->ilk",
            vec![
                make(d, "t3w", &[5, 9, 4], &[2, 9, 4], DType::F64, 19),
                m.clone(),
            ],
        ),
        // The same slices, the output in the unswapped order.
        (
            "ijk,jl->ikl",
            vec![
                make(d, "t3x", &[5, 9, 4], &[2, 9, 4], DType::F64, 22),
                m.clone(),
            ],
        ),
        // Swapped slices with the second operand transposed.
        (
            "ijk,lj->ilk",
            vec![
                make(d, "t3y", &[5, 9, 4], &[3, 9, 4], DType::F64, 23),
                make(d, "mt", &[3, 9], &[3, 9], DType::F64, 24),
            ],
        ),
        (
            "bijk,bjl->bilk",
            vec![
                make(d, "t4", &[3, 4, 5, 6], &[1, 3, 5, 6], DType::F64, 20),
                make(d, "y3", &[3, 5, 2], &[2, 5, 2], DType::F64, 21),
            ],
        ),
        ("bij,bjk->bik", vec![bt.clone(), bt2.clone()]),
        ("bij,bjk->kbi", vec![bt.clone(), bt2.clone()]),
        ("ii->i", vec![sq.clone()]),
        ("ii", vec![sq.clone()]),
        ("ij->ji", vec![a.clone()]),
        ("ijk->", vec![t3.clone()]),
        ("ij,ij->", vec![a.clone(), a.clone()]),
        ("ij,ij->ij", vec![a.clone(), a.clone()]),
        ("i,j->ij", vec![v.clone(), v.clone()]),
        ("ij,j->i", vec![a.clone(), v.clone()]),
        ("abc,cd,db->a", vec![c1.clone(), c2.clone(), c3.clone()]),
        (
            "abc,cd,de,eb->a",
            vec![
                c1.clone(),
                c2.clone(),
                make(d, "c4", &[7, 7], &[3, 7], DType::F64, 12),
                c3.clone(),
            ],
        ),
        ("...ij,...jk->...ik", vec![bt.clone(), bt2.clone()]),
        (
            "...j,jk->...k",
            vec![t3.clone(), make(d, "m4", &[4, 2], &[4, 1], DType::F64, 13)],
        ),
        (
            "iij->j",
            vec![make(d, "d3", &[4, 4, 3], &[3, 2, 3], DType::F64, 14)],
        ),
    ];
    for (spec, ins) in &cases {
        check(&s, d, spec, ins, &o, 1e-10).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
    // Broadcasting a size-1 batch axis, and size-1 lettered axes (as NumPy).
    let one = make(d, "one", &[1, 5, 9], &[1, 2, 2], DType::F64, 15);
    check(&s, d, "...ij,...jk->...ik", &[one, bt2.clone()], &o, 1e-10).unwrap();
    let col = make(d, "col", &[3, 1], &[2, 1], DType::F64, 16);
    let row = make(d, "row", &[1, 5], &[1, 2], DType::F64, 17);
    check(
        &s,
        d,
        "...i,...i->...i",
        &[col.clone(), row.clone()],
        &o,
        1e-10,
    )
    .unwrap();
    check(
        &s,
        d,
        "ij,jk->ik",
        &[make(d, "c21", &[2, 1], &[1, 1], DType::F64, 18), b.clone()],
        &o,
        1e-10,
    )
    .unwrap();
    // A scalar result is also written when an output is named.
    let so = d.join("scalar");
    let r = request("ij,ij->", &[a.clone(), a.clone()], &o)
        .with_out(&so)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    // As a 0-d array (NumPy's shape `()`).
    assert_eq!(ZarrArray::open(&so).unwrap().shape(), &[] as &[u64]);
    assert_eq!(
        values(&ZarrArray::open(&so).unwrap()),
        vec![r.value.unwrap()]
    );
    // Every path strategy gives the same result.
    for path in [
        PathStrategy::Optimal,
        PathStrategy::Greedy,
        PathStrategy::Sequential,
    ] {
        let opts = EinsumOptions {
            path,
            ..Default::default()
        };
        check(
            &s,
            d,
            "abc,cd,db->a",
            &[c1.clone(), c2.clone(), c3.clone()],
            &opts,
            1e-10,
        )
        .unwrap();
    }
}

#[test]
fn f32_matches_within_its_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make(d, "a", &[30, 40], &[7, 16], DType::F32, 1);
    let b = make(d, "b", &[40, 20], &[16, 8], DType::F32, 2);
    check(
        &session(2, 4 << 20),
        d,
        "ij,jk->ik",
        &[a, b],
        &EinsumOptions::default(),
        1e-4,
    )
    .unwrap();
}

#[test]
fn tensordot_and_matmul_follow_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = session(2, 8 << 20);
    let t = make(d, "t", &[5, 6, 7], &[2, 3, 7], DType::F64, 1);
    let u = make(d, "u", &[7, 6, 3], &[7, 2, 3], DType::F64, 2);
    let out = d.join("td");
    Einsum::tensordot(&t, &u, (&[1, 2], &[1, 0]))
        .unwrap()
        .with_out(&out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let got = values(&ZarrArray::open(&out).unwrap());
    let (want, _) = reference("abc,cbd->ad", &[t.clone(), u.clone()]);
    assert_eq!(ZarrArray::open(&out).unwrap().shape(), &[5, 3]);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-10);
    }
    let a = make(d, "a", &[4, 6, 7], &[4, 6, 7], DType::F64, 3);
    let b = make(d, "b", &[7, 2], &[7, 2], DType::F64, 4);
    let out = d.join("mm");
    Einsum::matmul(&a, &b)
        .unwrap()
        .with_out(&out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(ZarrArray::open(&out).unwrap().shape(), &[4, 6, 2]);
    let (want, _) = reference("...ij,jk->...ik", &[a, b]);
    for (g, w) in values(&ZarrArray::open(&out).unwrap()).iter().zip(&want) {
        assert!((g - w).abs() < 1e-10);
    }
}

#[test]
fn results_are_bitwise_equal_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make(d, "a", &[200, 300], &[32, 64], DType::F64, 1);
    let b = make(d, "b", &[300, 150], &[64, 32], DType::F64, 2);
    let c = make(d, "c", &[150, 40], &[32, 40], DType::F64, 3);
    let run = |threads| {
        let out = d.join(format!("out{threads}"));
        Einsum::new("ij,jk,kl->il", [&a, &b, &c])
            .with_out(&out)
            .plan(&session(threads, 2 << 20))
            .unwrap()
            .run()
            .unwrap();
        values(&ZarrArray::open(&out).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

/// A batched product over chunks of `MAP_MIN_BYTES` (loaded ahead, so read
/// in place, mapped from the page cache, all but the edge chunk): bitwise equal to the same
/// product over a compressed copy (copied chunks), and to the definition.
#[test]
fn chunks_read_in_place_multiply_like_copied_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stored = |name: &str, compression| {
        let spec = ArraySpec::new(vec![9, 512, 256], vec![4, 512, 256], DType::F64)
            .with_compression(compression);
        generated(d, name, spec, Fill::Normal, 11)
    };
    let plain = stored("plain", tenrso_ooc::store::Compression::None);
    let packed = stored("packed", tenrso_ooc::store::Compression::Zstd { level: 1 });
    assert!(plain.chunk_nbytes() >= tenrso_ooc::io::MAP_MIN_BYTES);
    assert_eq!(
        plain
            .read_chunk_in_place::<f64>(&[0, 0, 0])
            .unwrap()
            .is_mapped(),
        tenrso_ooc::io::chunk_maps_enabled()
    );
    let m = make(d, "m", &[512, 3], &[512, 3], DType::F64, 12);
    let run = |x: &Arc<ZarrArray>| {
        let out = d.join(format!("out-{}", x.path().display()).replace('/', "_"));
        Einsum::new("ijk,jl->ilk", [x, &m])
            .with_out(&out)
            .plan(&session(2, 64 << 20))
            .unwrap()
            .run()
            .unwrap();
        values(&ZarrArray::open(&out).unwrap())
    };
    let got = run(&plain);
    assert_eq!(got, run(&packed));
    let (x, mv) = (values(&plain), values(&m));
    for i in 0..9 {
        for l in 0..3 {
            for k in 0..256 {
                let (mut want, mut mag) = (0.0, 0.0);
                for j in 0..512 {
                    let term = x[(i * 512 + j) * 256 + k] * mv[j * 3 + l];
                    want += term;
                    mag += f64::abs(term);
                }
                let g = got[(i * 3 + l) * 256 + k];
                assert!(
                    (g - want).abs() <= 1e-10 * mag,
                    "[{i}, {l}, {k}]: {g} against {want}"
                );
            }
        }
    }
}

/// Products large enough that each tile's GEMM is cut into blocks of rows
/// shared by the task's threads (fewer tasks than threads): bitwise equal
/// for 1, 2 and 3 threads, and equal to a plain triple loop, plain and
/// batched, with shapes no tile or block divides.
#[test]
fn large_tiles_are_multiplied_by_several_threads_with_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (subscripts, a_shape, b_shape) in [
        ("ij,jk->ik", vec![4400, 130], vec![130, 800]),
        ("bij,bjk->bik", vec![2, 2060, 70], vec![2, 70, 770]),
    ] {
        let chunks = |s: &[u64]| s.iter().map(|n| n.div_ceil(3)).collect::<Vec<_>>();
        let a = make(d, "a", &a_shape, &chunks(&a_shape), DType::F64, 11);
        let b = make(d, "b", &b_shape, &chunks(&b_shape), DType::F64, 12);
        let (x, y) = (values(&a), values(&b));
        let [m, kk] = a_shape[a_shape.len() - 2..] else {
            unreachable!()
        };
        let n = b_shape[b_shape.len() - 1];
        let (m, kk, n) = (m as usize, kk as usize, n as usize);
        let batches = x.len() / (m * kk);
        let mut want = vec![0.0; batches * m * n];
        let mut mag = vec![0.0; batches * m * n];
        for at in 0..batches {
            for i in 0..m {
                for p in 0..kk {
                    let xv = x[at * m * kk + i * kk + p];
                    for j in 0..n {
                        let term = xv * y[at * kk * n + p * n + j];
                        want[at * m * n + i * n + j] += term;
                        mag[at * m * n + i * n + j] += term.abs();
                    }
                }
            }
        }
        let run = |threads| {
            let out = d.join(format!("out{threads}"));
            let _ = std::fs::remove_dir_all(&out);
            Einsum::new(subscripts, [&a, &b])
                .with_out(&out)
                .plan(&session(threads, 256 << 20))
                .unwrap()
                .run()
                .unwrap();
            values(&ZarrArray::open(&out).unwrap())
        };
        let one = run(1);
        for (k, (g, w)) in one.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * mag[k],
                "{subscripts}: element {k}: {g} vs {w}"
            );
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&one) == bits(&run(2)),
            "{subscripts}: 2 threads differ"
        );
        assert!(
            bits(&one) == bits(&run(3)),
            "{subscripts}: 3 threads differ"
        );
        std::fs::remove_dir_all(d.join("a")).unwrap();
        std::fs::remove_dir_all(d.join("b")).unwrap();
    }
}

/// Plain matrix products whose tiles span several stored chunks, with the
/// operands chunked differently along the contracted index (so chunk pairs
/// share only parts of it), as stored or transposed, and an output tile of
/// several chunk rows: multiplied chunk pair by chunk pair where the chunks
/// lie, equal to the definition, and bitwise equal for 1, 2 and 3 threads
/// (the tile's chunk rows computed side by side).
#[test]
fn tiles_over_several_chunks_multiply_chunk_pair_by_chunk_pair() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = make(d, "x", &[300, 170], &[70, 40], DType::F64, 21);
    let xt = make(d, "xt", &[170, 300], &[45, 64], DType::F64, 22);
    let y = make(d, "y", &[170, 230], &[30, 50], DType::F64, 23);
    let yt = make(d, "yt", &[230, 170], &[60, 25], DType::F64, 24);
    for (subscripts, a, b) in [
        ("ij,jk->ik", &x, &y),
        ("ji,jk->ik", &xt, &y),
        ("ij,kj->ik", &x, &yt),
        ("ji,kj->ki", &xt, &yt),
    ] {
        let run = |threads| {
            let out = d.join(format!("out{threads}"));
            let _ = std::fs::remove_dir_all(&out);
            let s = session(threads, 2 << 20);
            let planned = Einsum::new(subscripts, [a, b])
                .with_out(&out)
                .plan(&s)
                .unwrap();
            let plan = planned.explain().to_json();
            let tiles = &plan["steps"][0]["tiles"];
            let (rows, inner) = (tiles["i"].as_u64().unwrap(), tiles["j"].as_u64().unwrap());
            assert!(
                rows > 70 && inner > 30,
                "{subscripts}: tiles {tiles} within one chunk"
            );
            let report = planned.run().unwrap();
            assert!(report.pool_peak() <= 2 << 20, "{subscripts}");
            values(&ZarrArray::open(&out).unwrap())
        };
        let one = run(1);
        let (want, mag) = reference(subscripts, &[a.clone(), b.clone()]);
        for (k, (g, w)) in one.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * mag[k].max(1e-300),
                "{subscripts}: element {k}: {g} vs {w}"
            );
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for threads in [2, 3] {
            assert!(
                bits(&one) == bits(&run(threads)),
                "{subscripts}: {threads} threads differ"
            );
        }
    }
}

/// Block-sparse operands (fill 0, chunks never written): tile pairs that
/// are both absent are neither read nor multiplied, output tiles made only
/// of them stay unwritten, and the product equals the dense reference.
#[test]
fn products_of_absent_tiles_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sparse = |name: &str, stored: &[[u64; 2]], seed: u64| {
        let dense = make(
            d,
            &format!("{name}-dense"),
            &[256, 256],
            &[64, 64],
            DType::F64,
            seed,
        );
        let spec = ArraySpec::new(vec![256, 256], vec![64, 64], DType::F64);
        let array = ZarrArray::create(d.join(name), &spec).unwrap();
        for c in stored {
            array
                .write_chunk(c, &dense.read_chunk::<f64>(c).unwrap())
                .unwrap();
        }
        (Arc::new(array), dense)
    };
    // A holds block row 0 and block (2, 1); B block column 2 and (1, 0).
    let (a, a_dense) = sparse("a", &[[0, 0], [0, 1], [0, 2], [0, 3], [2, 1]], 1);
    let (b, b_dense) = sparse("b", &[[0, 2], [1, 2], [2, 2], [3, 2], [1, 0]], 2);
    let s = session(2, 512 << 10);
    let run = |x: &Arc<ZarrArray>, y: &Arc<ZarrArray>, name: &str| {
        let out = d.join(name);
        let report = Einsum::new("ij,jk->ik", [x, y])
            .with_out(&out)
            .plan(&s)
            .unwrap()
            .run()
            .unwrap();
        (
            report.steps.last().unwrap().run.bytes_read,
            ZarrArray::open(&out).unwrap(),
        )
    };
    let (read, c) = run(&a, &b, "c");
    let (want, mag) = reference("ij,jk->ik", &[a.clone(), b.clone()]);
    for ((g, w), m) in values(&c).iter().zip(&want).zip(&mag) {
        assert!((g - w).abs() <= 1e-12 * m.max(1.0), "{g} vs {w}");
    }
    // The same product of fully stored operands (same tiles) reads more,
    // and writes every tile.
    let (dense_read, _) = run(&a_dense, &b_dense, "c-dense");
    assert!(read < dense_read, "read {read} of {dense_read}");
    let stored = c.stored_chunks().unwrap();
    assert!(!stored.is_empty() && stored.len() < 16, "{stored:?}");
}

#[test]
fn refuses_before_any_io_when_the_smallest_tiles_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = make(d, "a", &[512, 512], &[512, 512], DType::F64, 1);
    let out = d.join("c");
    let small = session(1, 1 << 20);
    let err = Einsum::new("ij,jk->ik", [&a, &a])
        .with_out(&out)
        .plan(&small)
        .and_then(|p| p.run())
        .unwrap_err();
    match &err {
        Error::MemoryLimit {
            limit, required, ..
        } => assert!(required > limit),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("smallest tiles"), "{err}");
    assert!(!out.exists());
    // Bad subscripts name what is wrong.
    let big = session(1, 64 << 20);
    let e = Einsum::new("ij,jk->iq", [&a, &a])
        .with_out(&out)
        .plan(&big)
        .unwrap_err();
    assert!(e.to_string().contains("`q`"), "{e}");
    let b = make(d, "b", &[3, 4], &[3, 4], DType::F64, 2);
    let e = Einsum::new("ij,jk->ik", [&a, &b])
        .with_out(&out)
        .plan(&big)
        .unwrap_err();
    assert!(e.to_string().contains("index `j`"), "{e}");
}

#[test]
fn thin_chunks_along_the_contracted_index_are_rechunked_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Chunks one element thick along j: thousands of tiny reads per pass,
    // and the output takes several tiles, so each operand is read often.
    let a = make(d, "a", &[256, 1500], &[256, 1], DType::F64, 1);
    let b = make(d, "b", &[1500, 256], &[1, 256], DType::F64, 2);
    let s = session(2, 4 << 20);
    let out = d.join("c");
    let report = Einsum::new("ij,jk->ik", [&a, &b])
        .with_out(&out)
        .plan(&s)
        .unwrap()
        .run()
        .unwrap();
    let operands: Vec<usize> = report.plan.rechunked.iter().map(|r| r.0).collect();
    assert_eq!(operands, vec![0, 1], "{:?}", report.plan.rechunked);
    // The reference by loops (the generic one is too slow at this size).
    let (av, bv) = (values(&a), values(&b));
    let got = values(&ZarrArray::open(&out).unwrap());
    for i in 0..256 {
        for k in 0..256 {
            let (mut want, mut mag) = (0.0, 0.0);
            for j in 0..1500 {
                want += av[i * 1500 + j] * bv[j * 256 + k];
                mag += (av[i * 1500 + j] * bv[j * 256 + k]).abs();
            }
            assert!((got[i * 256 + k] - want).abs() <= 1e-10 * mag);
        }
    }
    // The rechunked copies are gone.
    let spill = s.spill().unwrap().dirs()[0].clone();
    assert_eq!(std::fs::read_dir(spill).unwrap().count(), 0);
}

/// A random einsum: 1–4 operands of up to 5 axes over indices `a`–`f`
/// (repeats allowed), some with `...`, explicit or implicit output.
fn random_einsum() -> impl Strategy<Value = (String, Vec<Vec<u64>>, Vec<Vec<u64>>)> {
    let sizes = prop::collection::vec(1u64..5, 6);
    let broadcast = prop::collection::vec(1u64..4, 0..3);
    let operands = prop::collection::vec(
        (
            prop::collection::vec(0usize..6, 0..4),
            any::<bool>(),
            prop::collection::vec(any::<bool>(), 3),
            prop::collection::vec(1u64..4, 5),
        ),
        1..5,
    );
    (sizes, broadcast, operands, any::<bool>(), any::<u64>()).prop_filter_map(
        "operands need an axis",
        |(sizes, broadcast, operands, implicit, pick)| {
            let letters = ['a', 'b', 'c', 'd', 'e', 'f'];
            let mut terms = Vec::new();
            let mut shapes = Vec::new();
            let mut chunks = Vec::new();
            let any_ellipsis = !broadcast.is_empty() && operands.iter().any(|o| o.1);
            for (labels, ellipsis, stretch, chunk) in &operands {
                let ellipsis = *ellipsis && !broadcast.is_empty();
                let mut term: String = labels.iter().map(|&l| letters[l]).collect();
                let mut shape: Vec<u64> = labels.iter().map(|&l| sizes[l]).collect();
                if ellipsis {
                    // Right-aligned broadcast dimensions; some stretched from 1.
                    let dims: Vec<u64> = broadcast
                        .iter()
                        .zip(stretch)
                        .map(|(&b, &s)| if s { 1 } else { b })
                        .collect();
                    term.insert_str(0, "...");
                    shape.splice(0..0, dims);
                }
                if shape.is_empty() || shape.len() > 5 {
                    return None;
                }
                chunks.push(shape.iter().zip(chunk).map(|(&s, &c)| c.min(s)).collect());
                terms.push(term);
                shapes.push(shape);
            }
            let mut used: Vec<char> = terms
                .iter()
                .flat_map(|t| t.chars().filter(|c| c.is_ascii_alphabetic()))
                .collect();
            used.sort_unstable();
            used.dedup();
            let mut spec = terms.join(",");
            if !implicit {
                let out: String = used
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| pick >> (k % 64) & 1 == 1)
                    .map(|(_, c)| *c)
                    .collect();
                spec = format!("{spec}->{}{out}", if any_ellipsis { "..." } else { "" });
            }
            Some((spec, shapes, chunks))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_einsums_match_the_reference(
        (spec, shapes, chunks) in random_einsum(),
        threads in 1usize..3,
        limit_kib in prop::sample::select(vec![24u64, 96, 256, 4096]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<Arc<ZarrArray>> = shapes
            .iter()
            .zip(&chunks)
            .enumerate()
            .map(|(k, (s, c))| make(dir.path(), &format!("in{k}"), s, c, DType::F64, k as u64))
            .collect();
        let s = session(threads, limit_kib << 10);
        let chunking = EinsumOptions { output: OutputOptions::default(), path: PathStrategy::Auto };
        match check(&s, dir.path(), &spec, &inputs, &chunking, 1e-10) {
            Ok(_) => {}
            // Refused: before any data was read or written.
            Err(Error::MemoryLimit { .. }) => {
                prop_assert_eq!(s.metrics().bytes_read.get(), 0, "{} refused late", spec);
                prop_assert_eq!(s.metrics().bytes_written.get(), 0, "{} refused late", spec);
            }
            Err(e) => prop_assert!(false, "{spec}: {e}"),
        }
    }
}
