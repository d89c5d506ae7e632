//! `cp` and `tucker` as child processes: agreement with TensorLy from the
//! same initial factors, the memory bound on tensors 4x the limit, SIGKILL
//! then `--resume`, and thread-count determinism.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{arg, bin, python, python_script, run};

const MIB: u64 = 1 << 20;

fn create(dir: &Path, name: &str, shape: &str, chunks: &str, fill: &str) -> String {
    let path = arg(dir, name);
    run([
        "create", &path, "--shape", shape, "--chunks", chunks, "--fill", fill, "--seed", "3", "-q",
    ])
    .success();
    path
}

fn fits(report: &Path) -> Vec<f64> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v["iterations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["fit"].as_f64().unwrap())
        .collect()
}

fn reference(python: &Path, args: &[&str]) -> serde_json::Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/tensorly_reference.py");
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "tensorly_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_fits_agree(ours: &[f64], theirs: &serde_json::Value, what: &str) {
    let theirs: Vec<f64> = theirs["fits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), theirs.len(), "{what}: iterations");
    for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= 1e-8 * b.abs(),
            "{what}: iteration {}: ours {a} vs TensorLy {b}",
            k + 1
        );
    }
}

#[test]
fn cp_and_tucker_fits_equal_tensorly_from_the_same_init() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = create(d, "x.zarr", "13x11x9", "5x4x9", "lowrank:3:0.2");
    let npy = arg(d, "x.npy");
    run(["export", &x, &npy, "-q"]).success();
    // Random initial models, written by numpy.
    python_script(
        &py,
        "import numpy as np, sys, os\n\
         rng = np.random.default_rng(1)\n\
         d = sys.argv[1]\n\
         for name, ranks in (('cp', (3, 3, 3)), ('tk', (3, 2, 4))):\n\
         \x20   os.makedirs(os.path.join(d, name))\n\
         \x20   for k, (i, r) in enumerate(zip((13, 11, 9), ranks)):\n\
         \x20       np.save(os.path.join(d, name, f'factor_{k}.npy'), rng.random((i, r)))\n\
         np.save(os.path.join(d, 'tk', 'core.npy'), rng.random((3, 2, 4)))\n\
         np.save(os.path.join(d, 'cp', 'weights.npy'), np.array([2.0, 0.5, 1.5]))\n",
        &[d],
    );
    for (flags, what) in [
        (&[][..], "cp"),
        (&["--normalize"][..], "cp --normalize"),
        (&["--l2", "0.5"][..], "cp --l2 0.5"),
        (
            &["--normalize", "--l2", "0.3"][..],
            "cp --normalize --l2 0.3",
        ),
    ] {
        let out = arg(d, &format!("cp-out-{}", what.replace([' ', '-', '.'], "")));
        let mut args = vec![
            "cp",
            &x,
            "--rank",
            "3",
            "--init",
            &arg(d, "cp"),
            "--iters",
            "10",
            "--tol",
            "0",
            "-o",
            &out,
            "-q",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(flags.iter().map(|s| s.to_string()));
        run(&args).success();
        let mut ref_args = vec!["cp", npy.as_str(), &arg(d, "cp"), "10"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        ref_args.extend(flags.iter().map(|s| s.to_string()));
        let theirs = reference(
            &py,
            &ref_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_fits_agree(&fits(&Path::new(&out).join("report.json")), &theirs, what);
    }
    let out = arg(d, "tk-out");
    run([
        "tucker",
        &x,
        "--ranks",
        "3,2,4",
        "--init",
        &arg(d, "tk"),
        "--iters",
        "10",
        "--tol",
        "0",
        "-o",
        &out,
        "-q",
    ])
    .success();
    let theirs = reference(&py, &["tucker", &npy, &arg(d, "tk"), "10"]);
    assert_fits_agree(
        &fits(&Path::new(&out).join("report.json")),
        &theirs,
        "tucker",
    );
}

#[test]
fn cp_and_tucker_on_a_tensor_4x_the_limit_stay_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 272 MiB of f64 under a 64 MiB limit.
    let x = create(d, "x.zarr", "330x330x330", "64x64x64", "lowrank:8:0.01");
    let cp = run([
        "cp",
        &x,
        "--rank",
        "8",
        "--iters",
        "2",
        "--tol",
        "0",
        "--init",
        "random",
        "-o",
        &arg(d, "cp"),
        "--memory-limit",
        "64MiB",
        "--json",
    ])
    .success();
    let tk = run([
        "tucker",
        &x,
        "--ranks",
        "8,8,8",
        "--iters",
        "1",
        "-o",
        &arg(d, "tk"),
        "--memory-limit",
        "64MiB",
        "--json",
    ])
    .success();
    for (name, r) in [("cp", &cp), ("tucker", &tk)] {
        let json = r.json();
        eprintln!(
            "{name}: peak RSS {} MiB, fit {}",
            r.peak_rss / MIB,
            json["fit"]
        );
        assert!(
            r.peak_rss <= (64 + 64) * MIB,
            "{name}: peak RSS {} MiB",
            r.peak_rss / MIB
        );
        assert!(
            json["bytes_read"].as_u64().unwrap() >= 2 * 330 * 330 * 330 * 8,
            "{name} streamed the tensor"
        );
    }
    assert!(tk.json()["fit"].as_f64().unwrap() > 0.98, "{}", tk.stdout);
}

#[test]
fn threads_do_not_change_the_factors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = create(d, "x.zarr", "40x36x30", "9x10x7", "lowrank:4:0.1");
    for threads in ["1", "2"] {
        for (cmd, extra) in [("cp", ["--rank", "4"]), ("tucker", ["--ranks", "4,4,4"])] {
            let out = arg(d, &format!("{cmd}{threads}"));
            run([
                cmd,
                x.as_str(),
                extra[0],
                extra[1],
                "--iters",
                "5",
                "--tol",
                "0",
                "-o",
                &out,
                "--threads",
                threads,
                "-q",
            ])
            .success();
        }
    }
    for cmd in ["cp", "tucker"] {
        for k in 0..3 {
            let f = format!("factor_{k}.npy");
            let a = std::fs::read(d.join(format!("{cmd}1")).join(&f)).unwrap();
            let b = std::fs::read(d.join(format!("{cmd}2")).join(&f)).unwrap();
            assert_eq!(a, b, "{cmd} {f} differs between 1 and 2 threads");
        }
    }
}

#[test]
fn refuses_to_overwrite_and_reports_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = create(d, "x.zarr", "10x10x10", "5x5x5", "normal");
    let out = arg(d, "out");
    run(["cp", &x, "--rank", "2", "--iters", "2", "-o", &out, "-q"]).success();
    let before = std::fs::read(d.join("out/factor_0.npy")).unwrap();
    std::fs::create_dir_all(d.join("stray")).unwrap();
    std::fs::write(d.join("stray/notes.txt"), "keep me").unwrap();
    for (args, needle) in [
        (vec!["cp", &x, "--rank", "2", "-o", &out], "not empty"),
        (
            vec!["cp", &x, "--rank", "0", "-o", &arg(d, "o2")],
            "rank must be at least 1",
        ),
        (
            vec!["tucker", &x, "--ranks", "2,2", "-o", &arg(d, "o3")],
            "2 ranks given for a tensor of 3 modes",
        ),
        (
            vec![
                "cp",
                &x,
                "--rank",
                "2",
                "--init",
                &arg(d, "missing"),
                "-o",
                &arg(d, "o4"),
            ],
            "no factor_0.npy",
        ),
        (
            vec!["cp", &x, "--rank", "3", "--resume", "-o", &out],
            "other options",
        ),
        (
            vec!["tucker", &x, "--ranks", "2,2,5", "-o", &arg(d, "o5")],
            "exceeds the product of the other ranks",
        ),
        (
            vec!["cp", &x, "--rank", "2", "--resume", "-o", &arg(d, "stray")],
            "holds no checkpoint",
        ),
    ] {
        let r = run(&args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    }
    assert_eq!(
        std::fs::read(d.join("out/factor_0.npy")).unwrap(),
        before,
        "earlier result untouched"
    );
}

#[test]
fn sigkill_then_resume_gives_the_uninterrupted_factors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = create(d, "x.zarr", "160x160x160", "40x40x40", "lowrank:6:0.05");
    let args = |out: &str| -> Vec<String> {
        [
            "cp", &x, "--rank", "6", "--iters", "40", "--tol", "0", "--init", "random", "--seed",
            "9", "-o", out, "--stream", "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let full = arg(d, "full");
    run(args(&full)).success();
    let killed = arg(d, "killed");
    let mut child = Command::new(bin())
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = d.join("killed/checkpoint/state.json");
    let start = Instant::now();
    let iteration = || -> u64 {
        std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["iteration"].as_u64())
            .unwrap_or(0)
    };
    while iteration() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "cp made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let code = child.wait().unwrap().code();
    assert_eq!(code, None, "killed by the signal");
    let done = iteration();
    assert!(done < 40, "killed before the end (at {done})");
    let resumed = run(args(&killed)
        .into_iter()
        .chain(["--resume".to_string(), "--json".to_string()])
        .filter(|a| a != "-q"))
    .success();
    let json = resumed.json();
    assert!(json["resumed_after"].as_u64().unwrap() >= 3, "{json}");
    assert_eq!(json["iterations"].as_array().unwrap().len(), 40);
    for f in [
        "factor_0.npy",
        "factor_1.npy",
        "factor_2.npy",
        "weights.npy",
    ] {
        let a = std::fs::read(d.join("full").join(f)).unwrap();
        let b = std::fs::read(d.join("killed").join(f)).unwrap();
        assert_eq!(a, b, "{f} differs after resume");
    }
}

#[test]
fn tensor_networks_from_npy_cores_and_reconstructed_models_match_numpy() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = create(d, "x.zarr", "12x10x8x6", "5x10x3x6", "normal");
    let npy = arg(d, "x.npy");
    run(["export", &x, &npy, "-q"]).success();
    // An MPS (tensor train) with bond 3, as .npy cores.
    python_script(
        &py,
        "import numpy as np, sys, os\n\
         rng = np.random.default_rng(2); d = sys.argv[1]\n\
         for name, shape in (('g1', (12, 3)), ('g2', (3, 10, 3)), ('g3', (3, 8, 3)), ('g4', (3, 6))):\n\
         \x20   np.save(os.path.join(d, name + '.npy'), rng.standard_normal(shape))\n",
        &[d],
    );
    let spec = "ax,xby,ycz,zd,abcd->";
    let cores: Vec<String> = ["g1", "g2", "g3", "g4"]
        .iter()
        .map(|g| arg(d, &format!("{g}.npy")))
        .collect();
    let r = run([
        "einsum",
        spec,
        &cores[0],
        &cores[1],
        &cores[2],
        &cores[3],
        &x,
        "--json",
        "--spill-dir",
        &arg(d, "spill"),
    ])
    .success();
    let ours = r.json()["value"].as_f64().unwrap();
    let theirs: f64 = python_script(
        &py,
        "import numpy as np, sys, os\n\
         d = sys.argv[1]; g = [np.load(os.path.join(d, n + '.npy')) for n in ('g1', 'g2', 'g3', 'g4')]\n\
         print(np.einsum('ax,xby,ycz,zd,abcd->', *g, np.load(os.path.join(d, 'x.npy'))))\n",
        &[d],
    )
    .trim()
    .parse()
    .unwrap();
    assert!(
        (ours - theirs).abs() <= 1e-10 * theirs.abs().max(1.0),
        "{ours} vs {theirs}"
    );
    let leftover = std::fs::read_dir(d.join("spill")).map_or(0, |e| e.count());
    assert_eq!(leftover, 0, "temporary stores of the .npy cores removed");

    // CP and Tucker models written out chunk by chunk equal numpy's
    // reconstruction; cp also accepts the .npy tensor directly.
    run([
        "cp",
        &npy,
        "--rank",
        "3",
        "--iters",
        "3",
        "-o",
        &arg(d, "cp"),
        "-q",
    ])
    .success();
    run([
        "tucker",
        &x,
        "--ranks",
        "3,2,4,2",
        "--iters",
        "2",
        "-o",
        &arg(d, "tk"),
        "-q",
    ])
    .success();
    for (model, script) in [
        (
            "cp",
            "w = np.load(os.path.join(m, 'weights.npy')); f = [np.load(os.path.join(m, f'factor_{k}.npy')) for k in range(4)]\nfull = np.einsum('r,ar,br,cr,dr->abcd', w, *f)\n",
        ),
        (
            "tk",
            "g = np.load(os.path.join(m, 'core.npy')); f = [np.load(os.path.join(m, f'factor_{k}.npy')) for k in range(4)]\nfull = np.einsum('pqrs,ap,bq,cr,ds->abcd', g, *f)\n",
        ),
    ] {
        let out = arg(d, &format!("{model}-full.zarr"));
        run([
            "reconstruct",
            &arg(d, model),
            "-o",
            &out,
            "--chunks",
            "7,4,5,6",
            "-q",
        ])
        .success();
        let rec = arg(d, &format!("{model}-full.npy"));
        run(["export", &out, &rec, "-q"]).success();
        let check = format!(
            "import numpy as np, sys, os\nm = sys.argv[1]\n{script}got = np.load(sys.argv[2])\nerr = np.abs(got - full).max() / np.abs(full).max()\nassert err < 1e-13, err\nprint(err)\n"
        );
        python_script(&py, &check, &[&d.join(model), Path::new(&rec)]);
    }
}
