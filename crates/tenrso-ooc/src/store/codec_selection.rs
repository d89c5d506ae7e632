//! `--codec auto`: the compressor of an array chosen by measuring the
//! candidates on samples of its data and the bandwidth of the disk it goes to.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde_json::{Value, json};

use crate::core::{Block, ChunkGrid, Element, Error, Region, Result};
use crate::store::{ArraySpec, Compression, Durability, ZarrArray};

/// What `auto` optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CodecGoal {
    /// The most uncompressed bytes per second through a write and a read of
    /// the array on its disk.
    #[default]
    Speed,
    /// The smallest array on disk (ties: the fastest).
    Size,
}

/// A fixed compressor, or one chosen by measurement (`auto`, `auto:speed`,
/// `auto:size`).
///
/// ```
/// use tenrso_ooc::store::{CodecChoice, CodecGoal, Compression};
/// assert_eq!("auto".parse::<CodecChoice>().unwrap(), CodecChoice::Auto(CodecGoal::Speed));
/// assert_eq!("auto:size".parse::<CodecChoice>().unwrap(), CodecChoice::Auto(CodecGoal::Size));
/// assert_eq!("zstd:5".parse::<CodecChoice>().unwrap(), CodecChoice::Fixed(Compression::Zstd { level: 5 }));
/// assert!("auto:fast".parse::<CodecChoice>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecChoice {
    /// This compressor.
    Fixed(Compression),
    /// Measured per array.
    Auto(CodecGoal),
}

impl Default for CodecChoice {
    fn default() -> Self {
        Self::Fixed(Compression::None)
    }
}

impl FromStr for CodecChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "auto:speed" => Ok(Self::Auto(CodecGoal::Speed)),
            "auto:size" => Ok(Self::Auto(CodecGoal::Size)),
            other if other.starts_with("auto") => Err(Error::invalid(format!(
                "unknown codec `{s}`: expected auto, auto:speed or auto:size"
            ))),
            // A known compressor's own complaint (a bad zstd level) stands.
            other if other.starts_with("zstd") => s.parse().map(Self::Fixed),
            _ => s.parse().map(Self::Fixed).map_err(|_| {
                Error::invalid(format!(
                    "unknown codec `{s}`: expected none, zstd[:LEVEL], lz4, auto, auto:speed or auto:size"
                ))
            }),
        }
    }
}

impl fmt::Display for CodecChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(c) => c.fmt(f),
            Self::Auto(CodecGoal::Speed) => f.write_str("auto"),
            Self::Auto(CodecGoal::Size) => f.write_str("auto:size"),
        }
    }
}

/// The compressors `auto` measures: none, Blosc-LZ4 with byte shuffle, and
/// zstd at a fast, the default and a strong level (the strong one for
/// `auto:size` only: at tens of MB/s it wins on speed only on the slowest
/// disks, and measuring it would take most of the sampling time).
pub const CODEC_CANDIDATES: [Compression; 5] = [
    Compression::None,
    Compression::Lz4,
    Compression::Zstd { level: 1 },
    Compression::Zstd { level: 3 },
    Compression::Zstd { level: 9 },
];

/// One candidate measured on the samples, through the store's own codec
/// chain (checksum included).
#[derive(Debug, Clone, PartialEq)]
pub struct CodecMeasurement {
    /// The compressor.
    pub compression: Compression,
    /// Uncompressed bytes of the samples.
    pub raw_bytes: u64,
    /// Their stored size.
    pub stored_bytes: u64,
    /// Seconds to encode and write them (to the page cache), best of two.
    pub encode_seconds: f64,
    /// Seconds to read and decode them (from the page cache), best of two.
    pub decode_seconds: f64,
}

impl CodecMeasurement {
    /// Uncompressed over stored bytes.
    pub fn ratio(&self) -> f64 {
        self.raw_bytes as f64 / self.stored_bytes.max(1) as f64
    }
}

/// Sequential bandwidth of the file system an array goes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StorageBandwidth {
    /// Bytes per second written and synced.
    pub write: f64,
    /// Bytes per second read with the file's pages dropped from the cache
    /// first (the disk's rate where the file system honours that).
    pub read: f64,
}

/// The codec `auto` chose for an array, and the figures it chose by.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecDecision {
    /// What was optimised.
    pub goal: CodecGoal,
    /// The winner.
    pub chosen: Compression,
    /// The disk's measured bandwidth.
    pub bandwidth: StorageBandwidth,
    /// Every candidate's figures.
    pub candidates: Vec<CodecMeasurement>,
}

impl CodecDecision {
    /// The attribute of `zarr.json` that records the decision.
    pub const ATTRIBUTE: &'static str = "tenrso_codec_choice";

    /// Uncompressed bytes per second of writing then reading the array with
    /// `m`'s codec: the codec's encode and decode time plus the stored
    /// bytes' transfer at the disk's write and read bandwidth, added up.
    ///
    /// The codec's time counts in full, not spread over the threads nor
    /// hidden behind the transfer: measured end to end
    /// (`bench/adaptive_codecs.sh`), encoding and decoding cost an
    /// operation about their single-thread time, and a model that
    /// overlapped them chose LZ4 for random normals and smooth fields where
    /// `none` was 1.4–1.5× faster.
    pub fn effective_rate(&self, m: &CodecMeasurement) -> f64 {
        let raw = m.raw_bytes.max(1) as f64;
        let stored = m.stored_bytes as f64 / raw;
        let seconds = (m.encode_seconds + m.decode_seconds) / raw
            + stored / self.bandwidth.write
            + stored / self.bandwidth.read;
        1.0 / seconds.max(1e-15)
    }

    /// The chosen candidate's figures.
    pub fn chosen_measurement(&self) -> Option<&CodecMeasurement> {
        self.candidates
            .iter()
            .find(|m| m.compression == self.chosen)
    }

    /// One line per candidate, the chosen one marked.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "codec auto ({}): {} — disk {:.0} MB/s write, {:.0} MB/s read\n",
            match self.goal {
                CodecGoal::Speed => "speed",
                CodecGoal::Size => "size",
            },
            self.chosen,
            self.bandwidth.write / 1e6,
            self.bandwidth.read / 1e6,
        );
        for m in &self.candidates {
            text.push_str(&format!(
                "  {} {:<7} ratio {:>7.2}  encode {:>6.0} MB/s  decode {:>6.0} MB/s  write+read {:>6.0} MB/s\n",
                if m.compression == self.chosen { "*" } else { " " },
                m.compression.to_string(),
                m.ratio(),
                m.raw_bytes as f64 / m.encode_seconds.max(1e-9) / 1e6,
                m.raw_bytes as f64 / m.decode_seconds.max(1e-9) / 1e6,
                self.effective_rate(m) / 1e6,
            ));
        }
        text
    }

    /// The decision as JSON (the array attribute and the reports).
    pub fn to_json(&self) -> Value {
        json!({
            "goal": match self.goal { CodecGoal::Speed => "speed", CodecGoal::Size => "size" },
            "chosen": self.chosen.to_string(),
            "write_bytes_per_second": self.bandwidth.write,
            "read_bytes_per_second": self.bandwidth.read,
            "candidates": self.candidates.iter().map(|m| json!({
                "codec": m.compression.to_string(),
                "raw_bytes": m.raw_bytes,
                "stored_bytes": m.stored_bytes,
                "ratio": m.ratio(),
                "encode_seconds": m.encode_seconds,
                "decode_seconds": m.decode_seconds,
                "effective_bytes_per_second": self.effective_rate(m),
            })).collect::<Vec<_>>(),
        })
    }

    /// Sets `spec`'s compressor to the choice and records the decision in
    /// its attributes.
    pub fn apply_to(&self, spec: &mut ArraySpec) {
        spec.compression = self.chosen;
        spec.attributes
            .insert(Self::ATTRIBUTE.to_string(), self.to_json());
    }

    fn pick(&mut self) {
        let key = |m: &CodecMeasurement| match self.goal {
            CodecGoal::Speed => (self.effective_rate(m), m.ratio()),
            CodecGoal::Size => (m.ratio(), self.effective_rate(m)),
        };
        if let Some(best) = self.candidates.iter().max_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        }) {
            self.chosen = best.compression;
        }
    }
}

/// Regions to sample for a decision on an array of `spec`: up to four,
/// spread over the chunk grid, each the chunk's shape cut along the first
/// axis to hold at most `budget / 4` bytes.
///
/// ```
/// use tenrso_ooc::{DType, store::{ArraySpec, sample_regions}};
/// let spec = ArraySpec::new(vec![4096, 1024], vec![1024, 1024], DType::F64);
/// let regions = sample_regions(&spec, 4 << 20);
/// assert_eq!(regions.len(), 4);
/// assert_eq!(regions[0].shape(), &[128, 1024]); // 1 MiB each
/// ```
pub fn sample_regions(spec: &ArraySpec, budget: u64) -> Vec<Region> {
    let Ok(grid) = ChunkGrid::new(spec.shape.clone(), spec.chunk_shape.clone()) else {
        return Vec::new();
    };
    let chunks = grid.num_chunks();
    if chunks == 0 || spec.shape.contains(&0) {
        return Vec::new();
    }
    let count = chunks.min(4);
    let mut shape: Vec<u64> = spec
        .chunk_shape
        .iter()
        .zip(&spec.shape)
        .map(|(c, s)| (*c).min(*s))
        .collect();
    let itemsize = spec.dtype.size() as u64;
    if let Some(first) = shape.first().copied() {
        let row_bytes = shape[1..].iter().product::<u64>() * itemsize;
        let rows = (budget / count / row_bytes.max(1)).clamp(1, first);
        shape[0] = rows;
    }
    (0..count)
        .map(|i| {
            let chunk = grid.chunk_coords(chunks * (2 * i + 1) / (2 * count));
            let region = grid.chunk_region(&chunk);
            // Keep the sample inside the array at edge chunks.
            let start: Vec<u64> = region
                .start()
                .iter()
                .zip(&shape)
                .zip(&spec.shape)
                .map(|((s, n), extent)| (*s).min(extent - n))
                .collect();
            Region::new(start, shape.clone())
        })
        .collect()
}

/// Measures the candidates for `goal` on `samples` (blocks of one shape) in a
/// scratch directory inside `dir`, measures `dir`'s bandwidth (once per
/// file system and process), and picks the codec for `goal`.
///
/// # Errors
/// [`Error::Io`] if the scratch directory cannot be written;
/// [`Error::Corrupt`] if a candidate does not give back the samples bit for
/// bit (a codec fault: nothing is chosen).
pub fn select_codec<T: Element>(
    samples: &[Block<T>],
    goal: CodecGoal,
    dir: &Path,
) -> Result<CodecDecision> {
    let bandwidth = storage_bandwidth(dir)?;
    let scratch = ScratchDir::new(dir)?;
    let mut candidates = Vec::new();
    if let Some(first) = samples.first() {
        let mut probe_shape = first.shape().to_vec();
        if let Some(rows) = probe_shape.first_mut() {
            *rows *= samples.len() as u64;
        }
        let measured = match goal {
            CodecGoal::Speed => &CODEC_CANDIDATES[..4],
            CodecGoal::Size => &CODEC_CANDIDATES[..],
        };
        for (n, &compression) in measured.iter().enumerate() {
            let spec = ArraySpec::new(probe_shape.clone(), first.shape().to_vec(), T::DTYPE)
                .with_compression(compression)
                // A fill value no sample is made of: every chunk is stored.
                .with_fill_value(f64::NAN);
            candidates.push(measure(&scratch.path.join(n.to_string()), &spec, samples)?);
        }
    }
    let mut decision = CodecDecision {
        goal,
        chosen: Compression::None,
        bandwidth,
        candidates,
    };
    decision.pick();
    Ok(decision)
}

/// Samples `spec`'s data with `read` (at most `sample_budget` bytes, see
/// [`sample_regions`]) and chooses its codec with [`select_codec`], probing
/// the nearest existing directory at or above `dir`.
///
/// # Errors
/// `read`'s errors and [`select_codec`]'s.
pub fn choose_codec<T: Element>(
    spec: &ArraySpec,
    goal: CodecGoal,
    dir: &Path,
    sample_budget: u64,
    read: impl Fn(&Region) -> Result<Block<T>>,
) -> Result<CodecDecision> {
    let samples = sample_regions(spec, sample_budget)
        .iter()
        .map(read)
        .collect::<Result<Vec<_>>>()?;
    let probe_dir = dir
        .ancestors()
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("."));
    select_codec(&samples, goal, probe_dir)
}

/// The codec an earlier `auto` chose for the array at `path`, from its
/// attributes; `None` if there is no such array or it was not chosen so
/// (a resumed run keeps the first run's choice).
pub fn recorded_codec_choice(path: &Path) -> Option<Compression> {
    let array = ZarrArray::open(path).ok()?;
    array
        .attributes()
        .get(CodecDecision::ATTRIBUTE)?
        .get("chosen")?
        .as_str()?
        .parse()
        .ok()
}

fn measure<T: Element>(
    path: &Path,
    spec: &ArraySpec,
    samples: &[Block<T>],
) -> Result<CodecMeasurement> {
    let array = ZarrArray::create(path, spec)?;
    array.set_durability(Durability::None);
    let ndim = spec.shape.len();
    let chunk = |i: usize| {
        let mut c = vec![0u64; ndim];
        if let Some(first) = c.first_mut() {
            *first = i as u64;
        }
        c
    };
    let (mut encode, mut decode) = (f64::INFINITY, f64::INFINITY);
    for _round in 0..2 {
        let start = Instant::now();
        for (i, block) in samples.iter().enumerate() {
            array.write_chunk(&chunk(i), block)?;
        }
        encode = encode.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for (i, block) in samples.iter().enumerate() {
            let back = array.read_chunk::<T>(&chunk(i))?;
            if bytemuck::cast_slice::<T, u8>(back.as_slice())
                != bytemuck::cast_slice::<T, u8>(block.as_slice())
            {
                return Err(Error::Corrupt {
                    array: path.to_path_buf(),
                    key: array.chunk_key(&chunk(i)),
                    chunk: chunk(i),
                    reason: format!("codec {} did not round-trip", spec.compression),
                });
            }
        }
        decode = decode.min(start.elapsed().as_secs_f64());
    }
    let mut stored = 0;
    for i in 0..samples.len() {
        let path = array.chunk_path(&chunk(i));
        stored += match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            // A sample made only of the fill value is not stored (as zarr
            // stores such chunks): it takes no room.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(path, e)),
        };
    }
    let raw = samples
        .iter()
        .map(|b| std::mem::size_of_val(b.as_slice()) as u64)
        .sum();
    Ok(CodecMeasurement {
        compression: spec.compression,
        raw_bytes: raw,
        stored_bytes: stored,
        encode_seconds: encode,
        decode_seconds: decode,
    })
}

/// A directory removed on drop.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn new(dir: &Path) -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".tenrso-codec-probe-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Bytes written and read to measure a directory's bandwidth.
const BANDWIDTH_PROBE_BYTES: usize = 32 << 20;

/// The sequential bandwidth of `dir`'s file system, measured once per
/// file system and process: 32 MiB written in 4 MiB pieces and synced, then
/// its pages dropped from the cache (`posix_fadvise(DONTNEED)`) and read.
///
/// # Errors
/// [`Error::Io`] if the probe file cannot be written or read.
pub fn storage_bandwidth(dir: &Path) -> Result<StorageBandwidth> {
    use std::os::unix::fs::MetadataExt;
    static MEASURED: OnceLock<Mutex<Vec<(u64, StorageBandwidth)>>> = OnceLock::new();
    let measured = MEASURED.get_or_init(|| Mutex::new(Vec::new()));
    // One measurement per file system (device), whatever the directory.
    let device = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?.dev();
    if let Some((_, b)) = measured
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(d, _)| *d == device)
    {
        return Ok(*b);
    }
    let scratch = ScratchDir::new(dir)?;
    let path = scratch.path.join("bandwidth");
    let piece = vec![0x5Au8; 4 << 20];
    let io = |e| Error::io(&path, e);
    let start = Instant::now();
    let mut file = std::fs::File::create(&path).map_err(io)?;
    for _ in 0..BANDWIDTH_PROBE_BYTES / piece.len() {
        file.write_all(&piece).map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    let write = BANDWIDTH_PROBE_BYTES as f64 / start.elapsed().as_secs_f64().max(1e-9);
    drop(file);
    let mut file = std::fs::File::open(&path).map_err(io)?;
    drop_cached_pages(&file);
    let mut buffer = vec![0u8; piece.len()];
    let start = Instant::now();
    while file.read(&mut buffer).map_err(io)? > 0 {}
    let read = BANDWIDTH_PROBE_BYTES as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let bandwidth = StorageBandwidth { write, read };
    measured
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((device, bandwidth));
    Ok(bandwidth)
}

/// Asks the kernel to drop `file`'s clean pages (advice: ignored where the
/// file system does not support it, and the read then measures the cache).
fn drop_cached_pages(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is
    // open for the duration of the call.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::DType;

    fn decision(goal: CodecGoal, candidates: Vec<CodecMeasurement>) -> CodecDecision {
        let mut d = CodecDecision {
            goal,
            chosen: Compression::None,
            bandwidth: StorageBandwidth {
                write: 1e9,
                read: 2e9,
            },
            candidates,
        };
        d.pick();
        d
    }

    fn m(compression: Compression, stored: u64, encode: f64, decode: f64) -> CodecMeasurement {
        CodecMeasurement {
            compression,
            raw_bytes: 1_000_000_000,
            stored_bytes: stored,
            encode_seconds: encode,
            decode_seconds: decode,
        }
    }

    #[test]
    fn speed_weighs_codec_time_against_disk_time_and_size_takes_the_smallest() {
        let none = m(Compression::None, 1_000_000_000, 0.1, 0.1);
        let lz4 = m(Compression::Lz4, 250_000_000, 0.5, 0.3);
        let zstd = m(Compression::Zstd { level: 9 }, 100_000_000, 20.0, 2.0);
        let d = decision(
            CodecGoal::Speed,
            vec![none.clone(), lz4.clone(), zstd.clone()],
        );
        // none: 0.2 s + 1 s + 0.5 s; lz4: 0.8 s + 0.25 s + 0.125 s;
        // zstd:9: 22 s + 0.15 s.
        assert_eq!(d.chosen, Compression::Lz4);
        assert!((d.effective_rate(&lz4) - 1e9 / 1.175).abs() < 1e3);
        assert!((d.effective_rate(&none) - 1e9 / 1.7).abs() < 1e3);
        let d = decision(CodecGoal::Size, vec![none, lz4, zstd]);
        assert_eq!(d.chosen, Compression::Zstd { level: 9 });
    }

    #[test]
    fn samples_cover_the_grid_within_the_budget() {
        let spec = ArraySpec::new(vec![10, 7], vec![4, 7], DType::F32);
        let regions = sample_regions(&spec, 1 << 20);
        assert_eq!(regions.len(), 3);
        for r in &regions {
            assert_eq!(r.shape(), &[4, 7]);
            assert!(r.start()[0] + 4 <= 10);
        }
        let tiny = sample_regions(&spec, 10);
        assert!(tiny.iter().all(|r| r.shape() == [1, 7]));
    }

    #[test]
    fn each_candidate_round_trips_and_compressible_data_compresses() {
        let dir = tempfile::tempdir().unwrap();
        let zeros_with_spikes: Vec<Block<f64>> = (0..3)
            .map(|s| {
                let mut v = vec![0.0; 64 * 128];
                v[s * 7] = 1.5;
                Block::from_vec(vec![64, 128], v).unwrap()
            })
            .collect();
        let d = select_codec(&zeros_with_spikes, CodecGoal::Size, dir.path()).unwrap();
        assert_eq!(d.candidates.len(), CODEC_CANDIDATES.len());
        assert_ne!(d.chosen, Compression::None);
        assert!(
            d.chosen_measurement().unwrap().ratio() > 20.0,
            "{}",
            d.summary()
        );
        assert!(d.bandwidth.write > 0.0 && d.bandwidth.read > 0.0);
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
