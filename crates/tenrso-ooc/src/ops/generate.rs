//! Generators: fill a stored array with zeros, ones, a range, random numbers
//! or a planted low-rank tensor, chunk-parallel and deterministic.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use crate::core::{Block, ChunkGrid, ContiguousRuns, Element, Error, Region, Result, Shape};
use crate::dispatch_dtype;
use crate::distributed::sum_over_ranks;
use crate::exec::{Progress, Session, TaskSet, for_each_owned_task};
use crate::ops::codec_auto::resolve_codec;
use crate::ops::{ChunkPlan, CounterRng, Planned};
use crate::store::{ArraySpec, CodecChoice, CodecDecision, ZarrArray};

/// What to fill an array with.
///
/// Every element is a pure function of the seed and its C-order linear index
/// (random values come from [`CounterRng`]), so the array is bitwise the same
/// whatever the chunk shape, thread count or order of processing.
///
/// ```
/// use tenrso_ooc::ops::Fill;
/// assert_eq!("lowrank:8:0.01".parse::<Fill>().unwrap(), Fill::LowRank { rank: 8, noise: 0.01 });
/// assert_eq!("lowrank:4".parse::<Fill>().unwrap(), Fill::LowRank { rank: 4, noise: 0.0 });
/// assert_eq!("normal".parse::<Fill>().unwrap().to_string(), "normal");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// All 0.
    Zeros,
    /// All 1.
    Ones,
    /// The C-order linear index of each element (0, 1, 2, …).
    Range,
    /// Uniform in [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
    /// The sum of `rank` rank-one terms `a¹ ∘ a² ∘ … ∘ aᴺ` whose factor entries
    /// are uniform in [0, 1), plus Gaussian noise of standard deviation
    /// `noise` × the RMS of the noiseless tensor (so `noise` is relative).
    LowRank {
        /// Number of rank-one terms.
        rank: usize,
        /// Noise level relative to the RMS of the noiseless tensor.
        noise: f64,
    },
}

impl FromStr for Fill {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let bad = || {
            Error::invalid(format!(
                "unknown fill `{s}`: expected zeros, ones, range, normal, uniform or lowrank:R[:NOISE]"
            ))
        };
        match (name, args.as_slice()) {
            ("zeros", []) => Ok(Self::Zeros),
            ("ones", []) => Ok(Self::Ones),
            ("range", []) => Ok(Self::Range),
            ("uniform", []) => Ok(Self::Uniform),
            ("normal", []) => Ok(Self::Normal),
            ("lowrank", [rank, rest @ ..]) if rest.len() <= 1 => {
                let rank: usize = rank.parse().ok().filter(|r| *r > 0).ok_or_else(|| {
                    Error::invalid(format!(
                        "bad rank `{rank}` in `{s}`: expected a positive integer"
                    ))
                })?;
                let noise = match rest {
                    [] => 0.0,
                    [n] => n
                        .parse::<f64>()
                        .ok()
                        .filter(|n| *n >= 0.0 && n.is_finite())
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "bad noise `{n}` in `{s}`: expected a number ≥ 0"
                            ))
                        })?,
                    _ => unreachable!(),
                };
                Ok(Self::LowRank { rank, noise })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zeros => f.write_str("zeros"),
            Self::Ones => f.write_str("ones"),
            Self::Range => f.write_str("range"),
            Self::Uniform => f.write_str("uniform"),
            Self::Normal => f.write_str("normal"),
            Self::LowRank { rank, noise } if *noise == 0.0 => write!(f, "lowrank:{rank}"),
            Self::LowRank { rank, noise } => write!(f, "lowrank:{rank}:{noise}"),
        }
    }
}

impl Fill {
    /// Bytes a [`Generator`] of this fill holds for an array of `shape`
    /// (the factors and Gram matrices of a low-rank fill; nothing otherwise).
    pub fn model_bytes(&self, shape: &[u64]) -> u64 {
        match self {
            Self::LowRank { rank, .. } => {
                let rank = *rank as u64;
                let rows: u64 = shape.iter().fold(0u64, |a, d| a.saturating_add(*d));
                rows.saturating_mul(rank)
                    .saturating_add(rank.saturating_mul(rank))
                    .saturating_mul(8)
            }
            _ => 0,
        }
    }
}

/// Random stream of element values (uniform, normal).
const VALUE_STREAM: u32 = 0;
/// Random stream of low-rank noise.
const NOISE_STREAM: u32 = u32::MAX;

/// A generator bound to an array shape and seed: computes any region.
#[derive(Debug, Clone)]
pub struct Generator {
    fill: Fill,
    shape: Vec<u64>,
    rng: CounterRng,
    low_rank: Option<LowRankModel>,
}

/// The factors of a planted low-rank tensor.
#[derive(Debug, Clone)]
struct LowRankModel {
    rank: usize,
    /// One `Iₙ × rank` row-major matrix per axis.
    factors: Vec<Vec<f64>>,
    noise_std: f64,
}

impl Generator {
    /// A generator of `fill` for an array of `shape`, seeded with `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a low-rank fill of a 0-d array.
    pub fn new(fill: Fill, shape: &[u64], seed: u64) -> Result<Self> {
        let rng = CounterRng::new(seed);
        let low_rank = match fill {
            Fill::LowRank { rank, noise } => {
                if shape.is_empty() {
                    return Err(Error::invalid("a low-rank fill needs at least one axis"));
                }
                Some(LowRankModel::new(shape, rank, noise, &rng))
            }
            _ => None,
        };
        Ok(Self {
            fill,
            shape: shape.to_vec(),
            rng,
            low_rank,
        })
    }

    /// Standard deviation of the added noise (low-rank fills only).
    pub fn noise_std(&self) -> Option<f64> {
        self.low_rank.as_ref().map(|m| m.noise_std)
    }

    /// The values of `region`.
    pub fn block<T: Element>(&self, region: &Region) -> Block<T> {
        let mut out = Vec::with_capacity(region.num_elements() as usize);
        match (&self.fill, &self.low_rank) {
            (Fill::LowRank { .. }, Some(model)) => {
                model.fill(region, &self.shape, &self.rng, &mut out)
            }
            (fill, _) => {
                for (offset, len) in ContiguousRuns::new(&self.shape, region) {
                    let indices = offset..offset + len;
                    match fill {
                        Fill::Zeros => out.extend(indices.map(|_| T::ZERO)),
                        Fill::Ones => out.extend(indices.map(|_| T::ONE)),
                        Fill::Range => out.extend(indices.map(|i| T::from_f64(i as f64))),
                        Fill::Uniform => out.extend(
                            indices.map(|i| T::from_f64(self.rng.uniform(VALUE_STREAM, i))),
                        ),
                        Fill::Normal => out
                            .extend(indices.map(|i| T::from_f64(self.rng.normal(VALUE_STREAM, i)))),
                        Fill::LowRank { .. } => unreachable!("low-rank fills have a model"),
                    }
                }
            }
        }
        Block::from_vec(region.shape().to_vec(), out).expect("generated one value per element")
    }
}

impl LowRankModel {
    fn new(shape: &[u64], rank: usize, noise: f64, rng: &CounterRng) -> Self {
        let factors: Vec<Vec<f64>> = shape
            .iter()
            .enumerate()
            .map(|(axis, &extent)| {
                (0..extent * rank as u64)
                    .map(|k| rng.uniform(1 + axis as u32, k))
                    .collect()
            })
            .collect();
        // ‖X‖² = Σ_{r,s} Πₙ (AₙᵀAₙ)[r,s], from the factors alone.
        let mut hadamard = vec![1.0f64; rank * rank];
        for (factor, &extent) in factors.iter().zip(shape) {
            for r in 0..rank {
                for s in 0..rank {
                    let gram: f64 = (0..extent as usize)
                        .map(|i| factor[i * rank + r] * factor[i * rank + s])
                        .sum();
                    hadamard[r * rank + s] *= gram;
                }
            }
        }
        let norm_sq: f64 = hadamard.iter().sum();
        let elements = Shape::new(shape.to_vec()).num_elements().max(1) as f64;
        Self {
            rank,
            factors,
            noise_std: noise * (norm_sq / elements).sqrt(),
        }
    }

    fn fill<T: Element>(&self, region: &Region, shape: &[u64], rng: &CounterRng, out: &mut Vec<T>) {
        let rank = self.rank;
        let ndim = shape.len();
        let last = ndim - 1;
        let array = Shape::new(shape.to_vec());
        let rows = Shape::new(region.shape()[..last].to_vec());
        let mut partial = vec![0.0f64; rank];
        let mut index = vec![0u64; ndim];
        for row in 0..rows.num_elements() {
            // Product of the factor rows of every axis but the last.
            partial.fill(1.0);
            for (axis, local) in rows.unravel(row).into_iter().enumerate() {
                index[axis] = region.start()[axis] + local;
                let factor_row = &self.factors[axis][index[axis] as usize * rank..][..rank];
                for (p, f) in partial.iter_mut().zip(factor_row) {
                    *p *= f;
                }
            }
            for j in region.start()[last]..region.end()[last] {
                index[last] = j;
                let factor_row = &self.factors[last][j as usize * rank..][..rank];
                let mut value: f64 = partial.iter().zip(factor_row).map(|(p, f)| p * f).sum();
                if self.noise_std > 0.0 {
                    value += self.noise_std * rng.normal(NOISE_STREAM, array.linear_index(&index));
                }
                out.push(T::from_f64(value));
            }
        }
    }
}

/// What a [`Generate`] did.
#[derive(Debug, Clone)]
pub struct GenerateReport {
    /// The array filled.
    pub array: Arc<ZarrArray>,
    /// Chunks generated and written by this run.
    pub chunks_written: u64,
    /// Chunks kept from an interrupted run (with resume).
    pub chunks_skipped: u64,
    /// Bytes written (uncompressed).
    pub bytes_written: u64,
    /// How the codec was chosen, when it was `auto` (and not resumed).
    pub codec_choice: Option<CodecDecision>,
}

/// Creates a stored array and fills every chunk from a generator, chunks in
/// parallel under the memory limit. The fill and seed are recorded in the
/// array's attributes (`tenrso_generator`). With resume, an existing array
/// of the same layout and generator keeps the chunks already on disk (a
/// killed run continues where it stopped; every chunk write is atomic, so a
/// kept chunk is complete).
///
/// ```
/// use tenrso_ooc::{DType, exec::Session};
/// use tenrso_ooc::ops::{Fill, Generate};
/// use tenrso_ooc::store::ArraySpec;
/// # let dir = tempfile::tempdir()?;
/// let spec = ArraySpec::new(vec![3, 4], vec![2, 2], DType::F64);
/// let session = Session::default();
/// let planned = Generate::new(dir.path().join("r"), spec, Fill::Range).plan(&session)?;
/// assert_eq!(planned.explain().tasks, 4);
/// let a = planned.run()?.array;
/// let all = a.read_region::<f64>(&tenrso_ooc::Region::full(&[3, 4]))?;
/// assert_eq!(all.as_slice(), &(0..12).map(f64::from).collect::<Vec<_>>()[..]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Generate {
    path: PathBuf,
    spec: ArraySpec,
    fill: Fill,
    seed: u64,
    resume: bool,
    codec: Option<CodecChoice>,
}

impl Generate {
    /// Creates the array at `path` with `spec`, filled with `fill` (seed 0).
    pub fn new(path: impl Into<PathBuf>, spec: ArraySpec, fill: Fill) -> Self {
        Self {
            path: path.into(),
            spec,
            fill,
            seed: 0,
            resume: false,
            codec: None,
        }
    }

    /// Sets the compressor, or `auto` to measure the candidates on samples
    /// of the generated values (see [`select_codec`](crate::store::select_codec)).
    /// Without it, the spec's compressor is used.
    pub fn with_codec(mut self, codec: CodecChoice) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Sets the seed of random fills.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Continues an interrupted run into the same array.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Plans the generation: checks the layout and the fill.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad layout. Running refuses, before
    /// creating anything, a fill that does not apply to the shape and, with
    /// [`Error::MemoryLimit`], a model and one chunk that cannot fit.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, ChunkPlan, GenerateReport>> {
        self.spec.validate()?;
        let shape = &self.spec.shape;
        let model_bytes = self.fill.model_bytes(shape);
        let grid = ChunkGrid::new(shape.clone(), self.spec.chunk_shape.clone())?;
        let mut request = self.clone();
        let codec_choice = match self.codec {
            Some(CodecChoice::Fixed(compression)) => {
                request.spec.compression = compression;
                None
            }
            Some(choice) => {
                session
                    .options()
                    .check_fits(model_bytes, "the generator's model")?;
                let generator = Generator::new(self.fill, shape, self.seed)?;
                dispatch_dtype!(self.spec.dtype, T => resolve_codec(
                    choice,
                    &mut request.spec,
                    &self.path,
                    self.resume,
                    session,
                    |region| Ok(generator.block::<T>(region)),
                ))?
            }
            None => None,
        };
        let plan = ChunkPlan {
            operation: format!(
                "generate {} (seed {}) into {}",
                self.fill,
                self.seed,
                self.path.display()
            ),
            tasks: grid.num_chunks(),
            bytes_read: 0,
            bytes_written: Shape::new(shape.clone()).num_elements() * self.spec.dtype.size() as u64,
            task_bytes: model_bytes + request.spec.chunk_working_set(),
            memory_limit: session.memory_limit(),
        };
        Ok(Planned::new(plan, move |plan: &ChunkPlan, progress| {
            session
                .options()
                .check_fits(plan.task_bytes, "the generator's model and one chunk")?;
            let mut model_reservation = session.pool().reservation("generator model");
            model_reservation.grow(model_bytes)?;
            let generator = Generator::new(request.fill, &request.spec.shape, request.seed)?;
            // Rank 0 creates the array; with several ranks, the others
            // open it once it exists and each fills its share of chunks.
            let ranks = session.ranks();
            let created = if ranks.is_root() {
                let mut array = if request.resume {
                    ZarrArray::create_or_resume(&request.path, &request.spec)?
                } else {
                    ZarrArray::create(&request.path, &request.spec)?
                };
                let mut record = json!({ "fill": request.fill.to_string(), "seed": request.seed });
                if let Some(std) = generator.noise_std() {
                    record["noise_std"] = json!(std);
                }
                array.record_job("tenrso_generator", record, request.resume)?;
                Some(array)
            } else {
                None
            };
            if ranks.is_distributed() {
                ranks.barrier();
            }
            let array = match created {
                Some(array) => array,
                None => ZarrArray::open(&request.path)?,
            };
            fill_chunks(&array, &generator, request.resume, session, progress)?
                .finish(array, codec_choice.clone())
        }))
    }
}

/// Chunks written and skipped by [`fill_chunks`].
struct Filled {
    skipped: u64,
    written: u64,
    bytes: u64,
}

impl Filled {
    fn finish(
        self,
        array: ZarrArray,
        codec_choice: Option<CodecDecision>,
    ) -> Result<GenerateReport> {
        Ok(GenerateReport {
            codec_choice,
            array: Arc::new(array),
            chunks_written: self.written,
            chunks_skipped: self.skipped,
            bytes_written: self.bytes,
        })
    }
}

fn fill_chunks(
    array: &ZarrArray,
    generator: &Generator,
    resume: bool,
    session: &Session,
    progress: &dyn Progress,
) -> Result<Filled> {
    let grid = array.chunk_grid();
    let skipped = AtomicU64::new(0);
    let written = AtomicU64::new(0);
    let ranks = session.ranks();
    progress.start("generate", array.nbytes() / ranks.size() as u64);
    array.set_durability(session.options().durability);
    let result = dispatch_dtype!(array.dtype(), T => {
        for_each_owned_task(session, TaskSet { count: grid.num_chunks() as usize, bytes_each: array.chunk_write_working_set(), what: "generating one chunk" }, progress, |i| {
            let chunk = grid.chunk_coords(i as u64);
            if resume && array.chunk_exists(&chunk)? {
                skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(array.nbytes_of(&chunk));
            }
            let block = generator.block::<T>(&grid.chunk_region(&chunk));
            array.write_chunk(&chunk, &block)?;
            session.metrics().bytes_written.add(block.byte_len() as u64);
            written.fetch_add(block.byte_len() as u64, Ordering::Relaxed);
            Ok(block.byte_len() as u64)
        })
    });
    // What was written is committed, also after a failure (for `--resume`).
    let flushed = array.end_writes();
    progress.finish();
    result?;
    flushed?;
    // Every rank's chunks are written when any rank returns.
    let total = sum_over_ranks(ranks, &[skipped.into_inner(), written.into_inner()]);
    Ok(Filled {
        skipped: total[0],
        written: grid.num_chunks() - total[0],
        bytes: total[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full<T: Element>(g: &Generator, shape: &[u64]) -> Block<T> {
        g.block(&Region::full(shape))
    }

    #[test]
    fn parse_rejects_nonsense() {
        for bad in [
            "lowrank",
            "lowrank:0",
            "lowrank:2:-1",
            "lowrank:2:0.1:3",
            "gauss",
            "ones:2",
        ] {
            assert!(bad.parse::<Fill>().is_err(), "{bad}");
        }
    }

    #[test]
    fn blocks_agree_with_the_whole() {
        let shape = [5u64, 3, 4];
        for fill in [
            Fill::Range,
            Fill::Uniform,
            Fill::Normal,
            Fill::LowRank {
                rank: 3,
                noise: 0.1,
            },
        ] {
            let g = Generator::new(fill, &shape, 11).unwrap();
            let whole = full::<f64>(&g, &shape);
            let region = Region::new(vec![1, 1, 2], vec![3, 2, 2]);
            assert_eq!(g.block::<f64>(&region), whole.extract(&region), "{fill}");
        }
    }

    #[test]
    fn low_rank_without_noise_is_the_factor_model() {
        let shape = [4u64, 3, 2];
        let g = Generator::new(
            Fill::LowRank {
                rank: 2,
                noise: 0.0,
            },
            &shape,
            5,
        )
        .unwrap();
        let m = g.low_rank.as_ref().unwrap();
        let x = full::<f64>(&g, &shape);
        for i in 0..4usize {
            for j in 0..3usize {
                for k in 0..2usize {
                    let want: f64 = (0..2)
                        .map(|r| {
                            m.factors[0][i * 2 + r]
                                * m.factors[1][j * 2 + r]
                                * m.factors[2][k * 2 + r]
                        })
                        .sum();
                    let got = x.get(&[i as u64, j as u64, k as u64]);
                    assert!((got - want).abs() <= 1e-15 * want.abs(), "{got} vs {want}");
                }
            }
        }
        // The norm formula matches the tensor.
        let noisy = Generator::new(
            Fill::LowRank {
                rank: 2,
                noise: 1.0,
            },
            &shape,
            5,
        )
        .unwrap();
        let rms = (x.as_slice().iter().map(|v| v * v).sum::<f64>() / 24.0).sqrt();
        assert!((noisy.noise_std().unwrap() - rms).abs() < 1e-12 * rms);
    }

    #[test]
    fn f32_is_the_rounded_f64() {
        let g = Generator::new(Fill::Normal, &[10], 3).unwrap();
        let a = full::<f64>(&g, &[10]);
        let b = full::<f32>(&g, &[10]);
        for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
            assert_eq!(*x as f32, *y);
        }
    }
}
