//! Helpers shared by the CLI tests: run the binary as a child process and
//! measure its peak memory; find the Python interpreter of the test venv.
#![allow(dead_code)]

mod peak_rss;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `tenrso-ooc` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tenrso-ooc"))
}

/// What a child run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit status (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Peak resident set size of the child (its VmHWM at exit), in bytes.
    pub peak_rss: u64,
}

impl Run {
    /// The stdout parsed as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Panics with the whole run unless it exited with 0.
    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self
    }
}

/// Runs `tenrso-ooc ARGS` and waits for it, measuring its own peak RSS
/// (VmHWM) apart from the test process's and other children's.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args);
    run_command(cmd)
}

/// Runs any command as [`run`] does.
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4 in peak_rss::wait_for_exit"
)]
pub fn run_command(mut cmd: Command) -> Run {
    peak_rss::trace_until_exit(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let (code, peak_rss) = peak_rss::wait_for_exit(child.id());
    Run {
        code,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
        peak_rss,
    }
}

/// The Python interpreter of the test virtualenv (zarr, numpy, tensorly), from
/// `TENRSO_OOC_PYTHON`. Without it the interop tests skip locally, but under
/// `CI=true` they fail: interop must never silently stop being tested.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("TENRSO_OOC_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "TENRSO_OOC_PYTHON is not set under CI=true: interop tests must run (see .ci/run)"
                );
            }
            eprintln!(
                "skipping: set TENRSO_OOC_PYTHON to a Python with zarr>=3 and numpy (scripts/test does)"
            );
            None
        }
    }
}

/// Runs a Python script with the venv interpreter and `args`; panics with
/// its output if it fails.
pub fn python_script(python: &Path, script: &str, args: &[&Path]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A path inside `dir` as a string argument.
pub fn arg(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// Whether two stored arrays are bitwise equal, element by element
/// (the library's `Compare`).
pub fn identical(a: tenrso_ooc::store::ZarrArray, b: tenrso_ooc::store::ZarrArray) -> bool {
    let session = tenrso_ooc::exec::Session::default();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let report = tenrso_ooc::ops::Compare::new(&a, &b)
        .plan(&session)
        .and_then(|p| p.run())
        .unwrap();
    report.is_identical()
}

/// Starts `tenrso-ooc ARGS` with its stderr's lines sent to the receiver
/// (the metrics address is printed there) and stdout piped.
pub fn spawn(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// A program from a Debian package (`chromium`, `prometheus`) on the PATH.
/// Without it the test skips locally with the command that installs it;
/// under `CI=true` (which installs it) it fails.
pub fn debian_tool(program: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`{program}` is missing under CI=true: .ci/run installs Debian's `{package}`");
        }
        eprintln!("skipping: `{program}` is missing (apt-get install {package})");
    }
    found
}

/// `tests/python/otlp_receiver.py` on a loopback port: what the CLI posts
/// over OTLP/HTTP, decoded by `opentelemetry-proto`, one JSON object per
/// span and metric point. Killed when dropped.
pub struct OtlpReceiver {
    child: std::process::Child,
    port: u16,
    out: PathBuf,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OtlpReceiver {
    /// Starts it with `python`, writing into `dir`.
    pub fn start(python: &Path, dir: &Path) -> Self {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/otlp_receiver.py");
        let out = dir.join("received.jsonl");
        let mut child = Command::new(python)
            .arg(script)
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        Self { child, port, out }
    }

    /// Its base URL, for `--otlp-endpoint`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far, emptied.
    pub fn take(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        std::fs::write(&self.out, "").unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
