//! Dask-sized chunks: a 1 GiB store in 128 MiB chunks (plain, and zstd as
//! zarr-python writes by default) under a 256 MiB limit. A reduction reads
//! each chunk a slab at a time, a map and a transpose stream their input a
//! slab of rows at a time into the output chunk, einsum rechunks first and
//! CP-ALS streams its passes, all within the limit + 64 MiB; under a
//! limit too small for one chunk beside its slabs, the map is refused
//! before it reads anything, with the numbers.

mod common;

use common::{arg, run};
use tenrso_ooc::store::ZarrArray;

const MIB: u64 = 1 << 20;
const LIMIT: &str = "256MiB";
const BOUND: u64 = 256 * MIB + 64 * MIB;

/// Runs `args` under the 256 MiB limit, checks that it succeeds within the
/// limit + 64 MiB, and returns the run.
fn within_limit(codec: &str, args: &[&str]) -> common::Run {
    let mut all = args.to_vec();
    all.extend(["--memory-limit", LIMIT, "-q"]);
    let r = run(all).success();
    eprintln!("{codec}: {} peak {} MiB", args[0], r.peak_rss / MIB);
    assert!(
        r.peak_rss <= BOUND,
        "{codec}: {} peak {} MiB",
        args[0],
        r.peak_rss / MIB
    );
    r
}

#[test]
fn chunks_of_128_mib_stream_under_a_256_mib_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut sums = Vec::new();
    let mut maps = Vec::new();
    let mut transposes = Vec::new();
    let mut column_sums = Vec::new();
    let mut fits = Vec::new();
    for codec in ["none", "zstd:1"] {
        let x = arg(dir.path(), &format!("x-{codec}.zarr"));
        // 8192 x 16384 f64 = 1 GiB in 1024-row chunks of 128 MiB.
        run([
            "create",
            &x,
            "--shape",
            "8192,16384",
            "--chunks",
            "1024,16384",
            "--fill",
            "uniform",
            "--seed",
            "5",
            "--codec",
            codec,
            "--memory-limit",
            "1GiB",
            "-q",
        ])
        .success();
        let out = |name: &str| arg(dir.path(), &format!("{name}-{codec}.zarr"));

        // map and transpose stream x a slab of rows at a time into each
        // output chunk: one chunk held, not two.
        let (m, t) = (out("m"), out("t"));
        within_limit(codec, &["map", "x*2+1", &x, "--out", &m]);
        maps.push((x.clone(), m));
        within_limit(codec, &["transpose", &x, "--axes", "1,0", "--out", &t]);
        transposes.push((x.clone(), t));
        // einsum rechunks x first (no tile could hold a 128 MiB chunk).
        let e = out("e");
        within_limit(codec, &["einsum", "ij->j", &x, "--out", &e]);
        column_sums.push((x.clone(), e));
        // CP-ALS streams the chunks through its MTTKRP passes.
        let cp_dir = out("cp");
        let cp = within_limit(
            codec,
            &[
                "cp", &x, "--rank", "4", "--iters", "1", "--init", "random", "-o", &cp_dir,
                "--json",
            ],
        );
        fits.push(cp.json()["fit"].as_f64().unwrap());
        // A sum holds no chunk at all: slab by slab.
        let sum = within_limit(codec, &["reduce", "sum", &x, "--json"]);
        sums.push((codec, x.clone(), sum.json()["value"].as_f64().unwrap()));

        // Under 128 MiB an output chunk and a slab cannot fit: refused
        // before reading, with the numbers, in a small process.
        let refused = out("refused");
        let r = run([
            "map",
            "x*2+1",
            &x,
            "--out",
            &refused,
            "--memory-limit",
            "128MiB",
            "-q",
        ]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(
            r.stderr.contains("memory limit 128.00 MiB is too small")
                && r.stderr.contains("needs at least"),
            "{}",
            r.stderr
        );
        assert!(
            r.peak_rss < 64 * MIB,
            "refusal peak {} MiB",
            r.peak_rss / MIB
        );
        assert!(!std::path::Path::new(&refused).exists());
    }
    // Checked last: a child's peak RSS starts at its parent's resident size
    // when forked, and reading 128 MiB chunks here would raise it.
    for (codec, x, value) in sums {
        let a = ZarrArray::open(&x).unwrap();
        let reference: f64 = (0..8u64)
            .map(|i| {
                a.read_chunk::<f64>(&[i, 0])
                    .unwrap()
                    .as_slice()
                    .iter()
                    .sum::<f64>()
            })
            .sum();
        assert!(
            (value - reference).abs() <= 1e-9 * reference.abs(),
            "{codec}: {value} vs {reference}"
        );
    }
    for (x, out) in maps {
        let (x, out) = (ZarrArray::open(&x).unwrap(), ZarrArray::open(&out).unwrap());
        for i in [0u64, 7] {
            let expected: Vec<f64> = x
                .read_chunk::<f64>(&[i, 0])
                .unwrap()
                .as_slice()
                .iter()
                .map(|v| v * 2.0 + 1.0)
                .collect();
            assert_eq!(
                out.read_chunk::<f64>(&[i, 0]).unwrap().as_slice(),
                &expected[..]
            );
        }
    }
    for (x, t) in transposes {
        let (x, t) = (ZarrArray::open(&x).unwrap(), ZarrArray::open(&t).unwrap());
        // Output chunk [0, i] is input chunk [i, 0] transposed.
        for i in [0u64, 5] {
            let expected = x.read_chunk::<f64>(&[i, 0]).unwrap().permuted(&[1, 0]);
            assert_eq!(t.read_chunk::<f64>(&[0, i]).unwrap(), expected);
        }
    }
    for (x, e) in column_sums {
        let (x, e) = (ZarrArray::open(&x).unwrap(), ZarrArray::open(&e).unwrap());
        let mut sums = vec![0.0f64; 16384];
        for i in 0..8u64 {
            let chunk = x.read_chunk::<f64>(&[i, 0]).unwrap();
            for row in chunk.as_slice().chunks_exact(16384) {
                for (s, v) in sums.iter_mut().zip(row) {
                    *s += v;
                }
            }
        }
        let got = e
            .read_region::<f64>(&tenrso_ooc::Region::full(e.shape()))
            .unwrap();
        for (g, s) in got.as_slice().iter().zip(&sums) {
            assert!((g - s).abs() <= 1e-9 * s.abs(), "{g} vs {s}");
        }
    }
    // The same data, plain or zstd: the same model, bit for bit.
    assert_eq!(fits[0].to_bits(), fits[1].to_bits());
}

/// A store of 128 MiB shards (16 MiB inner chunks) is streamed a band of
/// inner chunks at a time: a sum and a map stay within the limit, and the
/// sum has the bits of the same data in plain 128 MiB chunks.
#[test]
fn shards_of_128_mib_stream_under_a_256_mib_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, sharded) = (arg(dir.path(), "x.zarr"), arg(dir.path(), "s.zarr"));
    for (path, layout) in [(&plain, "1024,16384"), (&sharded, "128,16384")] {
        let mut args = vec![
            "create",
            path,
            "--shape",
            "8192,16384",
            "--chunks",
            layout,
            "--fill",
            "uniform",
            "--seed",
            "5",
            "--memory-limit",
            "1GiB",
            "-q",
        ];
        if path == &sharded {
            args.extend(["--shard", "1024,16384"]);
        }
        run(args).success();
    }
    let value =
        |x: &str| within_limit("sharded", &["reduce", "sum", x, "--json"]).json()["value"].clone();
    assert_eq!(value(&sharded), value(&plain));
    within_limit(
        "sharded",
        &[
            "map",
            "x*2+1",
            &sharded,
            "--out",
            &arg(dir.path(), "m.zarr"),
        ],
    );
}
