//! [`SpillManager`]: where evicted dirty chunks go, compressed and checksummed.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use xxhash_rust::xxh3::Xxh3;

use crate::core::{ByteSize, Error, Result};
use crate::memory::SpillMigration;
use crate::memory::scratch_placement::{TierRoom, effective_spill_dirs};
use crate::memory::tier::{Tier, TierReservation, filesystem_free};

/// Every spill directory of this process, so an interrupt handler can remove
/// them ([`remove_all_spill_dirs`]).
static LIVE_SPILL_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Set when the process is shutting down: no new spill file may be written.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Removes the spill directories of every live [`SpillManager`] in this
/// process, after stopping new spill writes. Meant for an interrupt (Ctrl-C)
/// handler just before exiting; retries while writers still running add
/// files.
pub fn remove_all_spill_dirs() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    let dirs = LIVE_SPILL_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for dir in dirs {
        for _ in 0..50 {
            let _ = fs::remove_dir_all(&dir);
            if !dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
/// A spill location: a directory and an optional cap on the bytes spilled
/// into it. Parses from `PATH` or `PATH:CAP` (`/dev/shm:2GiB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillDirSpec {
    /// Directory under which a private spill directory is made.
    pub path: PathBuf,
    /// Most bytes (as stored, after compression) this directory may hold.
    pub cap: Option<u64>,
}

impl SpillDirSpec {
    /// Parses `PATH` or `PATH:CAP` from an OS string: the path may be any
    /// bytes (not only UTF-8); a suffix after the last `:` that is a size is
    /// the cap.
    ///
    /// ```
    /// use std::ffi::OsStr;
    /// use std::os::unix::ffi::OsStrExt;
    /// use tenrso_ooc::memory::SpillDirSpec;
    /// let spec = SpillDirSpec::parse_os(OsStr::from_bytes(b"/tmp/\xff:2GiB"))?;
    /// assert_eq!(spec.path.as_os_str().as_bytes(), b"/tmp/\xff");
    /// assert_eq!(spec.cap, Some(2 << 30));
    /// # Ok::<(), tenrso_ooc::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty path.
    pub fn parse_os(s: &std::ffi::OsStr) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = s.as_bytes();
        if let Some(colon) = bytes.iter().rposition(|&b| b == b':')
            && let Some(cap) = std::str::from_utf8(&bytes[colon + 1..])
                .ok()
                .and_then(|c| c.parse::<ByteSize>().ok())
            && colon > 0
        {
            return Ok(Self {
                path: PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..colon])),
                cap: Some(cap.0),
            });
        }
        if bytes.is_empty() {
            return Err(Error::invalid("empty spill directory"));
        }
        Ok(Self {
            path: PathBuf::from(s),
            cap: None,
        })
    }
}

impl FromStr for SpillDirSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_os(s.as_ref())
    }
}

/// How spilled chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpillCodec {
    /// Stored as is.
    None,
    /// LZ4 frame (fast).
    #[default]
    Lz4,
    /// Zstandard at a level (1–22).
    Zstd(i32),
    /// Chosen at the first spill by measuring none, LZ4 and zstd:1 on that
    /// chunk against the first tier's bandwidth ([`choose_spill_codec`]).
    Auto,
}

impl FromStr for SpillCodec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        match lower.split_once(':') {
            None if lower == "none" => Ok(Self::None),
            None if lower == "lz4" => Ok(Self::Lz4),
            None if lower == "zstd" => Ok(Self::Zstd(1)),
            None if lower == "auto" => Ok(Self::Auto),
            Some(("zstd", l)) => match l.parse::<i32>() {
                Ok(l @ 1..=22) => Ok(Self::Zstd(l)),
                _ => Err(Error::invalid(format!(
                    "bad zstd level `{l}`: expected 1 to 22"
                ))),
            },
            _ => Err(Error::invalid(format!(
                "unknown spill codec `{s}`: expected none, lz4, zstd[:LEVEL] or auto"
            ))),
        }
    }
}

impl fmt::Display for SpillCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Lz4 => f.write_str("lz4"),
            Self::Zstd(l) => write!(f, "zstd:{l}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

/// Chooses the spill codec for chunks like `sample` (at most 4 MiB of it
/// measured): the one among none, LZ4 and zstd:1 that writes and reads it
/// back soonest, its compression and decompression timed here and its
/// transfer at the bandwidth of `dir` ([`storage_bandwidth`](crate::store::storage_bandwidth));
/// LZ4 when the bandwidth cannot be measured.
pub fn choose_spill_codec(sample: &[u8], dir: Option<&Path>) -> SpillCodec {
    let sample = &sample[..sample.len().min(4 << 20)];
    let Some(bandwidth) = dir.and_then(|d| crate::store::storage_bandwidth(d).ok()) else {
        return SpillCodec::Lz4;
    };
    let raw = sample.len().max(1) as f64;
    let time = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        f();
        start.elapsed().as_secs_f64()
    };
    let mut best = (SpillCodec::None, f64::INFINITY);
    for codec in [SpillCodec::None, SpillCodec::Lz4, SpillCodec::Zstd(1)] {
        let mut packed = Vec::new();
        let encode = time(&mut || {
            packed = match codec {
                SpillCodec::Lz4 => lz4_flex::block::compress(sample),
                SpillCodec::Zstd(level) => zstd::bulk::compress(sample, level).unwrap_or_default(),
                _ => sample.to_vec(),
            }
        });
        let decode = time(&mut || {
            let _ = match codec {
                SpillCodec::Lz4 => lz4_flex::block::decompress(&packed, sample.len()).ok(),
                SpillCodec::Zstd(_) => zstd::bulk::decompress(&packed, sample.len()).ok(),
                _ => Some(packed.clone()),
            };
        });
        // As `--codec auto` weighs them (see `CodecDecision::effective_rate`).
        let stored = packed.len() as f64 / raw;
        let seconds = (encode + decode) / raw + stored / bandwidth.write + stored / bandwidth.read;
        tracing::debug!(%codec, ratio = 1.0 / stored.max(1e-12), seconds_per_byte = seconds, "spill codec measured");
        if seconds < best.1 {
            best = (codec, seconds);
        }
    }
    tracing::info!(codec = %best.0, "spill codec auto: chosen at the first spill");
    best.0
}

const MAGIC: &[u8; 4] = b"TSPL";
/// Bytes of a spill file's header, before the (compressed) chunk.
pub(crate) const HEADER_LEN: usize = 24;

/// The spill area of one session: ordered tiers (fast first), each a
/// capped directory, holding spilled chunks and the intermediate arrays
/// placed in them.
///
/// Each chunk spilled is one file: a 24-byte header (magic, codec, raw
/// length, xxh3-64 of the raw bytes) and the compressed bytes. Reading it back
/// decompresses and verifies the checksum, so a damaged spill file gives
/// [`Error::SpillCorrupt`], never wrong numbers. A [`SpillFile`] deletes its
/// file when dropped and may move between tiers meanwhile
/// ([`SpillManager::demote`], [`SpillManager::promote`]); intermediates hold
/// their room with a [`TierReservation`] ([`SpillManager::reserve`]). The
/// manager deletes its private directories when dropped, and
/// [`remove_all_spill_dirs`] does so on interrupt.
///
/// ```
/// use tenrso_ooc::memory::{SpillCodec, SpillDirSpec, SpillManager};
/// # let dir = tempfile::tempdir()?;
/// let spill = SpillManager::new(&[SpillDirSpec { path: dir.path().into(), cap: None }], SpillCodec::Lz4)?;
/// let file = spill.write(&[7u8; 10_000])?;
/// let mut back = vec![0u8; 10_000];
/// spill.read(&file, &mut back)?;
/// assert_eq!(back, vec![7u8; 10_000]);
/// assert!(file.stored_bytes() < 10_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SpillManager {
    tiers: Vec<Arc<Tier>>,
    codec: SpillCodec,
    /// What `auto` chose at the first spill.
    chosen: std::sync::OnceLock<SpillCodec>,
    migration: SpillMigration,
    counter: AtomicU64,
    written: AtomicU64,
    read: AtomicU64,
}

impl fmt::Debug for SpillManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpillManager")
            .field(
                "tiers",
                &self.tiers.iter().map(|d| &d.root).collect::<Vec<_>>(),
            )
            .field("codec", &self.codec)
            .finish()
    }
}

impl crate::telemetry::SpillGauges for SpillManager {
    fn tiers(&self) -> Vec<crate::telemetry::SpillTier> {
        self.tiers
            .iter()
            .map(|d| {
                let (write, read) = d.bandwidth();
                let (written_bytes, read_bytes) = d.traffic();
                crate::telemetry::SpillTier {
                    dir: d.named().display().to_string(),
                    bytes: d.used(),
                    cap: d.cap,
                    written_bytes,
                    read_bytes,
                    write_bytes_per_second: write,
                    read_bytes_per_second: read,
                }
            })
            .collect()
    }
}

/// Where a spill file is now: it moves when its tier changes.
#[derive(Debug)]
struct Place {
    path: PathBuf,
    tier: Arc<Tier>,
}

/// One spilled chunk on disk, in one tier; deleted when dropped.
#[derive(Debug)]
pub struct SpillFile {
    /// Locked while the file is read or moved.
    place: Mutex<Place>,
    /// The tier's number, readable without waiting for a read to end.
    tier: AtomicUsize,
    stored: u64,
    raw_len: u64,
}

impl SpillFile {
    fn place(&self) -> MutexGuard<'_, Place> {
        self.place.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Bytes on disk (header and compressed data).
    pub fn stored_bytes(&self) -> u64 {
        self.stored
    }
    /// Bytes of the chunk before compression.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_len
    }
    /// The file now.
    pub fn path(&self) -> PathBuf {
        self.place().path.clone()
    }
    /// The number of its tier now, 0 for the first.
    pub fn tier(&self) -> usize {
        self.tier.load(Ordering::Acquire)
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let place = self.place();
        let _ = fs::remove_file(&place.path);
        place.tier.remove_file(self.stored);
    }
}

impl SpillManager {
    /// A manager spilling into private subdirectories of `specs` (created
    /// now), tiers in that order, compressing with `codec`. With no spec,
    /// the system temporary directory is the one tier.
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be created.
    pub fn new(specs: &[SpillDirSpec], codec: SpillCodec) -> Result<Self> {
        let mut tiers = Vec::new();
        for spec in &effective_spill_dirs(specs) {
            let root = spec.path.join(format!(
                "tenrso-spill-{}-{}",
                std::process::id(),
                DIR_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
            LIVE_SPILL_DIRS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(root.clone());
            tiers.push(Arc::new(Tier::new(root, spec.cap)));
        }
        Ok(Self {
            tiers,
            codec,
            chosen: std::sync::OnceLock::new(),
            migration: SpillMigration::default(),
            counter: AtomicU64::new(0),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        })
    }

    /// Sets whether the chunk cache moves this manager's spill files
    /// between tiers by the schedule ([`SpillMigration::Off`] by default).
    pub fn with_migration(mut self, migration: SpillMigration) -> Self {
        self.migration = migration;
        self
    }

    /// Whether spill files move between the first tier and the second now:
    /// by the setting and, for [`SpillMigration::Auto`], the speeds
    /// measured on each tier's traffic so far.
    pub fn migrates(&self) -> bool {
        match self.tiers.as_slice() {
            [fast, slow, ..] => self.migration.pays(fast.speed(), slow.speed()),
            _ => false,
        }
    }

    /// The compression codec: for `auto`, the one chosen at the first
    /// spill (`auto` until then).
    pub fn codec(&self) -> SpillCodec {
        match self.codec {
            SpillCodec::Auto => self.chosen.get().copied().unwrap_or(SpillCodec::Auto),
            fixed => fixed,
        }
    }

    /// The codec to spill `data` with: the fixed one, or `auto`'s choice
    /// (made now, on `data`, at the first spill).
    fn codec_for(&self, data: &[u8]) -> SpillCodec {
        if self.codec != SpillCodec::Auto {
            return self.codec;
        }
        *self.chosen.get_or_init(|| {
            let dir = self.tiers.first().map(|t| t.root.as_path());
            choose_spill_codec(data, dir)
        })
    }

    /// Total cap over all tiers (`None` when one is uncapped).
    pub fn capacity(&self) -> Option<u64> {
        self.tiers.iter().map(|d| d.cap).sum()
    }

    /// Bytes held now: spill files and intermediates' reservations.
    pub fn used(&self) -> u64 {
        self.tiers.iter().map(|d| d.used()).sum()
    }

    /// Total bytes written to spill files so far (as stored).
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Total bytes read back from spill files so far (as stored).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The private directories, one per tier, in tier order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.tiers.iter().map(|d| d.root.clone()).collect()
    }

    /// The number of tiers.
    pub fn tier_count(&self) -> usize {
        self.tiers.len()
    }

    /// What each tier could take now, in tier order (see [`TierRoom`]).
    pub fn rooms(&self) -> Vec<TierRoom> {
        self.tiers
            .iter()
            .map(|t| TierRoom {
                dir: t.named().to_path_buf(),
                used: t.used(),
                cap: t.cap,
                disk_free: filesystem_free(&t.root),
            })
            .collect()
    }

    /// Holds `bytes` in the first tier with room for them, for an
    /// intermediate array named `what` (which then goes in
    /// [`TierReservation::dir`]).
    ///
    /// # Errors
    /// [`Error::TierFull`] naming every tier's cap and room when none can.
    pub fn reserve(&self, bytes: u64, what: &str) -> Result<TierReservation> {
        for (index, tier) in self.tiers.iter().enumerate() {
            if tier.try_take(bytes) {
                return Ok(TierReservation::new(tier.clone(), index, bytes));
            }
        }
        Err(Error::TierFull {
            what: what.to_string(),
            bytes,
            tiers: self.describe_tiers(),
        })
    }

    /// Every tier: what it holds, its cap and its room, in words.
    pub fn describe_tiers(&self) -> String {
        self.tiers
            .iter()
            .map(|t| t.describe())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Writes `data` to a new spill file in the first tier with room.
    ///
    /// # Errors
    /// [`Error::SpillFull`] when every tier is at its cap or out of
    /// space; [`Error::Io`] for other failures.
    pub fn write(&self, data: &[u8]) -> Result<SpillFile> {
        self.write_from(0, data)
    }

    /// Writes `data` to a new spill file in the first tier with room from
    /// tier `first` on (a chunk needed later than what the faster tiers
    /// hold goes further down).
    ///
    /// # Errors
    /// As [`SpillManager::write`].
    pub fn write_from(&self, first: usize, data: &[u8]) -> Result<SpillFile> {
        if SHUTTING_DOWN.load(Ordering::SeqCst) {
            return Err(Error::SpillFull {
                requested: data.len() as u64,
                detail: "the process is shutting down".into(),
            });
        }
        let mut hasher = Xxh3::new();
        hasher.update(data);
        let checksum = hasher.digest();
        let mut failures = Vec::new();
        for (index, dir) in self.tiers.iter().enumerate().skip(first) {
            let path = dir.root.join(format!(
                "{}.spill",
                self.counter.fetch_add(1, Ordering::Relaxed)
            ));
            let room = dir.cap_room();
            if room.is_some_and(|r| r < HEADER_LEN as u64) {
                failures.push(format!("at its cap: {}", dir.describe()));
                continue;
            }
            let started = Instant::now();
            match self.write_file(&path, data, checksum, room) {
                Ok(stored) => {
                    dir.record_write(stored, started.elapsed());
                    dir.add_file(stored);
                    self.written.fetch_add(stored, Ordering::Relaxed);
                    return Ok(SpillFile {
                        place: Mutex::new(Place {
                            path,
                            tier: dir.clone(),
                        }),
                        tier: AtomicUsize::new(index),
                        stored,
                        raw_len: data.len() as u64,
                    });
                }
                Err(WriteFailure::NoRoom(why)) => {
                    let _ = fs::remove_file(&path);
                    failures.push(format!("{why}: {}", dir.describe()));
                }
                Err(WriteFailure::Io(e)) => {
                    let _ = fs::remove_file(&path);
                    return Err(Error::io(&path, e));
                }
            }
        }
        Err(Error::SpillFull {
            requested: data.len() as u64,
            detail: failures.join("; "),
        })
    }

    /// Spill files in the tiers after the first (candidates to promote).
    pub fn files_below_first_tier(&self) -> u64 {
        self.tiers.iter().skip(1).map(|t| t.files()).sum()
    }

    /// Bytes tier `tier` could take now (its cap's room and its file
    /// system's free bytes, whichever is less); 0 past the last tier.
    pub fn room(&self, tier: usize) -> u64 {
        self.tiers.get(tier).map_or(0, |t| t.room())
    }

    /// Moves `file` to the first slower tier with room for it. Returns
    /// whether it moved (not when no slower tier has room).
    ///
    /// # Errors
    /// [`Error::Io`] when the copy fails (the file then stays where it was).
    pub fn demote(&self, file: &SpillFile) -> Result<bool> {
        let from = file.tier();
        self.move_to(file, from + 1..self.tiers.len())
    }

    /// Moves `file` to the fastest tier ahead of its own with room for it.
    /// Returns whether it moved.
    ///
    /// # Errors
    /// As [`SpillManager::demote`].
    pub fn promote(&self, file: &SpillFile) -> Result<bool> {
        let from = file.tier();
        self.move_to(file, 0..from)
    }

    /// Copies `file` into the first tier of `candidates` that can take it,
    /// then deletes the old copy; readers wait meanwhile (the file's lock).
    fn move_to(&self, file: &SpillFile, candidates: std::ops::Range<usize>) -> Result<bool> {
        let mut place = file.place();
        for index in candidates {
            let tier = &self.tiers[index];
            if index == file.tier() || !tier.try_take(file.stored) {
                continue;
            }
            let path = tier.root.join(format!(
                "{}.spill",
                self.counter.fetch_add(1, Ordering::Relaxed)
            ));
            let started = Instant::now();
            match fs::copy(&place.path, &path) {
                Ok(_) => {
                    let took = started.elapsed() / 2;
                    place.tier.record_read(file.stored, took);
                    tier.record_write(file.stored, took);
                    let _ = fs::remove_file(&place.path);
                    place.tier.remove_file(file.stored);
                    // `try_take` held the bytes; now they are a file's.
                    tier.sub(file.stored);
                    tier.add_file(file.stored);
                    *place = Place {
                        path,
                        tier: tier.clone(),
                    };
                    file.tier.store(index, Ordering::Release);
                    return Ok(true);
                }
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    tier.sub(file.stored);
                    if is_no_room(&e) {
                        continue;
                    }
                    return Err(Error::io(&path, e));
                }
            }
        }
        Ok(false)
    }

    fn write_file(
        &self,
        path: &Path,
        data: &[u8],
        checksum: u64,
        room: Option<u64>,
    ) -> Result<u64, WriteFailure> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(WriteFailure::from)?;
        let mut out = CappedWriter {
            inner: BufWriter::with_capacity(1 << 16, file),
            written: 0,
            cap: room,
            no_room: None,
        };
        let chosen = self.codec_for(data);
        let (codec, level) = match chosen {
            SpillCodec::None | SpillCodec::Auto => (0u8, 0i32),
            SpillCodec::Lz4 => (1, 0),
            SpillCodec::Zstd(l) => (2, l),
        };
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4] = codec;
        header[5] = level as u8;
        header[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        header[16..24].copy_from_slice(&checksum.to_le_bytes());
        let written = (|| -> std::io::Result<()> {
            out.write_all(&header)?;
            match chosen {
                SpillCodec::None | SpillCodec::Auto => out.write_all(data)?,
                SpillCodec::Lz4 => {
                    let mut enc = lz4_flex::frame::FrameEncoder::new(&mut out);
                    enc.write_all(data)?;
                    enc.finish().map_err(std::io::Error::other)?;
                }
                SpillCodec::Zstd(level) => {
                    let mut enc = zstd::stream::Encoder::new(&mut out, level)?;
                    enc.write_all(data)?;
                    enc.finish()?;
                }
            }
            out.flush()
        })();
        match (written, out.no_room) {
            (Ok(()), _) => Ok(out.written),
            // Encoders wrap the writer's errors: the writer tells whether
            // it was the cap or a full disk.
            (Err(_), Some(why)) => Err(WriteFailure::NoRoom(why)),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Reads a spill file back into `into` (exactly its raw length),
    /// verifying its checksum.
    ///
    /// # Errors
    /// [`Error::SpillCorrupt`] when the file is damaged; [`Error::Io`].
    pub fn read(&self, file: &SpillFile, into: &mut [u8]) -> Result<()> {
        // Held while reading: the file does not move meanwhile.
        let place = file.place();
        let path = &place.path;
        let corrupt = |reason: String| Error::SpillCorrupt {
            path: path.clone(),
            reason,
        };
        if into.len() as u64 != file.raw_len {
            return Err(Error::invalid(format!(
                "spill file {} holds {} bytes, buffer has {}",
                path.display(),
                file.raw_len,
                into.len()
            )));
        }
        let started = Instant::now();
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        if len != file.stored {
            return Err(corrupt(format!(
                "file is {len} bytes, {} were written",
                file.stored
            )));
        }
        let mut reader = BufReader::with_capacity(1 << 16, f);
        let mut header = [0u8; HEADER_LEN];
        reader
            .read_exact(&mut header)
            .map_err(|e| corrupt(format!("header: {e}")))?;
        if &header[..4] != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let raw_len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let checksum = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
        if raw_len != file.raw_len {
            return Err(corrupt(format!(
                "header says {raw_len} bytes, expected {}",
                file.raw_len
            )));
        }
        // Read exactly the raw bytes, then require the end of the stream, so
        // damage in trailing bytes (frame end marks) is caught too.
        fn read_all(mut r: impl Read, into: &mut [u8]) -> std::io::Result<bool> {
            r.read_exact(into)?;
            let mut extra = [0u8; 1];
            Ok(r.read(&mut extra)? == 0)
        }
        let result = match header[4] {
            0 => read_all(reader, into),
            1 => read_all(lz4_flex::frame::FrameDecoder::new(reader), into),
            2 => zstd::stream::Decoder::with_buffer(reader).and_then(|d| read_all(d, into)),
            c => return Err(corrupt(format!("unknown codec {c}"))),
        };
        match result {
            Ok(true) => {}
            Ok(false) => return Err(corrupt("trailing bytes after the data".into())),
            Err(e) => return Err(corrupt(format!("decoding: {e}"))),
        }
        let mut hasher = Xxh3::new();
        hasher.update(into);
        if hasher.digest() != checksum {
            return Err(corrupt("checksum mismatch".into()));
        }
        self.read.fetch_add(file.stored, Ordering::Relaxed);
        place.tier.record_read(file.stored, started.elapsed());
        Ok(())
    }
}

impl Drop for SpillManager {
    fn drop(&mut self) {
        let mut live = LIVE_SPILL_DIRS.lock().unwrap_or_else(|p| p.into_inner());
        for dir in &self.tiers {
            let _ = fs::remove_dir_all(&dir.root);
            live.retain(|d| d != &dir.root);
        }
    }
}

enum WriteFailure {
    /// The directory's cap or the disk is full: try the next directory.
    NoRoom(String),
    Io(std::io::Error),
}

/// The file system is full, or the user's quota is.
pub(crate) fn is_no_room(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<std::io::Error> for WriteFailure {
    fn from(e: std::io::Error) -> Self {
        if is_no_room(&e) {
            WriteFailure::NoRoom(e.to_string())
        } else {
            WriteFailure::Io(e)
        }
    }
}

const CAP_REACHED: &str = "spill directory cap reached";

/// Counts bytes and refuses to go past a cap; remembers when it did, or
/// when the file system was full.
struct CappedWriter<W: Write> {
    inner: W,
    written: u64,
    cap: Option<u64>,
    no_room: Option<String>,
}

impl<W: Write> CappedWriter<W> {
    /// Remembers a full file system (or quota) among the inner errors.
    fn note(&mut self, e: &std::io::Error) {
        if is_no_room(e) {
            self.no_room = Some(e.to_string());
        }
    }
}

impl<W: Write> Write for CappedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self
            .cap
            .is_some_and(|cap| self.written + buf.len() as u64 > cap)
        {
            self.no_room = Some("cap reached".into());
            return Err(std::io::Error::other(CAP_REACHED));
        }
        let n = self.inner.write(buf).inspect_err(|e| self.note(e))?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn spec(path: &Path, cap: Option<u64>) -> SpillDirSpec {
        SpillDirSpec {
            path: path.to_path_buf(),
            cap,
        }
    }

    #[test]
    fn round_trip_with_every_codec() {
        let dir = tempfile::tempdir().unwrap();
        for codec in [
            SpillCodec::None,
            SpillCodec::Lz4,
            SpillCodec::Zstd(3),
            SpillCodec::Auto,
        ] {
            let m = SpillManager::new(&[spec(dir.path(), None)], codec).unwrap();
            let d = data(100_000);
            let f = m.write(&d).unwrap();
            let mut back = vec![0u8; d.len()];
            m.read(&f, &mut back).unwrap();
            assert_eq!(back, d, "{codec}");
            assert_eq!(m.used(), f.stored_bytes());
            let path = f.path().to_path_buf();
            drop(f);
            assert!(!path.exists());
            assert_eq!(m.used(), 0);
        }
    }

    #[test]
    fn auto_chooses_at_the_first_spill_and_compresses_what_compresses() {
        let dir = tempfile::tempdir().unwrap();
        let m = SpillManager::new(&[spec(dir.path(), None)], SpillCodec::Auto).unwrap();
        assert_eq!(m.codec(), SpillCodec::Auto);
        let zeros = vec![0u8; 1 << 20];
        let f = m.write(&zeros).unwrap();
        // A megabyte of zeros shrinks a thousandfold: no disk is that fast.
        assert_ne!(m.codec(), SpillCodec::None);
        assert_ne!(m.codec(), SpillCodec::Auto);
        assert!(f.stored_bytes() < 20_000, "{}", f.stored_bytes());
        // The choice stays for later spills.
        let chosen = m.codec();
        let g = m.write(&data(50_000)).unwrap();
        assert_eq!(m.codec(), chosen);
        let mut back = vec![0u8; 50_000];
        m.read(&g, &mut back).unwrap();
        assert_eq!(back, data(50_000));
        assert_eq!("auto".parse::<SpillCodec>().unwrap(), SpillCodec::Auto);
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        for codec in [SpillCodec::None, SpillCodec::Lz4, SpillCodec::Zstd(1)] {
            let m = SpillManager::new(&[spec(dir.path(), None)], codec).unwrap();
            let d = data(50_000);
            let f = m.write(&d).unwrap();
            let original = fs::read(f.path()).unwrap();
            // Damage anywhere (header, data, frame end) is caught.
            for at in [
                0,
                9,
                20,
                HEADER_LEN + 5,
                original.len() / 2,
                original.len() - 7,
                original.len() - 1,
            ] {
                let mut bytes = original.clone();
                bytes[at] ^= 0x5a;
                fs::write(f.path(), bytes).unwrap();
                let mut back = vec![0u8; d.len()];
                let err = m.read(&f, &mut back).unwrap_err();
                assert!(
                    matches!(err, Error::SpillCorrupt { .. }),
                    "{codec} at {at}: {err}"
                );
            }
            let mut truncated = original.clone();
            truncated.truncate(original.len() - 2);
            fs::write(f.path(), truncated).unwrap();
            let mut back = vec![0u8; d.len()];
            assert!(
                matches!(m.read(&f, &mut back), Err(Error::SpillCorrupt { .. })),
                "{codec} truncated"
            );
        }
    }

    /// Bytes no codec compresses (xorshift).
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn caps_overflow_to_the_next_directory_then_fail() {
        // Every codec: an encoder reaching the cap mid-file (its own error
        // wrapping the writer's) still moves on to the next directory.
        for codec in [SpillCodec::None, SpillCodec::Lz4, SpillCodec::Zstd(1)] {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let m = SpillManager::new(
                &[spec(a.path(), Some(30_000)), spec(b.path(), Some(30_000))],
                codec,
            )
            .unwrap();
            let d = noise(20_000);
            let f1 = m.write(&d).unwrap();
            let f2 = m.write(&d).unwrap(); // does not fit in the first: goes to the second
            assert!(
                f1.path().starts_with(a.path()) && f2.path().starts_with(b.path()),
                "{codec}"
            );
            assert_eq!((f1.tier(), f2.tier()), (0, 1));
            let err = m.write(&d).unwrap_err();
            assert!(matches!(err, Error::SpillFull { .. }), "{codec}: {err}");
            assert!(err.to_string().contains("cap"), "{err}");
            // Nothing is left of the failed attempts.
            let files = |p: &Path| {
                fs::read_dir(m.dirs().into_iter().find(|d| d.starts_with(p)).unwrap())
                    .unwrap()
                    .count()
            };
            assert_eq!((files(a.path()), files(b.path())), (1, 1), "{codec}");
        }
    }

    #[test]
    fn files_move_between_tiers_and_read_back_the_same() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let m = SpillManager::new(
            &[spec(a.path(), Some(50_000)), spec(b.path(), None)],
            SpillCodec::Lz4,
        )
        .unwrap();
        let d = noise(30_000);
        let f = m.write(&d).unwrap();
        let first = f.path();
        assert!(!m.promote(&f).unwrap(), "already in the first tier");
        assert!(m.demote(&f).unwrap());
        assert_eq!(f.tier(), 1);
        assert!(!first.exists() && f.path().starts_with(b.path()));
        assert!(!m.demote(&f).unwrap(), "no slower tier");
        let mut back = vec![0u8; d.len()];
        m.read(&f, &mut back).unwrap();
        assert_eq!(back, d);
        // The first tier's room is used by another file: no promotion.
        let g = m.write(&d).unwrap();
        assert!(!m.promote(&f).unwrap());
        drop(g);
        assert!(m.promote(&f).unwrap());
        assert_eq!(f.tier(), 0);
        m.read(&f, &mut back).unwrap();
        assert_eq!(back, d);
        assert_eq!(m.used(), f.stored_bytes());
        let path = f.path();
        drop(f);
        assert!(!path.exists());
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn auto_migrates_only_towards_a_tier_measured_faster() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tiers = [spec(a.path(), Some(1 << 20)), spec(b.path(), None)];
        let plain = SpillManager::new(&tiers, SpillCodec::None).unwrap();
        assert!(!plain.migrates(), "off by default");
        let m = plain.with_migration(SpillMigration::Auto);
        assert!(m.migrates(), "not measured yet: the user's order");
        let ms = std::time::Duration::from_millis;
        m.tiers[0].record_write(1 << 30, ms(500)); // 2 GiB/s
        assert!(m.migrates(), "the second tier not measured yet");
        m.tiers[1].record_write(1 << 30, ms(400)); // 2.5 GiB/s: no slower
        assert!(!m.migrates());
        m.tiers[1].record_read(1 << 30, ms(5000)); // now about 0.37 GiB/s
        assert!(m.migrates());
        let off = SpillManager::new(&tiers, SpillCodec::None)
            .unwrap()
            .with_migration(SpillMigration::Off);
        assert!(!off.migrates());
        let one = SpillManager::new(&tiers[..1], SpillCodec::None)
            .unwrap()
            .with_migration(SpillMigration::Always);
        assert!(!one.migrates(), "one tier: nowhere to move");
    }

    #[test]
    fn reservations_hold_room_in_the_first_tier_that_has_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let m = SpillManager::new(
            &[spec(a.path(), Some(1000)), spec(b.path(), Some(5000))],
            SpillCodec::None,
        )
        .unwrap();
        let small = m.reserve(800, "small").unwrap();
        let large = m.reserve(2000, "large").unwrap();
        assert_eq!((small.tier(), large.tier()), (0, 1));
        assert!(small.dir().starts_with(a.path()));
        // Spill files see the reserved room as taken.
        assert_eq!(m.write(&noise(500)).unwrap().tier(), 1);
        let err = m.reserve(4000, "too large").unwrap_err();
        assert!(matches!(err, Error::TierFull { bytes: 4000, .. }), "{err}");
        assert!(
            err.to_string().contains("holds 800 B of its 1000 B cap"),
            "{err}"
        );
        drop((small, large));
        assert_eq!(m.used(), 0);
        assert_eq!(m.reserve(4000, "now").unwrap().tier(), 1);
    }

    #[test]
    fn directories_are_removed_with_the_manager() {
        let dir = tempfile::tempdir().unwrap();
        let m = SpillManager::new(&[spec(dir.path(), None)], SpillCodec::Lz4).unwrap();
        let f = m.write(&data(1000)).unwrap();
        let roots = m.dirs();
        std::mem::forget(f); // even a leaked file goes with its directory
        drop(m);
        assert!(roots.iter().all(|r| !r.exists()));
    }

    #[test]
    fn parses_specs_and_codecs() {
        assert_eq!(
            "/dev/shm:2GiB".parse::<SpillDirSpec>().unwrap(),
            SpillDirSpec {
                path: "/dev/shm".into(),
                cap: Some(2 << 30)
            }
        );
        assert_eq!("/scratch".parse::<SpillDirSpec>().unwrap().cap, None);
        assert_eq!("zstd:5".parse::<SpillCodec>().unwrap(), SpillCodec::Zstd(5));
        assert!("gzip".parse::<SpillCodec>().is_err());
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz_config::fuzz_config(300))]

        /// A spill file damaged in any way (bytes changed, inserted,
        /// removed, cut) reads back as the data written or as
        /// `SpillCorrupt`: never a panic, never other bytes.
        #[test]
        fn damaged_spill_files_are_caught(
            codec in proptest::sample::select(vec![SpillCodec::None, SpillCodec::Lz4, SpillCodec::Zstd(1)]),
            len in 0usize..5000,
            edits in proptest::collection::vec((0usize..1 << 20, proptest::prelude::any::<u8>(), 0u8..4), 1..5),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let m = SpillManager::new(&[spec(dir.path(), None)], codec).unwrap();
            let d = data(len);
            let f = m.write(&d).unwrap();
            let mut bytes = fs::read(f.path()).unwrap();
            for (at, b, kind) in edits {
                let n = bytes.len().max(1);
                match kind {
                    0 if !bytes.is_empty() => bytes[at % n] ^= b | 1,
                    1 => bytes.insert(at % (bytes.len() + 1), b),
                    2 if !bytes.is_empty() => {
                        bytes.remove(at % n);
                    }
                    _ => bytes.truncate(at % n),
                }
            }
            fs::write(f.path(), &bytes).unwrap();
            let mut back = vec![0u8; d.len()];
            match m.read(&f, &mut back) {
                Ok(()) => proptest::prop_assert_eq!(back, d),
                Err(err) => proptest::prop_assert!(matches!(err, Error::SpillCorrupt { .. }), "{}", err),
            }
        }
    }
}
