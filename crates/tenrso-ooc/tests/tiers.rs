//! The spill area's tiers: intermediates placed where they fit (checked
//! before any I/O, enforced while running), a tier's file system filling up
//! during a run, and spill files migrating between tiers by the schedule.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::{all, generated};
use tenrso_ooc::exec::{ExecOptions, Progress, Session};
use tenrso_ooc::memory::{SpillDirSpec, SpillMigration};
use tenrso_ooc::ops::{Einsum, Fill, OutputOptions, Transpose};
use tenrso_ooc::plan::PathStrategy;
use tenrso_ooc::store::{ArraySpec, ZarrArray};
use tenrso_ooc::{Block, DType, Error};

const MIB: u64 = 1 << 20;

fn tier(path: &Path, cap: Option<u64>) -> SpillDirSpec {
    SpillDirSpec {
        path: path.to_path_buf(),
        cap,
    }
}

fn session(limit: u64, tiers: Vec<SpillDirSpec>) -> Session {
    Session::new(
        ExecOptions::default()
            .with_threads(2)
            .with_memory_limit(limit)
            .with_spill_dirs(tiers),
    )
}

/// Everything under `dir` (recursively), for "nothing left" checks.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(read) = std::fs::read_dir(dir) {
        for e in read.flatten() {
            out.push(e.path());
            out.extend(entries(&e.path()));
        }
    }
    out
}

/// Asserts nothing is left under any of `dirs`.
fn assert_left_empty(dirs: &[&Path]) {
    for dir in dirs {
        assert!(
            entries(dir).is_empty(),
            "left in {dir:?}: {:?}",
            entries(dir)
        );
    }
}

/// `ij,jk,kl->il` left to right over 2048×16, 16×2048 and 2048×8 f64: the
/// first step's result is a 32 MiB intermediate in the spill area.
struct Chain {
    _dir: tempfile::TempDir,
    root: PathBuf,
    operands: Vec<std::sync::Arc<ZarrArray>>,
}

impl Chain {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let make = |name: &str, shape: [u64; 2], chunks: [u64; 2], seed| {
            generated(
                &root,
                name,
                ArraySpec::new(shape.to_vec(), chunks.to_vec(), DType::F64),
                Fill::Normal,
                seed,
            )
        };
        let operands = vec![
            make("a", [2048, 16], [512, 16], 1),
            make("b", [16, 2048], [16, 512], 2),
            make("c", [2048, 8], [512, 8], 3),
        ];
        Self {
            _dir: dir,
            root,
            operands,
        }
    }

    fn einsum(&self, out: &Path) -> Einsum {
        let [a, b, c] = [0, 1, 2].map(|k| &self.operands[k]);
        Einsum::new("ij,jk,kl->il", [a, b, c])
            .with_out(out)
            .with_path(PathStrategy::Sequential)
    }

    /// `(A·B)·C` in memory, in f64.
    fn reference(&self) -> Block<f64> {
        let [a, b, c] = [0, 1, 2].map(|k| all(&self.operands[k]));
        let (a, b, c) = (a.as_slice(), b.as_slice(), c.as_slice());
        let mut ab = vec![0.0; 2048 * 2048];
        for i in 0..2048 {
            for j in 0..16 {
                for k in 0..2048 {
                    ab[i * 2048 + k] += a[i * 16 + j] * b[j * 2048 + k];
                }
            }
        }
        let mut out = vec![0.0; 2048 * 8];
        for i in 0..2048 {
            for k in 0..2048 {
                for l in 0..8 {
                    out[i * 8 + l] += ab[i * 2048 + k] * c[k * 8 + l];
                }
            }
        }
        Block::from_vec(vec![2048, 8], out).unwrap()
    }
}

/// Records, as the run advances, which tiers hold an intermediate store.
struct WhereAreTemps {
    tiers: Vec<PathBuf>,
    seen: Mutex<Vec<usize>>,
}

impl Progress for WhereAreTemps {
    fn advance(&self, _delta: u64) {
        for (k, t) in self.tiers.iter().enumerate() {
            let holds = std::fs::read_dir(t)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("temp-"));
            let mut seen = self.seen.lock().unwrap();
            if holds && !seen.contains(&k) {
                seen.push(k);
            }
        }
    }
}

/// The new user: `FAST:8MiB` then `ROOMY`. The 32 MiB intermediate
/// goes to the tier that can hold it (planned and done), the result is
/// right, and nothing is left in either tier.
#[test]
fn an_intermediate_goes_to_the_tier_that_can_hold_it() {
    let chain = Chain::new();
    let (fast, roomy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = session(
        16 * MIB,
        vec![tier(fast.path(), Some(8 * MIB)), tier(roomy.path(), None)],
    );
    let out = chain.root.join("abc");
    let planned = chain.einsum(&out).plan(&s).unwrap();
    let placed = &planned.explain().intermediates;
    assert_eq!(placed.len(), 1, "{}", planned.explain());
    assert_eq!(placed[0].tier, 1, "{}", planned.explain());
    assert_eq!(placed[0].dir, roomy.path());
    assert!(placed[0].bytes >= 32 * MIB);
    let text = planned.explain().to_string();
    assert!(text.contains("einsum step 0 result"), "{text}");
    assert!(text.contains("in tier 1"), "{text}");
    assert_left_empty(&[fast.path(), roomy.path()]); // planning wrote nothing
    let watch = WhereAreTemps {
        tiers: s.spill().unwrap().dirs(),
        seen: Mutex::new(Vec::new()),
    };
    planned.run_with(&watch).unwrap();
    assert_eq!(
        *watch.seen.lock().unwrap(),
        [1],
        "the intermediate lived in ROOMY only"
    );
    let got = all(&ZarrArray::open(&out).unwrap());
    let want = chain.reference();
    for (g, w) in got.as_slice().iter().zip(want.as_slice()) {
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
    }
    // Bitwise the result of the same plan on one tier.
    let one = session(16 * MIB, vec![tier(roomy.path(), None)]);
    let out_one = chain.root.join("abc-one");
    chain.einsum(&out_one).plan(&one).unwrap().run().unwrap();
    assert_eq!(got, all(&ZarrArray::open(&out_one).unwrap()));
    // Every intermediate is gone once the run ends; the tiers with the session.
    assert_eq!(s.spill().unwrap().used(), 0);
    drop((s, one));
    assert_left_empty(&[fast.path(), roomy.path()]);
}

/// With only the small tier, the einsum is refused when planned — before
/// any I/O — with the numbers: the intermediate, the tier, its cap.
#[test]
fn no_tier_with_room_is_refused_before_any_io() {
    let chain = Chain::new();
    let fast = tempfile::tempdir().unwrap();
    let s = session(16 * MIB, vec![tier(fast.path(), Some(8 * MIB))]);
    let out = chain.root.join("abc");
    let read_before = s.metrics().bytes_read.get();
    let err = chain.einsum(&out).plan(&s).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, Error::TierFull { bytes, .. } if bytes >= 32 * MIB),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "no spill tier can hold einsum step 0 result (3",
        &format!(
            "{} holds 0 B of its 8.00 MiB cap, 8.00 MiB free",
            fast.path().display()
        ),
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert_eq!(s.metrics().bytes_read.get(), read_before);
    assert!(!out.exists());
    assert_left_empty(&[fast.path()]);
}

/// A tmpfs of `size` mounted on a temporary directory for the test, or
/// `None` (with a message) where mounting is not permitted.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full tests did not run"
            );
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system up with one file (written until it is full).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![1u8; 1 << 16];
        while f.write_all(&block).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills a file system up once the run has advanced `after` times.
struct FillDuringRun<'a> {
    disk: &'a Tmpfs,
    after: usize,
    calls: Mutex<usize>,
    filler: Mutex<Option<PathBuf>>,
}

impl Progress for FillDuringRun<'_> {
    fn advance(&self, _delta: u64) {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls == self.after {
            *self.filler.lock().unwrap() = Some(self.disk.fill());
        }
    }
}

/// The tier an intermediate was placed in fills up while it is written
/// (something else took the space): a typed error naming the tiers, the
/// inputs untouched, no output, nothing left in either tier.
#[test]
fn a_tier_filling_up_under_an_intermediate_is_a_typed_error() {
    let Some(disk) = Tmpfs::mount("40m") else {
        return;
    };
    let chain = Chain::new();
    let roomy = tempfile::tempdir().unwrap();
    let inputs_before: Vec<Block<f64>> = chain.operands.iter().map(|a| all(a)).collect();
    let s = session(
        16 * MIB,
        vec![tier(disk.path(), None), tier(roomy.path(), None)],
    );
    let out = chain.root.join("abc");
    let planned = chain.einsum(&out).plan(&s).unwrap();
    assert_eq!(
        planned.explain().intermediates[0].tier,
        0,
        "it fits the tmpfs"
    );
    let fill = FillDuringRun {
        disk: &disk,
        after: 2,
        calls: Mutex::new(0),
        filler: Mutex::new(None),
    };
    let err = planned.run_with(&fill).unwrap_err();
    assert!(matches!(err, Error::TierFull { .. }), "{err}");
    assert!(err.to_string().contains("filled up while writing"), "{err}");
    let filler = fill
        .filler
        .lock()
        .unwrap()
        .clone()
        .expect("filled during the run");
    std::fs::remove_file(filler).unwrap();
    assert!(!out.exists(), "no output of the failed run");
    for (a, before) in chain.operands.iter().zip(&inputs_before) {
        assert_eq!(&all(a), before, "inputs untouched");
    }
    drop(s);
    assert_left_empty(&[disk.path(), roomy.path()]);
}

/// A 1024² f64 array (8 MiB) in chunks of 16 rows: its transpose goes
/// through an intermediate that spills under 4 MiB.
fn rows_1024(dir: &Path) -> std::sync::Arc<ZarrArray> {
    generated(
        dir,
        "x",
        ArraySpec::new(vec![1024, 1024], vec![16, 1024], DType::F64),
        Fill::Normal,
        5,
    )
}

/// A transpose through an intermediate of 8 MiB that spills under a 4 MiB
/// limit, writing to `tiers`: its report and the output.
fn spilling_transpose(
    x: &std::sync::Arc<ZarrArray>,
    out: &Path,
    tiers: Vec<SpillDirSpec>,
    progress: &dyn Progress,
) -> tenrso_ooc::Result<(tenrso_ooc::exec::RunStats, Block<f64>)> {
    spilling_transpose_in(&session(4 * MIB, tiers), x, out, progress)
}

fn spilling_transpose_in(
    s: &Session,
    x: &std::sync::Arc<ZarrArray>,
    out: &Path,
    progress: &dyn Progress,
) -> tenrso_ooc::Result<(tenrso_ooc::exec::RunStats, Block<f64>)> {
    let report = Transpose::new(x, [1, 0], out)
        .with_output_options(OutputOptions::default().with_chunk_shape([16, 1024]))
        .plan(s)?
        .run_with(progress)?;
    assert_eq!(s.spill()?.used(), 0, "spill files go with their chunks");
    Ok((report.run, all(&ZarrArray::open(out)?)))
}

/// A tier's file system filling up while chunks spill: the next spills go
/// to the next tier, and the result is exact.
#[test]
fn spills_go_on_in_the_next_tier_when_one_fills_up() {
    let Some(disk) = Tmpfs::mount("64m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let x = rows_1024(dir.path());
    let roomy = tempfile::tempdir().unwrap();
    let fill = FillDuringRun {
        disk: &disk,
        after: 1,
        calls: Mutex::new(0),
        filler: Mutex::new(None),
    };
    let s = session(
        4 * MIB,
        vec![tier(disk.path(), None), tier(roomy.path(), None)],
    );
    let (run, got) = spilling_transpose_in(&s, &x, &dir.path().join("t"), &fill).unwrap();
    assert!(run.bytes_spilled > 0, "{run:?}");
    assert!(
        fill.filler.lock().unwrap().is_some(),
        "filled during the run"
    );
    // The full tier refused writes mid-file (the codec wrapping the
    // error); they went on in the second.
    let tiers = s.metrics().spill_tiers();
    assert!(tiers[1].written_bytes > 0, "{tiers:?}");
    assert_eq!(got, all(&x).permuted(&[1, 0]));
}

/// Spill beyond the fast tier's cap: files needed later move down (and
/// up ahead of use when the fast tier empties in time), counted; the
/// result is bitwise the one-tier run's and the no-migration run's, and
/// nothing is left.
#[test]
fn spill_migrates_between_tiers_by_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let x = rows_1024(dir.path());
    let (fast, slow, one) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let quiet = tenrso_ooc::exec::NoProgress;
    let (single, want) = spilling_transpose(
        &x,
        &dir.path().join("one"),
        vec![tier(one.path(), None)],
        &quiet,
    )
    .unwrap();
    assert_eq!((single.spill_demotions, single.spill_promotions), (0, 0));
    // Both tiers are on the same file system here: `Always`, since `Auto`
    // migrates only towards a tier measured faster.
    let with = |migration| {
        Session::new(
            ExecOptions::default()
                .with_threads(2)
                .with_memory_limit(4 * MIB)
                .with_spill_dirs(vec![
                    tier(fast.path(), Some(2 * MIB)),
                    tier(slow.path(), None),
                ])
                .with_spill_migration(migration),
        )
    };
    let (tiered, got) = spilling_transpose_in(
        &with(SpillMigration::Always),
        &x,
        &dir.path().join("two"),
        &quiet,
    )
    .unwrap();
    assert!(tiered.bytes_spilled > 2 * MIB, "{tiered:?}");
    assert!(tiered.spill_demotions > 0, "{tiered:?}");
    // Promotions happen as the fast tier empties while files below it
    // are still needed, which depends on the prefetcher's timing here;
    // `memory::cache`'s unit test moves a file up deterministically.
    assert_eq!(got, want);
    assert_eq!(got, all(&x).permuted(&[1, 0]));
    // Without migration: the same tiers in order, nothing moves.
    let (fixed, got) = spilling_transpose_in(
        &with(SpillMigration::Off),
        &x,
        &dir.path().join("fixed"),
        &quiet,
    )
    .unwrap();
    assert_eq!((fixed.spill_demotions, fixed.spill_promotions), (0, 0));
    assert_eq!(got, want);
    assert_left_empty(&[fast.path(), slow.path(), one.path()]);
}

/// `--explain` of a plan that spills lists the tiers and what the spill
/// takes of each, filled in order; nothing is written.
#[test]
fn the_plan_shows_the_spill_per_tier() {
    let dir = tempfile::tempdir().unwrap();
    let x = rows_1024(dir.path());
    let (fast, slow) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = session(
        4 * MIB,
        vec![tier(fast.path(), Some(2 * MIB)), tier(slow.path(), None)],
    );
    let out = dir.path().join("t");
    let planned = Transpose::new(&x, [1, 0], &out)
        .with_output_options(OutputOptions::default().with_chunk_shape([16, 1024]))
        .plan(&s)
        .unwrap();
    let plan = planned.explain();
    assert_eq!(plan.spill_tiers.len(), 2, "{plan}");
    assert_eq!(
        plan.spill_by_tier(),
        [2 * MIB, plan.bytes_spilled - 2 * MIB],
        "{plan}"
    );
    let text = plan.to_string();
    assert!(
        text.contains("of its 2.00 MiB cap, 2.00 MiB free: about 2.00 MiB of the spill"),
        "{text}"
    );
    assert!(!out.exists());
    drop(planned);
    drop(s);
    assert_left_empty(&[fast.path(), slow.path()]);
}
