//! [`tucker`]: Tucker decomposition by HOSVD and HOOI, out of core, with
//! TensorLy's parameters and its sequence of updates.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::core::shape::join_dims;
use crate::core::{Error, Result};
use crate::decomp::checkpoint::{self, Checkpoint};
use crate::decomp::chunk_kernels::TuckerProjection;
use crate::decomp::cp_als::{NamedProgress, load_factors};
use crate::decomp::hosvd::{ModeVectors, leading_mode_vectors};
use crate::decomp::linalg::leading_left_singular_vectors;
use crate::decomp::matrix::write_npy_values;
use crate::decomp::model_memory::{ModelMemory, saturating_product, saturating_sum};
use crate::decomp::on_root::{on_root, root_decides};
use crate::decomp::stream::{ResidentTensor, stream_accumulate_held};
use crate::decomp::{DecompositionRun, Iteration, Matrix, tensor_norm};
use crate::decomp::{decomp_span, iteration_span};
use crate::exec::{Progress, Session};
use crate::io::read_npy_values;
use crate::io::{ArrayRef, IntoArrayRef, ReadableArray};
use crate::ops::CounterRng;
use crate::store::check_output_not_input;

/// A Tucker model: `X ≈ G ×₀ U₀ ×₁ U₁ …`.
#[derive(Debug, Clone, PartialEq)]
pub struct TuckerModel {
    /// Shape of the core `G` (the ranks).
    pub core_shape: Vec<usize>,
    /// The core, C order.
    pub core: Vec<f64>,
    /// One `I_m × r_m` factor per mode.
    pub factors: Vec<Matrix>,
}

impl TuckerModel {
    /// Reads `factor_0.npy`, … and `core.npy` from `dir`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when they do not agree; file errors.
    pub fn load(dir: &Path) -> Result<Self> {
        let factors = load_factors(dir)?;
        let (shape, core) = read_npy_values(&dir.join("core.npy"))?;
        if shape.contains(&0) {
            return Err(Error::invalid(format!(
                "{}: core.npy has an empty axis",
                dir.display()
            )));
        }
        let core_shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
        let ranks: Vec<usize> = factors.iter().map(Matrix::cols).collect();
        if core_shape != ranks {
            return Err(Error::invalid(format!(
                "{}: core.npy has shape {core_shape:?} but the factors have ranks {ranks:?}",
                dir.display()
            )));
        }
        Ok(Self {
            core_shape,
            core,
            factors,
        })
    }

    /// Writes `factor_k.npy` and `core.npy` into `dir` (each atomically).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (k, f) in self.factors.iter().enumerate() {
            f.write_npy(&dir.join(format!("factor_{k}.npy")))?;
        }
        let shape: Vec<u64> = self.core_shape.iter().map(|d| *d as u64).collect();
        write_npy_values(&dir.join("core.npy"), &shape, &self.core)
    }

    /// The ranks.
    pub fn ranks(&self) -> Vec<usize> {
        self.factors.iter().map(Matrix::cols).collect()
    }
}

/// How Tucker starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TuckerInit {
    /// Streamed HOSVD: leading left singular vectors of each unfolding.
    #[default]
    Svd,
    /// Factors uniform in `[0, 1)`, drawn from the seed.
    Random,
    /// A given model (its factors start HOOI).
    Given(TuckerModel),
    /// Given factors alone (TensorLy's third form of `init`): HOOI starts
    /// from them and computes the core in its first iteration.
    Factors(Vec<Matrix>),
}

/// Parameters of [`tucker`], named as in TensorLy's `tucker`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TuckerOptions {
    /// The rank of each mode.
    pub ranks: Vec<usize>,
    /// Most HOOI iterations (at least 1: the core comes from the last one).
    pub n_iter_max: usize,
    /// Stop when the relative error changes by less than this (checked from
    /// the third iteration on, as TensorLy does; 0: run all iterations).
    pub tol: f64,
    /// The starting point.
    pub init: TuckerInit,
    /// Seed of the random init (and of randomized range finders).
    pub seed: u64,
    /// Write a checkpoint into this directory after every iteration.
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint in [`checkpoint`](Self::checkpoint).
    pub resume: bool,
    /// Hold the tensor in memory across passes when its `f64` values take
    /// at most half the memory limit (else, or when false, every pass
    /// streams it from the store).
    pub hold_in_memory: bool,
}

impl TuckerOptions {
    /// TensorLy's defaults for `ranks`: 100 iterations, `tol` 1e-4, SVD init.
    pub fn new(ranks: Vec<usize>) -> Self {
        Self {
            ranks,
            n_iter_max: 100,
            tol: 1e-4,
            init: TuckerInit::Svd,
            seed: 0,
            checkpoint: None,
            resume: false,
            hold_in_memory: true,
        }
    }

    /// Sets the rank of each mode.
    pub fn with_ranks(mut self, ranks: Vec<usize>) -> Self {
        self.ranks = ranks;
        self
    }

    /// Sets the most HOOI iterations.
    pub fn with_n_iter_max(mut self, n_iter_max: usize) -> Self {
        self.n_iter_max = n_iter_max;
        self
    }

    /// Sets the tolerance on the change of the relative error.
    pub fn with_tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the starting point.
    pub fn with_init(mut self, init: TuckerInit) -> Self {
        self.init = init;
        self
    }

    /// Sets the seed of the random init.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Writes a checkpoint into `dir` after every iteration.
    pub fn with_checkpoint(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(dir.into());
        self
    }

    /// Sets whether to continue from the checkpoint.
    pub fn with_resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Sets whether the tensor may be held in memory across passes.
    pub fn with_hold_in_memory(mut self, hold_in_memory: bool) -> Self {
        self.hold_in_memory = hold_in_memory;
        self
    }

    /// What a checkpoint must agree on to be resumed with these options.
    fn fingerprint(&self, x: &dyn ReadableArray) -> Value {
        json!({
            "kind": "tucker",
            "shape": x.shape(),
            "chunks": x.chunk_grid().chunk_shape(),
            "dtype": x.dtype().to_string(),
            "ranks": self.ranks,
        })
    }
}

/// What [`tucker`] did.
#[derive(Debug, Clone)]
pub struct TuckerReport {
    /// The model.
    pub model: TuckerModel,
    /// The iterations and why the run stopped.
    pub run: DecompositionRun,
}

impl TuckerReport {
    /// The fit `1 − ‖X − X̂‖/‖X‖` after the last iteration.
    pub fn fit(&self) -> Option<f64> {
        self.run.fit()
    }
}

/// Tucker decomposition of the stored tensor `x` (HOSVD, then HOOI),
/// streaming `x` from disk under the session's memory limit.
///
/// HOOI updates mode `n` from `Y = X ×_{k≠n} U_kᵀ` (one streamed pass, each
/// chunk multiplied by the other factors' row blocks by GEMM) and the
/// leading left singular vectors of `Y₍ₙ₎`; the core follows from the last
/// mode's `Y` without another pass, and the fit from `‖X‖² − ‖G‖²`.
/// `on_iteration` sees every completed iteration and its model.
///
/// # Errors
/// [`Error::InvalidArgument`] for ranks that do not fit the shape, a
/// mismatching init or checkpoint; [`Error::MemoryLimit`]; store errors.
pub fn tucker(
    session: &Session,
    x: &impl IntoArrayRef,
    opts: &TuckerOptions,
    on_iteration: &mut dyn FnMut(&Iteration, &TuckerModel) -> ControlFlow<()>,
    progress: &dyn Progress,
) -> Result<TuckerReport> {
    let x = &x.array_ref();
    let ranks_of_job = session.ranks();
    let shape = x.shape().to_vec();
    let ndim = shape.len();
    if ndim < 2 {
        return Err(Error::invalid("Tucker needs a tensor of at least 2 modes"));
    }
    if opts.ranks.len() != ndim {
        return Err(Error::invalid(format!(
            "{} ranks given for a tensor of {ndim} modes",
            opts.ranks.len()
        )));
    }
    for (m, (&r, &i)) in opts.ranks.iter().zip(&shape).enumerate() {
        if r == 0 || r as u64 > i {
            return Err(Error::invalid(format!(
                "rank {r} of mode {m} must be between 1 and the mode's extent {i}"
            )));
        }
    }
    let ranks: Vec<u64> = opts.ranks.iter().map(|&r| r as u64).collect();
    // The product of every rank but mode m's (the projection's columns).
    let others = |m: usize| {
        saturating_product(
            ranks
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != m)
                .map(|(_, r)| *r),
        )
    };
    for (m, &r) in ranks.iter().enumerate() {
        let others = others(m);
        if r > others {
            return Err(Error::invalid(format!(
                "rank {r} of mode {m} exceeds the product of the other ranks ({others}): HOOI's projection of that mode has only {others} columns"
            )));
        }
    }
    if opts.n_iter_max == 0 {
        return Err(Error::invalid(
            "Tucker needs at least one iteration (n_iter_max ≥ 1)",
        ));
    }
    // Refuse what cannot fit before anything is allocated or read.
    let mut memory = ModelMemory::default();
    let projection = |m: usize| shape[m].saturating_mul(others(m));
    let svd = |m: usize| {
        let side = shape[m].min(others(m));
        side.saturating_mul(side).saturating_mul(2)
    };
    memory
        .add(
            "factors",
            saturating_sum(shape.iter().zip(&ranks).map(|(i, r)| i.saturating_mul(*r))),
        )
        .add("core", saturating_product(ranks.iter().copied()))
        .add(
            "mode projection",
            (0..ndim).map(projection).max().unwrap_or(0),
        )
        .add("its SVD workspace", (0..ndim).map(svd).max().unwrap_or(0));
    memory.check(
        &format!(
            "Tucker of ranks {} on {}",
            join_dims(&ranks),
            join_dims(&shape)
        ),
        x.chunk_grid().chunk_elements().saturating_mul(8),
        session.memory_limit(),
    )?;
    let _operation = decomp_span(session, "tucker", &shape, &opts.ranks).entered();
    let started = Instant::now();
    let mut iterations: Vec<Iteration> = Vec::new();
    let mut resumed_after = None;
    if let Some(dir) = &opts.checkpoint {
        check_output_not_input(dir, &[x.path()])?;
    }
    let resumed = checkpoint::start(
        opts.checkpoint.as_deref(),
        opts.resume,
        ranks_of_job.is_root(),
    )?;
    let fingerprint = opts.fingerprint(&**x);
    let mut converged = false;
    let mut stopped_early = false;
    let (mut model, norm) = if let Some(ckpt) = resumed {
        let (history, norm, done) = checkpoint::restore(&ckpt, &fingerprint)?;
        iterations = history;
        converged = done;
        resumed_after = Some(ckpt.iteration);
        let (core_shape, core) = ckpt
            .arrays
            .into_iter()
            .find(|(a, _, _)| a == "core")
            .map(|(_, s, v)| (s.iter().map(|d| *d as usize).collect(), v))
            .ok_or_else(|| Error::invalid("the checkpoint has no core"))?;
        (
            TuckerModel {
                core_shape,
                core,
                factors: ckpt.factors,
            },
            norm,
        )
    } else {
        let norm = tensor_norm(session, x, progress)?;
        (initial_model(session, x, opts, progress)?, norm)
    };
    if model.factors.len() != ndim || model.core_shape != opts.ranks {
        return Err(Error::invalid(format!(
            "the initial model has {} factors and a core of shape {:?}; this tensor needs {ndim} and ranks {:?}",
            model.factors.len(),
            model.core_shape,
            opts.ranks
        )));
    }
    for (m, f) in model.factors.iter().enumerate() {
        if f.rows() as u64 != shape[m] || f.cols() != opts.ranks[m] {
            return Err(Error::invalid(format!(
                "initial factor {m} is {}×{}, expected {}×{}",
                f.rows(),
                f.cols(),
                shape[m],
                opts.ranks[m]
            )));
        }
    }
    let resident = if opts.hold_in_memory {
        ResidentTensor::load_if_small(session, &**x, progress)?
    } else {
        None
    };
    let init_seconds = started.elapsed().as_secs_f64();
    let first = if converged {
        opts.n_iter_max
    } else {
        iterations.len()
    };
    for iteration in first..opts.n_iter_max {
        session.cancel_token().check()?;
        let iteration_span = iteration_span(iteration + 1).entered();
        let t0 = Instant::now();
        let read0 = session.metrics().bytes_read.get();
        let mut last_projection = (Matrix::zeros(0, 0), None);
        for mode in 0..ndim {
            let fit = iterations
                .last()
                .map_or(String::new(), |i| format!(", fit {:.6}", i.fit));
            let label = format!(
                "Tucker iteration {}/{}{fit} (pass {}/{ndim})",
                iteration + 1,
                opts.n_iter_max,
                mode + 1
            );
            let kernel = TuckerProjection {
                factors: &model.factors,
                mode,
            };
            // The previous mode's projection is released before this pass.
            drop(std::mem::replace(
                &mut last_projection,
                (Matrix::zeros(0, 0), None),
            ));
            let (y, held) = stream_accumulate_held(
                session,
                x,
                resident.as_ref(),
                &[mode],
                &kernel,
                &label,
                &NamedProgress::new(progress, &label),
            )?;
            // Decomposed once (rank 0) and sent to every rank as bits.
            let u = on_root(ranks_of_job, || {
                Ok(vec![leading_left_singular_vectors(&y, opts.ranks[mode])?.0])
            })?;
            model.factors[mode] = u
                .into_iter()
                .next()
                .ok_or_else(|| Error::internal("rank 0 sent no factor"))?;
            last_projection = (y, Some(held));
        }
        // G₍ₙ₎ = Uₙᵀ Y₍ₙ₎ for the last mode n; G in C order is its transpose.
        let last = &model.factors[ndim - 1];
        let core = on_root(ranks_of_job, || {
            Ok(vec![
                last.transpose().matmul(&last_projection.0).transpose(),
            ])
        })?;
        model.core = core
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("rank 0 sent no core"))?
            .into_vec();
        model.core_shape = opts.ranks.clone();
        let core_sq: f64 = model.core.iter().map(|v| v * v).sum();
        let rec_error = (norm * norm - core_sq).abs().sqrt() / norm;
        let info = Iteration {
            iteration: iteration + 1,
            fit: 1.0 - rec_error,
            rec_error,
            seconds: t0.elapsed().as_secs_f64(),
            bytes_read: session.metrics().bytes_read.get() - read0,
            passes: ndim,
        };
        info.record_in(&iteration_span);
        // TensorLy checks from the third iteration on.
        let n = iterations.len();
        converged =
            opts.tol > 0.0 && n >= 2 && (iterations[n - 1].rec_error - rec_error).abs() < opts.tol;
        stopped_early = root_decides(ranks_of_job, on_iteration(&info, &model).is_break());
        iterations.push(info);
        if let Some(dir) = opts.checkpoint.as_ref().filter(|_| ranks_of_job.is_root()) {
            let core_shape: Vec<u64> = model.core_shape.iter().map(|d| *d as u64).collect();
            checkpoint::save(
                dir,
                &Checkpoint {
                    iteration: iteration + 1,
                    state: json!({
                        "options": fingerprint,
                        "norm": norm,
                        "converged": converged,
                        "iterations": iterations.iter().map(Iteration::to_json).collect::<Vec<_>>(),
                    }),
                    factors: model.factors.clone(),
                    arrays: vec![("core".into(), core_shape, model.core.clone())],
                },
            )?;
        }
        if converged || stopped_early {
            break;
        }
    }
    Ok(TuckerReport {
        model,
        run: DecompositionRun {
            iterations,
            converged,
            stopped_early,
            norm,
            init_seconds,
            passes_per_iteration: ndim,
            resumed_after,
        },
    })
}

fn initial_model(
    session: &Session,
    x: &ArrayRef,
    opts: &TuckerOptions,
    progress: &dyn Progress,
) -> Result<TuckerModel> {
    let core_len: usize = opts.ranks.iter().product();
    match &opts.init {
        TuckerInit::Given(model) => Ok(model.clone()),
        // As after the SVD start: HOOI needs only the factors.
        TuckerInit::Factors(factors) => Ok(TuckerModel {
            core_shape: opts.ranks.clone(),
            core: vec![0.0; core_len],
            factors: factors.clone(),
        }),
        TuckerInit::Random => {
            let rng = CounterRng::new(opts.seed);
            let factors = x
                .shape()
                .iter()
                .zip(&opts.ranks)
                .enumerate()
                .map(|(m, (&i, &r))| {
                    let v = (0..i * r as u64)
                        .map(|e| rng.uniform(m as u32, e))
                        .collect();
                    Matrix::from_vec(i as usize, r, v)
                })
                .collect::<Result<Vec<_>>>()?;
            let core = (0..core_len as u64)
                .map(|e| rng.uniform(x.shape().len() as u32, e))
                .collect();
            Ok(TuckerModel {
                core_shape: opts.ranks.clone(),
                core,
                factors,
            })
        }
        TuckerInit::Svd => {
            let mut factors = Vec::new();
            for (mode, &r) in opts.ranks.iter().enumerate() {
                let label = format!("Tucker init: leading vectors of mode {mode}");
                let (u, _, _) = leading_mode_vectors(
                    session,
                    x,
                    ModeVectors {
                        mode,
                        count: r,
                        seed: opts.seed,
                    },
                    &NamedProgress::new(progress, &label),
                )?;
                factors.push(u);
            }
            Ok(TuckerModel {
                core_shape: opts.ranks.clone(),
                core: vec![0.0; core_len],
                factors,
            })
        }
    }
}
