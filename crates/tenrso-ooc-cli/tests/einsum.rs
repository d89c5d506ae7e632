//! `tenrso-ooc einsum` as a child process: memory bounds with operands and
//! intermediates larger than the limit, results written around the page
//! cache, determinism across thread counts, refusal before any I/O, and
//! agreement with numpy.einsum.

mod common;

use std::path::Path;

use common::{arg, python, python_script, run};
use tenrso_ooc::Region;
use tenrso_ooc::store::ZarrArray;

const MIB: u64 = 1 << 20;
const LIMIT: &str = "128MiB";
const BOUND: u64 = 128 * MIB + 64 * MIB;

fn create_range(path: &str, shape: &str, chunks: &str) {
    run([
        "create", path, "--shape", shape, "--chunks", chunks, "--fill", "range", "-q",
    ])
    .success();
}

fn all(path: &str) -> Vec<f64> {
    let a = ZarrArray::open(path).unwrap();
    a.read_region::<f64>(&Region::full(a.shape()))
        .unwrap()
        .into_vec()
}

#[test]
fn matmul_of_operands_four_times_the_limit_stays_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        arg(dir.path(), "a"),
        arg(dir.path(), "b"),
        arg(dir.path(), "c"),
    );
    // Two 512 MiB operands (4x the limit): A[i,j] = K*i + j, B[j,k] = N*j + k.
    let (m, k, n) = (2048u64, 32768u64, 2048u64);
    create_range(&a, &format!("{m},{k}"), "256,4096");
    create_range(&b, &format!("{k},{n}"), "4096,256");
    let r = run([
        "einsum",
        "ij,jk->ik",
        &a,
        &b,
        "-o",
        &c,
        "--memory-limit",
        LIMIT,
        "--threads",
        "2",
        "--json",
        "-q",
    ])
    .success();
    let json = r.json();
    eprintln!(
        "matmul 2048x32768x2048: peak {} MiB, {:.1} GFLOP/s",
        r.peak_rss / MIB,
        json["gflops_per_second"]
    );
    assert!(r.peak_rss <= BOUND, "peak {} MiB", r.peak_rss / MIB);
    assert!(json["pool_peak_bytes"].as_u64().unwrap() <= 128 * MIB);
    // Σ_j (K i + j)(N j + k) in closed form.
    let kf = k as f64;
    let s1 = kf * (kf - 1.0) / 2.0;
    let s2 = (kf - 1.0) * kf * (2.0 * kf - 1.0) / 6.0;
    let got = all(&c);
    for i in 0..m {
        for kk in 0..n {
            let (fi, fk) = (i as f64, kk as f64);
            let want = fi * kf * n as f64 * s1 + fi * kf * fk * kf + n as f64 * s2 + fk * s1;
            let g = got[(i * n + kk) as usize];
            assert!(
                (g - want).abs() <= 1e-12 * want.abs().max(1.0),
                "C[{i},{kk}] = {g}, want {want}"
            );
        }
    }
}

/// Bytes of `path` in the page cache, as util-linux's `fincore` counts them.
fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn large_result_chunks_are_written_around_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (arg(d, "a"), arg(d, "b"));
    // One 8 MiB result chunk: A[i,j] = 512 i + j, B[j,k] = 1024 j + k.
    create_range(&a, "1024,512", "1024,512");
    create_range(&b, "512,1024", "512,1024");
    let mut results = Vec::new();
    for buffered in [false, true] {
        let c = arg(d, &format!("c{buffered}"));
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(["einsum", "ij,jk->ik", &a, &b, "-o", &c, "-q"]);
        if buffered {
            cmd.env(tenrso_ooc::store::NO_UNCACHED_WRITES_VAR, "1");
        }
        common::run_command(cmd).success();
        let cached = cached_bytes(&Path::new(&c).join("c/0/0"));
        if buffered {
            assert!(cached >= 8 * MIB, "{cached} bytes cached");
        } else {
            assert_eq!(cached, 0);
        }
        results.push(all(&c));
    }
    assert_eq!(results[0], results[1]);
    // Σ_j (512 i + j)(1024 j + k) in closed form.
    let (s1, s2) = (511.0 * 512.0 / 2.0, 511.0 * 512.0 * 1023.0 / 6.0);
    for (i, k) in [(0, 0), (1, 2), (1023, 1023), (517, 3)] {
        let (fi, fk) = (i as f64, k as f64);
        let want = 512.0 * 1024.0 * fi * s1 + 512.0 * 512.0 * fi * fk + 1024.0 * s2 + fk * s1;
        assert_eq!(results[0][i * 1024 + k], want, "C[{i},{k}]");
    }
}

#[test]
fn chain_with_an_intermediate_larger_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b, c, out) = (arg(d, "a"), arg(d, "b"), arg(d, "c"), arg(d, "out"));
    let spill = d.join("spill");
    std::fs::create_dir(&spill).unwrap();
    create_range(&a, "8192,64", "1024,64");
    create_range(&b, "64,8192", "64,1024");
    create_range(&c, "8192,32", "1024,32");
    // Left to right, A·B is 8192 x 8192 = 512 MiB, 4x the limit.
    let r = run([
        "einsum",
        "ij,jk,kl->il",
        &a,
        &b,
        &c,
        "-o",
        &out,
        "--path",
        "sequential",
        "--memory-limit",
        LIMIT,
        "--spill-dir",
        spill.to_str().unwrap(),
        "--json",
        "-q",
    ])
    .success();
    let json = r.json();
    eprintln!("chain: peak {} MiB", r.peak_rss / MIB);
    assert!(r.peak_rss <= BOUND, "peak {} MiB", r.peak_rss / MIB);
    assert_eq!(json["steps"][0]["bytes_written"], 8192 * 8192 * 8);
    // The intermediate is gone.
    let left: Vec<_> = walk(&spill);
    assert!(left.is_empty(), "left in the spill area: {left:?}");
    // Reference: A·(B·C), B·C being 64 x 32.
    let (av, bv, cv) = (all(&a), all(&b), all(&c));
    let mut bc = vec![0.0; 64 * 32];
    for j in 0..64 {
        for k in 0..8192 {
            for l in 0..32 {
                bc[j * 32 + l] += bv[j * 8192 + k] * cv[k * 32 + l];
            }
        }
    }
    let got = all(&out);
    for i in 0..8192 {
        for l in 0..32 {
            let want: f64 = (0..64).map(|j| av[i * 64 + j] * bc[j * 32 + l]).sum();
            let g = got[i * 32 + l];
            assert!(
                (g - want).abs() <= 1e-10 * want.abs(),
                "out[{i},{l}] = {g}, want {want}"
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn threads_do_not_change_a_bit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (arg(d, "a"), arg(d, "b"));
    for (p, seed) in [(&a, "1"), (&b, "2")] {
        run([
            "create", p, "--shape", "600,700", "--chunks", "128,96", "--fill", "normal", "--seed",
            seed, "-q",
        ])
        .success();
    }
    let outs: Vec<Vec<f64>> = ["1", "2"]
        .iter()
        .map(|t| {
            let out = arg(d, &format!("c{t}"));
            run([
                "einsum",
                "ij,kj->ik",
                &a,
                &b,
                "-o",
                &out,
                "--threads",
                t,
                "--memory-limit",
                "2MiB",
                "-q",
            ])
            .success();
            all(&out)
        })
        .collect();
    assert!(
        outs[0]
            .iter()
            .zip(&outs[1])
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
}

#[test]
fn refuses_before_any_io_when_no_tile_fits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = arg(d, "a");
    run([
        "create",
        &a,
        "--shape",
        "1024,1024",
        "--chunks",
        "1024,1024",
        "-q",
    ])
    .success();
    let out = arg(d, "c");
    let r = run([
        "einsum",
        "ij,jk->ik",
        &a,
        &a,
        "-o",
        &out,
        "--memory-limit",
        "4MiB",
        "-q",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("smallest tiles"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(!Path::new(&out).exists());
    let e = run([
        "--memory-limit",
        "4MiB",
        "einsum",
        "ij,jk->ik",
        &a,
        &a,
        "-o",
        &out,
        "--explain",
    ]);
    assert!(e.stdout.contains("DOES NOT FIT"), "{e:?}");
    // The plan names how each operand enters the GEMM, and the kernel.
    assert!(
        e.stdout
            .contains("GEMM operands: #0 as stored, #1 as stored"),
        "{e:?}"
    );
    assert!(e.stdout.contains("gemm: faer"), "{e:?}");
    assert!(e.stdout.contains("GFLOP/s per thread"), "{e:?}");
    let bad = run(["einsum", "ij,jk->iz", &a, &a, "-o", &out]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("`z`"), "{}", bad.stderr);
}

/// numpy writes the operands; we import, contract and export them; numpy
/// compares with its own einsum.
#[test]
fn agrees_with_numpy_einsum() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &[&[u64]])] = &[
        ("ijk,jl->ilk", &[&[20, 30, 16], &[30, 8]]),
        ("bij,bjk->bik", &[&[6, 20, 30], &[6, 30, 10]]),
        ("ii->i", &[&[40, 40]]),
        ("ij,ij->", &[&[50, 60], &[50, 60]]),
        ("abc,cd,db->a", &[&[10, 12, 14], &[14, 9], &[9, 12]]),
        ("...ij,...jk->...ik", &[&[3, 1, 10, 12], &[4, 12, 5]]),
        ("ij,jk", &[&[33, 17], &[17, 21]]),
    ];
    for (n, (spec, shapes)) in cases.iter().enumerate() {
        let mut inputs = Vec::new();
        for (k, shape) in shapes.iter().enumerate() {
            let npy = d.join(format!("c{n}_{k}.npy"));
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            python_script(
                &py,
                "import sys, numpy as np\n\
                 shape = tuple(int(x) for x in sys.argv[2].split(','))\n\
                 np.save(sys.argv[1], np.random.default_rng(int(sys.argv[3])).standard_normal(shape))",
                &[
                    &npy,
                    Path::new(&dims.join(",")),
                    Path::new(&format!("{}", n * 10 + k)),
                ],
            );
            let zarr = arg(d, &format!("c{n}_{k}.zarr"));
            // Small chunks so that every operand spans several.
            let chunks: Vec<String> = shape.iter().map(|s| s.div_ceil(3).to_string()).collect();
            run([
                "import",
                npy.to_str().unwrap(),
                &zarr,
                "--chunks",
                &chunks.join(","),
                "-q",
            ])
            .success();
            inputs.push(zarr);
        }
        let out = arg(d, &format!("out{n}"));
        let mut args: Vec<String> = vec!["einsum".into(), spec.to_string()];
        args.extend(inputs.iter().cloned());
        args.extend([
            "-o".into(),
            out.clone(),
            "--json".into(),
            "-q".into(),
            "--memory-limit".into(),
            "1MiB".into(),
        ]);
        let r = run(&args).success();
        let value = r.json()["value"].clone();
        let got = if value.is_null() {
            let npy = d.join(format!("out{n}.npy"));
            run(["export", &out, npy.to_str().unwrap(), "-q"]).success();
            npy.to_string_lossy().into_owned()
        } else {
            format!("scalar:{value}")
        };
        let npys: Vec<String> = (0..shapes.len())
            .map(|k| {
                d.join(format!("c{n}_{k}.npy"))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let report = python_script(
            &py,
            "import sys, numpy as np\n\
             spec, got = sys.argv[1], sys.argv[2]\n\
             ops = [np.load(p) for p in sys.argv[3:]]\n\
             want = np.einsum(spec, *ops, optimize=True)\n\
             g = float(got[7:]) if got.startswith('scalar:') else np.load(got)\n\
             assert np.shape(g) == np.shape(want), (np.shape(g), np.shape(want))\n\
             scale = np.einsum(spec, *[np.abs(o) for o in ops], optimize=True)\n\
             err = float(np.max(np.abs(np.asarray(g) - want) / np.maximum(scale, 1e-300)))\n\
             print(err)",
            &[Path::new(spec), Path::new(&got)]
                .into_iter()
                .chain(npys.iter().map(Path::new))
                .collect::<Vec<_>>(),
        );
        let err: f64 = report.trim().parse().unwrap();
        assert!(err < 1e-12, "{spec}: relative error {err}");
    }
}
