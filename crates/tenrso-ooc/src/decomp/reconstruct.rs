//! CP and Tucker models written back as stored tensors, chunk by chunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::{Block, ChunkGrid, Element, Region, Result};
use crate::decomp::chunk_kernels::{khatri_rao_rows, mode_product};
use crate::decomp::{CpModel, Matrix, TuckerModel};
use crate::exec::{Progress, Session, TaskSet, for_each_owned_task};
use crate::ops::{ChunkPlan, Planned};
use crate::store::{ArraySpec, ZarrArray};
use crate::{MatView, matmul_add};

/// A decomposition model to write back as a tensor.
#[derive(Debug, Clone)]
pub enum Model {
    /// A CP model: weights and factors.
    Cp(CpModel),
    /// A Tucker model: core and factors.
    Tucker(TuckerModel),
}

impl Model {
    fn factors(&self) -> &[Matrix] {
        match self {
            Self::Cp(m) => &m.factors,
            Self::Tucker(m) => &m.factors,
        }
    }

    /// What identifies the model in the array it is written to: its kind
    /// and a hash of every value's bits.
    fn record(&self) -> Value {
        let (kind, extra) = match self {
            Self::Cp(m) => ("cp", &m.weights),
            Self::Tucker(m) => ("tucker", &m.core),
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for f in self.factors() {
            hasher.update(&(f.rows() as u64).to_le_bytes());
            hasher.update(&(f.cols() as u64).to_le_bytes());
            f.as_slice()
                .iter()
                .for_each(|v| hasher.update(&v.to_le_bytes()));
        }
        extra.iter().for_each(|v| hasher.update(&v.to_le_bytes()));
        json!({ "model": kind, "xxh3": format!("{:016x}", hasher.digest()) })
    }
}

/// Writes the full tensor of a CP or Tucker model into a new stored array,
/// one chunk per task. A CP chunk is `(F₀ block · diag w) · KR(other
/// blocks)ᵀ`, one GEMM; a Tucker chunk is the core multiplied on every mode
/// by the factors' row blocks. A run that fails removes its partial
/// output; one cancelled or killed leaves complete chunks, and
/// [`with_resume`](Self::with_resume) writes the rest (with any number of
/// ranks) — the model, recorded in the array, must be the same.
///
/// ```
/// use tenrso_ooc::decomp::{CpModel, Matrix, Reconstruct};
/// use tenrso_ooc::exec::Session;
/// use tenrso_ooc::store::ArraySpec;
/// use tenrso_ooc::DType;
/// # let dir = tempfile::tempdir()?;
/// let factors = vec![Matrix::from_vec(3, 1, vec![1.0, 2.0, 3.0])?, Matrix::from_vec(2, 1, vec![1.0, 1.0])?];
/// let model = CpModel { weights: vec![2.0], factors };
/// let spec = ArraySpec::new(vec![3, 2], vec![2, 2], DType::F64);
/// let x = Reconstruct::cp(&model, dir.path().join("x"), spec).plan(&Session::default())?.run()?;
/// assert_eq!(x.read_chunk::<f64>(&[1, 0])?.as_slice(), &[6.0, 6.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reconstruct {
    model: Model,
    out: PathBuf,
    spec: ArraySpec,
    resume: bool,
}

impl Reconstruct {
    /// Writes `model` into a new array at `out` with `spec`'s chunking and
    /// codecs (its shape must be the model's).
    pub fn new(model: Model, out: impl Into<PathBuf>, spec: ArraySpec) -> Self {
        Self {
            model,
            out: out.into(),
            spec,
            resume: false,
        }
    }

    /// Continues an interrupted reconstruction into the same output: the
    /// chunks on disk are kept, the others written.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// [`new`](Self::new) for a CP model.
    pub fn cp(model: &CpModel, out: impl Into<PathBuf>, spec: ArraySpec) -> Self {
        Self::new(Model::Cp(model.clone()), out, spec)
    }

    /// [`new`](Self::new) for a Tucker model.
    pub fn tucker(model: &TuckerModel, out: impl Into<PathBuf>, spec: ArraySpec) -> Self {
        Self::new(Model::Tucker(model.clone()), out, spec)
    }

    /// Plans the reconstruction.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] when the output's shape is not the
    /// model's or its layout is invalid.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, ChunkPlan, Arc<ZarrArray>>> {
        let shape: Vec<u64> = self
            .model
            .factors()
            .iter()
            .map(|f| f.rows() as u64)
            .collect();
        if self.spec.shape != shape {
            return Err(crate::Error::invalid(format!(
                "the model's shape is {shape:?}, the output's {:?}",
                self.spec.shape
            )));
        }
        self.spec.validate()?;
        let grid = ChunkGrid::new(shape.clone(), self.spec.chunk_shape.clone())?;
        // A chunk in f64, its intermediates (at most two more of its size)
        // and the encoded copy.
        let per_task = 4 * grid.chunk_elements() * 8;
        let plan = ChunkPlan {
            operation: format!(
                "reconstruct a {} model into {}",
                match self.model {
                    Model::Cp(_) => "CP",
                    Model::Tucker(_) => "Tucker",
                },
                self.out.display()
            ),
            tasks: grid.num_chunks(),
            bytes_read: 0,
            bytes_written: grid.shape().num_elements() * self.spec.dtype.size() as u64,
            task_bytes: per_task,
            memory_limit: session.memory_limit(),
        };
        let request = self.clone();
        Ok(Planned::new(plan, move |plan: &ChunkPlan, progress| {
            let target = Target {
                out: &request.out,
                spec: &request.spec,
                resume: request.resume,
                record: request.model.record(),
            };
            let tasks = TaskSet {
                count: plan.tasks as usize,
                bytes_each: plan.task_bytes,
                what: "reconstructing one chunk",
            };
            session.options().check_fits(tasks.bytes_each, tasks.what)?;
            let array = match &request.model {
                Model::Cp(model) => {
                    write_model(session, &target, tasks, progress, |r| cp_block(model, r))
                }
                Model::Tucker(model) => write_model(session, &target, tasks, progress, |r| {
                    tucker_block(model, r)
                }),
            }?;
            Ok(Arc::new(array))
        }))
    }
}

/// The values of `region` of a CP model's tensor.
fn cp_block(model: &CpModel, region: &Region) -> Result<Vec<f64>> {
    let rank = model.rank();
    let d: Vec<usize> = region.shape().iter().map(|v| *v as usize).collect();
    let c0 = d[0];
    let rest: usize = d[1..].iter().product();
    let start0 = region.start()[0] as usize;
    let mut first = Matrix::from_vec(c0, rank, model.factors[0].row_block(start0, c0).to_vec())?;
    first.scale_columns(&model.weights);
    let kr = khatri_rao_rows(&model.factors, region, 1..d.len(), rank);
    let mut block = vec![0.0; c0 * rest];
    matmul_add(
        &mut block,
        first.view(),
        MatView::transposed(&kr, rank, rest),
        1,
    );
    Ok(block)
}

/// The values of `region` of a Tucker model's tensor.
fn tucker_block(model: &TuckerModel, region: &Region) -> Result<Vec<f64>> {
    let mut d = model.core_shape.clone();
    let mut y = model.core.clone();
    for m in 0..d.len() {
        let (start, len) = (region.start()[m] as usize, region.shape()[m] as usize);
        let u = model.factors[m].row_block(start, len);
        y = mode_product(&y, &d, m, MatView::row_major(u, len, d[m]));
        d[m] = len;
    }
    Ok(y)
}

/// Where a model is written, and what identifies it there.
struct Target<'a> {
    out: &'a Path,
    spec: &'a ArraySpec,
    resume: bool,
    record: Value,
}

/// The array attribute naming the model a reconstruction wrote.
const RECORD_ATTRIBUTE: &str = "tenrso_reconstruct";

fn write_model<F>(
    session: &Session,
    target: &Target<'_>,
    tasks: TaskSet<'_>,
    progress: &dyn Progress,
    block: F,
) -> Result<ZarrArray>
where
    F: Fn(&Region) -> Result<Vec<f64>> + Sync,
{
    let Target {
        out,
        spec,
        resume,
        ref record,
    } = *target;
    // Rank 0 creates the output; the others open it once it exists, and
    // each writes its share of the chunks.
    let ranks = session.ranks();
    let created = ranks
        .is_root()
        .then(|| -> Result<ZarrArray> {
            let mut array = if resume {
                ZarrArray::create_or_resume(out, spec)?
            } else {
                ZarrArray::create(out, spec)?
            };
            array.record_job(RECORD_ATTRIBUTE, record.clone(), resume)?;
            Ok(array)
        })
        .transpose()?;
    if ranks.is_distributed() {
        ranks.barrier();
    }
    let array = match created {
        Some(array) => array,
        None => ZarrArray::open(out)?,
    };
    let grid = array.chunk_grid().clone();
    progress.start("reconstruct", array.nbytes() / ranks.size() as u64);
    array.set_durability(session.options().durability);
    let result = crate::dispatch_dtype!(array.dtype(), T => {
        for_each_owned_task(session, tasks, progress, |i| {
            let coords = grid.chunk_coords(i as u64);
            if resume && array.chunk_exists(&coords)? {
                return Ok(array.nbytes_of(&coords));
            }
            let region = grid.chunk_region(&coords);
            let values = block(&region)?;
            let data: Vec<T> = values.into_iter().map(T::from_f64).collect();
            let b = Block::from_vec(region.shape().to_vec(), data)?;
            array.write_chunk(&coords, &b)?;
            session.metrics().bytes_written.add(b.byte_len() as u64);
            Ok(b.byte_len() as u64)
        })
    });
    // What was written is committed, also after a failure (for `--resume`).
    let result = result.and(array.end_writes());
    progress.finish();
    if let Err(e) = result {
        if ranks.is_root() && !resume && !matches!(e, crate::Error::Cancelled) {
            let _ = std::fs::remove_dir_all(out);
        }
        return Err(e);
    }
    // Every rank's chunks are written when any rank returns.
    if ranks.is_distributed() {
        ranks.barrier();
    }
    Ok(array)
}
