//! [`cp_als`]: CP decomposition by alternating least squares, out of core,
//! with TensorLy's parameters and its sequence of updates.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::core::shape::join_dims;
use crate::core::{Error, Result};
use crate::decomp::checkpoint::{self, Checkpoint};
use crate::decomp::hosvd::{ModeVectors, leading_mode_vectors};
use crate::decomp::linalg::solve_right_spd;
use crate::decomp::model_memory::{ModelMemory, saturating_sum};
use crate::decomp::mttkrp::{
    best_split, check_factors, left_partial, mode_mttkrp, mttkrp_from_partial, right_partial,
};
use crate::decomp::on_root::{on_root, root_decides};
use crate::decomp::stream::ResidentTensor;
use crate::decomp::{DecompositionRun, Iteration, Matrix, tensor_norm};
use crate::decomp::{decomp_span, iteration_span};
use crate::exec::{Progress, Session};
use crate::io::{ArrayRef, IntoArrayRef, ReadableArray};
use crate::memory::Reservation;
use crate::ops::CounterRng;
use crate::store::check_output_not_input;

/// A CP model: `X ≈ Σ_r weights[r] · F₀[:, r] ∘ F₁[:, r] ∘ …`.
#[derive(Debug, Clone, PartialEq)]
pub struct CpModel {
    /// One weight per component.
    pub weights: Vec<f64>,
    /// One `I_m × R` factor per mode.
    pub factors: Vec<Matrix>,
}

impl CpModel {
    /// The rank `R`.
    pub fn rank(&self) -> usize {
        self.weights.len()
    }

    /// Reads `factor_0.npy`, `factor_1.npy`, … (as many as exist) and
    /// `weights.npy` (ones when absent) from `dir`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when there is no factor or the ranks
    /// disagree; file errors.
    pub fn load(dir: &Path) -> Result<Self> {
        let factors = load_factors(dir)?;
        let rank = factors[0].cols();
        if rank == 0 {
            return Err(Error::invalid(format!(
                "{}: factor_0.npy has no columns",
                dir.display()
            )));
        }
        if let Some((k, f)) = factors.iter().enumerate().find(|(_, f)| f.cols() != rank) {
            return Err(Error::invalid(format!(
                "{}: factor_{k}.npy has {} columns but factor_0.npy has {rank}",
                dir.display(),
                f.cols()
            )));
        }
        let weights_path = dir.join("weights.npy");
        let weights = if weights_path.exists() {
            let w = Matrix::read_npy(&weights_path)?.into_vec();
            if w.len() != rank {
                return Err(Error::invalid(format!(
                    "{}: {} weights for rank {rank}",
                    weights_path.display(),
                    w.len()
                )));
            }
            w
        } else {
            vec![1.0; rank]
        };
        Ok(Self { weights, factors })
    }

    /// Writes `factor_k.npy` and `weights.npy` into `dir` (each atomically).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (k, f) in self.factors.iter().enumerate() {
            f.write_npy(&dir.join(format!("factor_{k}.npy")))?;
        }
        crate::decomp::matrix::write_npy_values(
            &dir.join("weights.npy"),
            &[self.rank() as u64],
            &self.weights,
        )
    }

    /// `‖X̂‖² = Σ_{r,s} w_r w_s Π_m (F_mᵀF_m)[r, s]`, from the Gram matrices.
    pub fn norm_squared(&self) -> f64 {
        let grams: Vec<Matrix> = self.factors.iter().map(Matrix::gram).collect();
        model_norm_squared(&self.weights, &grams)
    }
}

/// Reads `factor_0.npy`, `factor_1.npy`, … from `dir`.
pub(crate) fn load_factors(dir: &Path) -> Result<Vec<Matrix>> {
    let mut factors = Vec::new();
    while dir.join(format!("factor_{}.npy", factors.len())).exists() {
        factors.push(Matrix::read_npy(
            &dir.join(format!("factor_{}.npy", factors.len())),
        )?);
    }
    if factors.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no factor_0.npy to start from",
            dir.display()
        )));
    }
    Ok(factors)
}

fn model_norm_squared(weights: &[f64], grams: &[Matrix]) -> f64 {
    let rank = weights.len();
    let mut total = 0.0;
    for r in 0..rank {
        for s in 0..rank {
            let g: f64 = grams.iter().map(|g| g.get(r, s)).product();
            total += weights[r] * weights[s] * g;
        }
    }
    total
}

/// How CP-ALS starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum CpInit {
    /// Factors uniform in `[0, 1)`, drawn from the seed.
    Random,
    /// Leading left singular vectors of each unfolding (streamed HOSVD);
    /// mode 0's scaled by the singular values, as TensorLy does.
    #[default]
    Svd,
    /// A given model (e.g. [`CpModel::load`] of `.npy` files).
    Given(CpModel),
}

/// How the MTTKRPs of one ALS sweep are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SweepStrategy {
    /// Two passes when the partial contraction takes at most a quarter of
    /// the memory limit, else one pass per mode.
    #[default]
    Auto,
    /// One streamed MTTKRP per mode: `N` passes per iteration.
    PerMode,
    /// Two passes per iteration, whatever the order `N`: the first contracts
    /// the trailing modes against their (current) factors into a partial
    /// `P` held in memory, from which every leading mode's MTTKRP follows as
    /// its factor is updated; the second contracts the leading modes
    /// (updated) into `Q` for the trailing modes. Exact: the same products
    /// in another order.
    TwoPass,
}

/// When [`cp_als`] has converged, as TensorLy's `cvg_criterion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CvgCriterion {
    /// The relative error changed by less than `tol`, either way
    /// (`"abs_rec_error"`).
    #[default]
    AbsRecError,
    /// The relative error went down by less than `tol`, or went up
    /// (`"rec_error"`).
    RecError,
}

impl std::str::FromStr for CvgCriterion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "abs_rec_error" => Ok(Self::AbsRecError),
            "rec_error" => Ok(Self::RecError),
            other => Err(Error::invalid(format!(
                "cvg_criterion '{other}': expected 'abs_rec_error' or 'rec_error'"
            ))),
        }
    }
}

impl CvgCriterion {
    /// Whether going from `previous` to `current` has converged.
    fn converged(self, previous: f64, current: f64, tol: f64) -> bool {
        let decrease = previous - current;
        match self {
            Self::AbsRecError => decrease.abs() < tol,
            Self::RecError => decrease < tol,
        }
    }
}

/// Parameters of [`cp_als`], named as in TensorLy's `parafac`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CpOptions {
    /// Number of components.
    pub rank: usize,
    /// Most iterations.
    pub n_iter_max: usize,
    /// Stop when the relative reconstruction error changes by less than
    /// this between iterations (0: run all iterations).
    pub tol: f64,
    /// How the change of the error is compared with `tol`.
    pub cvg_criterion: CvgCriterion,
    /// The starting point.
    pub init: CpInit,
    /// Seed of the random init (and of the randomized range finder).
    pub seed: u64,
    /// Scale factor columns to unit norm after each iteration (and after a
    /// computed start), magnitudes in the weights, as TensorLy does.
    pub normalize_factors: bool,
    /// Ridge (L2) regularisation added to the normal equations.
    pub l2_reg: f64,
    /// How the MTTKRPs of a sweep are computed.
    pub sweep: SweepStrategy,
    /// Write a checkpoint into this directory after every iteration.
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint in [`checkpoint`](Self::checkpoint).
    pub resume: bool,
    /// Hold the tensor in memory across passes when its `f64` values take
    /// at most half the memory limit (else, or when false, every pass
    /// streams it from the store).
    pub hold_in_memory: bool,
    /// Before the first iteration, call back with the starting model and
    /// its error as iteration 0, as TensorLy's `parafac` does when given a
    /// `callback`: one extra pass over the tensor (none after a resume).
    pub report_initial: bool,
}

impl CpOptions {
    /// TensorLy's defaults for `rank`: 100 iterations, `tol` 1e-8, SVD init.
    pub fn new(rank: usize) -> Self {
        Self {
            rank,
            n_iter_max: 100,
            tol: 1e-8,
            cvg_criterion: CvgCriterion::AbsRecError,
            init: CpInit::Svd,
            seed: 0,
            normalize_factors: false,
            l2_reg: 0.0,
            sweep: SweepStrategy::Auto,
            checkpoint: None,
            resume: false,
            hold_in_memory: true,
            report_initial: false,
        }
    }

    /// Sets the number of components.
    pub fn with_rank(mut self, rank: usize) -> Self {
        self.rank = rank;
        self
    }

    /// Sets the most iterations.
    pub fn with_n_iter_max(mut self, n_iter_max: usize) -> Self {
        self.n_iter_max = n_iter_max;
        self
    }

    /// Sets the tolerance on the change of the relative error.
    pub fn with_tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Sets how the change of the error is compared with `tol`.
    pub fn with_cvg_criterion(mut self, cvg_criterion: CvgCriterion) -> Self {
        self.cvg_criterion = cvg_criterion;
        self
    }

    /// Sets the starting point.
    pub fn with_init(mut self, init: CpInit) -> Self {
        self.init = init;
        self
    }

    /// Sets the seed of the random init.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets whether factor columns are scaled to unit norm.
    pub fn with_normalize_factors(mut self, normalize_factors: bool) -> Self {
        self.normalize_factors = normalize_factors;
        self
    }

    /// Sets the ridge regularisation.
    pub fn with_l2_reg(mut self, l2_reg: f64) -> Self {
        self.l2_reg = l2_reg;
        self
    }

    /// Sets how the MTTKRPs of a sweep are computed.
    pub fn with_sweep(mut self, sweep: SweepStrategy) -> Self {
        self.sweep = sweep;
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

    /// Sets whether the starting model is reported as iteration 0.
    pub fn with_report_initial(mut self, report_initial: bool) -> Self {
        self.report_initial = report_initial;
        self
    }

    /// What a checkpoint must agree on to be resumed with these options:
    /// everything that changes the arithmetic (the input's layout and the
    /// resolved sweep fix the summation order).
    fn fingerprint(&self, x: &dyn ReadableArray, two_pass: bool) -> Value {
        json!({
            "kind": "cp",
            "shape": x.shape(),
            "chunks": x.chunk_grid().chunk_shape(),
            "dtype": x.dtype().to_string(),
            "rank": self.rank,
            "normalize_factors": self.normalize_factors,
            "l2_reg": self.l2_reg,
            "two_pass": two_pass,
        })
    }
}

/// What [`cp_als`] did.
#[derive(Debug, Clone)]
pub struct CpReport {
    /// The model.
    pub model: CpModel,
    /// The iterations and why the run stopped.
    pub run: DecompositionRun,
}

impl CpReport {
    /// The fit `1 − ‖X − X̂‖/‖X‖` after the last iteration.
    pub fn fit(&self) -> Option<f64> {
        self.run.fit()
    }
}

/// CP decomposition of the stored tensor `x` by alternating least squares,
/// streaming `x` from disk under the session's memory limit.
///
/// Each iteration updates the factors mode by mode, as TensorLy's `parafac`
/// does: the MTTKRP of the mode (streamed, see [`SweepStrategy`]) times the
/// inverse of the Hadamard product of the other factors' Gram matrices
/// (plus `l2_reg`·I), solved by Cholesky, or by pseudo-inverse when it is
/// ill-conditioned. The fit `1 − ‖X − X̂‖/‖X‖` needs no extra pass: `‖X‖`
/// once, `⟨X, X̂⟩` from the last mode's MTTKRP and `‖X̂‖²` from the Gram
/// matrices. `on_iteration` sees every completed iteration and the model
/// it ended with (before `normalize_factors` rescales it, as TensorLy's
/// `callback`), and with [`CpOptions::report_initial`] the starting model.
///
/// The result is bitwise the same for any thread count, and — with a
/// checkpoint directory — the same after a resume as without.
///
/// # Errors
/// [`Error::InvalidArgument`] for bad options, a mismatching init or
/// checkpoint; [`Error::MemoryLimit`] when a pass cannot fit; store errors.
pub fn cp_als(
    session: &Session,
    x: &impl IntoArrayRef,
    opts: &CpOptions,
    on_iteration: &mut dyn FnMut(&Iteration, &CpModel) -> ControlFlow<()>,
    progress: &dyn Progress,
) -> Result<CpReport> {
    let x = &x.array_ref();
    let ranks = session.ranks();
    let shape = x.shape().to_vec();
    let ndim = shape.len();
    if ndim < 2 {
        return Err(Error::invalid("CP-ALS needs a tensor of at least 2 modes"));
    }
    if opts.rank == 0 {
        return Err(Error::invalid("the CP rank must be at least 1"));
    }
    if !(opts.l2_reg >= 0.0 && opts.tol >= 0.0) {
        return Err(Error::invalid("l2_reg and tol must be ≥ 0"));
    }
    let rank = opts.rank;
    let _operation = decomp_span(session, "cp_als", &shape, &[rank]).entered();
    let started = Instant::now();
    let mut iterations = Vec::new();
    let mut resumed_after = None;
    let (split, partial_rows) = best_split(&shape);
    let r = rank as u64;
    let two_pass = match opts.sweep {
        SweepStrategy::PerMode => false,
        SweepStrategy::TwoPass => true,
        SweepStrategy::Auto => {
            partial_rows.saturating_mul(r).saturating_mul(8) <= session.memory_limit() / 4
        }
    };
    // Refuse what cannot fit before anything is allocated or read.
    let mut memory = ModelMemory::default();
    let longest = shape.iter().copied().max().unwrap_or(0);
    memory
        .add(
            "factors",
            saturating_sum(shape.iter().map(|i| i.saturating_mul(r))),
        )
        .add(
            "Gram matrices and solver workspace",
            (ndim as u64 + 4).saturating_mul(r.saturating_mul(r)),
        )
        .add(
            "MTTKRP and updated factor",
            longest.saturating_mul(r).saturating_mul(2),
        );
    if two_pass {
        memory.add("partial contraction", partial_rows.saturating_mul(r));
    }
    if matches!(opts.init, CpInit::Svd) {
        memory.add(
            "SVD init sketch",
            saturating_sum(shape.iter().map(|i| i.saturating_mul(r.saturating_add(10)))),
        );
    }
    memory.check(
        &format!("CP-ALS of rank {rank} on {}", join_dims(&shape)),
        x.chunk_grid().chunk_elements().saturating_mul(8),
        session.memory_limit(),
    )?;
    if let Some(dir) = &opts.checkpoint {
        check_output_not_input(dir, &[x.path()])?;
    }
    let resumed = checkpoint::start(opts.checkpoint.as_deref(), opts.resume, ranks.is_root())?;
    let fingerprint = opts.fingerprint(&**x, two_pass);
    let mut converged = false;
    let mut stopped_early = false;
    let (mut model, norm) = if let Some(ckpt) = resumed {
        let (history, norm, done) = checkpoint::restore(&ckpt, &fingerprint)?;
        iterations = history;
        converged = done;
        resumed_after = Some(ckpt.iteration);
        let weights = ckpt
            .arrays
            .iter()
            .find(|(a, _, _)| a == "weights")
            .map(|(_, _, v)| v.clone())
            .ok_or_else(|| Error::invalid("the checkpoint has no weights"))?;
        (
            CpModel {
                weights,
                factors: ckpt.factors,
            },
            norm,
        )
    } else {
        let norm = tensor_norm(session, x, progress)?;
        (initial_model(session, x, opts, progress)?, norm)
    };
    if check_factors(&shape, &model.factors)? != rank || model.rank() != rank {
        return Err(Error::invalid(format!(
            "the initial model has rank {}, not {rank}",
            model.rank()
        )));
    }
    let resident = if opts.hold_in_memory {
        ResidentTensor::load_if_small(session, &**x, progress)?
    } else {
        None
    };
    let init_seconds = started.elapsed().as_secs_f64();

    let passes_per_iteration = if two_pass { 2 } else { ndim };
    let mut grams: Vec<Matrix> = model.factors.iter().map(Matrix::gram).collect();
    if opts.report_initial && resumed_after.is_none() {
        session.cancel_token().check()?;
        let t0 = Instant::now();
        let read0 = session.metrics().bytes_read.get();
        let label = "CP-ALS error of the starting model";
        let named = NamedProgress::new(progress, label);
        // The last mode's MTTKRP, computed as the sweep computes it (so
        // under the same memory as an iteration).
        let mut m = if two_pass {
            let (q, _held) = left_partial(
                session,
                x,
                resident.as_ref(),
                &model.factors,
                split,
                label,
                &named,
            )?;
            mttkrp_from_partial(&q, &model.factors, split..ndim, ndim - 1)
        } else {
            mode_mttkrp(
                session,
                x,
                resident.as_ref(),
                &model.factors,
                ndim - 1,
                label,
                &named,
            )?
        };
        m.scale_columns(&model.weights);
        let rec_error = relative_error(norm, &model, &grams, &m);
        let start = Iteration {
            iteration: 0,
            fit: 1.0 - rec_error,
            rec_error,
            seconds: t0.elapsed().as_secs_f64(),
            bytes_read: session.metrics().bytes_read.get() - read0,
            passes: 1,
        };
        // As TensorLy, what this first call returns is ignored.
        let _ = on_iteration(&start, &model);
    }
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
        let label = |pass: usize| {
            let fit = iterations
                .last()
                .map_or(String::new(), |i: &Iteration| format!(", fit {:.6}", i.fit));
            format!(
                "CP-ALS iteration {}/{}{fit} (pass {pass}/{passes_per_iteration})",
                iteration + 1,
                opts.n_iter_max
            )
        };
        // The partial contraction the leading or trailing modes' MTTKRPs
        // come from, and those modes.
        let mut partial: Option<(Matrix, std::ops::Range<usize>, Reservation)> = None;
        let mut last_mttkrp = Matrix::zeros(0, 0);
        for mode in 0..ndim {
            let mut m = if two_pass {
                if mode == 0 {
                    let p = right_partial(
                        session,
                        x,
                        resident.as_ref(),
                        &model.factors,
                        split,
                        &label(1),
                        &NamedProgress::new(progress, &label(1)),
                    )?;
                    partial = Some((p.0, 0..split, p.1));
                } else if mode == split {
                    // P (and its reservation) is released before Q is accumulated.
                    drop(partial.take());
                    let q = left_partial(
                        session,
                        x,
                        resident.as_ref(),
                        &model.factors,
                        split,
                        &label(2),
                        &NamedProgress::new(progress, &label(2)),
                    )?;
                    partial = Some((q.0, split..ndim, q.1));
                }
                let (p, modes, _) = partial.as_ref().expect("set at mode 0 and at the split");
                mttkrp_from_partial(p, &model.factors, modes.clone(), mode)
            } else {
                let label = label(mode + 1);
                mode_mttkrp(
                    session,
                    x,
                    resident.as_ref(),
                    &model.factors,
                    mode,
                    &label,
                    &NamedProgress::new(progress, &label),
                )?
            };
            // TensorLy: mttkrp · diag(w), solved against (w wᵀ) ∘ (⊛ Grams + λI).
            let mut v = Matrix::from_vec(rank, rank, vec![1.0; rank * rank])?;
            for (k, g) in grams.iter().enumerate() {
                if k != mode {
                    v.hadamard_assign(g);
                }
            }
            for r in 0..rank {
                v.as_mut_slice()[r * rank + r] += opts.l2_reg;
            }
            for r in 0..rank {
                for s in 0..rank {
                    v.as_mut_slice()[r * rank + s] *= model.weights[r] * model.weights[s];
                }
            }
            m.scale_columns(&model.weights);
            // Solved once (rank 0) and sent to every rank as bits.
            let [factor, gram] = <[Matrix; 2]>::try_from(on_root(ranks, || {
                let factor = solve_right_spd(&m, &v)?;
                let gram = factor.gram();
                Ok(vec![factor, gram])
            })?)
            .map_err(|_| Error::internal("rank 0 sent no factor and Gram matrix"))?;
            model.factors[mode] = factor;
            grams[mode] = gram;
            last_mttkrp = m;
        }
        let rec_error = relative_error(norm, &model, &grams, &last_mttkrp);
        let info = Iteration {
            iteration: iteration + 1,
            fit: 1.0 - rec_error,
            rec_error,
            seconds: t0.elapsed().as_secs_f64(),
            bytes_read: session.metrics().bytes_read.get() - read0,
            passes: passes_per_iteration,
        };
        info.record_in(&iteration_span);
        // As TensorLy: the callback, then the convergence test, then the
        // normalisation, so a run that stops returns the factors of its
        // last update.
        stopped_early = root_decides(ranks, on_iteration(&info, &model).is_break());
        converged = opts.tol > 0.0
            && iterations.last().is_some_and(|p: &Iteration| {
                opts.cvg_criterion
                    .converged(p.rec_error, rec_error, opts.tol)
            });
        if opts.normalize_factors && !converged && !stopped_early {
            normalize(&mut model, &mut grams);
        }
        iterations.push(info);
        if let Some(dir) = opts.checkpoint.as_ref().filter(|_| ranks.is_root()) {
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
                    arrays: vec![("weights".into(), vec![rank as u64], model.weights.clone())],
                },
            )?;
        }
        if converged || stopped_early {
            break;
        }
    }
    Ok(CpReport {
        model,
        run: DecompositionRun {
            iterations,
            converged,
            stopped_early,
            norm,
            init_seconds,
            passes_per_iteration,
            resumed_after,
        },
    })
}

/// `‖X − X̂‖/‖X‖` without a pass of its own: `⟨X, X̂⟩` from the last
/// mode's MTTKRP (weights included) and that mode's factor, `‖X̂‖²` from the
/// Gram matrices.
fn relative_error(norm: f64, model: &CpModel, grams: &[Matrix], last_mttkrp: &Matrix) -> f64 {
    let last = &model.factors[model.factors.len() - 1];
    let iprod: f64 = last_mttkrp
        .as_slice()
        .iter()
        .zip(last.as_slice())
        .map(|(a, b)| a * b)
        .sum();
    let model_sq = model_norm_squared(&model.weights, grams);
    (norm * norm + model_sq - 2.0 * iprod).abs().sqrt() / norm
}

/// TensorLy's `cp_normalize`: the weights folded into the first factor,
/// then every factor's columns scaled to unit norm with the norms
/// multiplied into the weights (a zero column stays, its weight is zero).
fn normalize(model: &mut CpModel, grams: &mut [Matrix]) {
    model.factors[0].scale_columns(&model.weights);
    model.weights.fill(1.0);
    for (f, g) in model.factors.iter_mut().zip(grams.iter_mut()) {
        let norms = f.column_norms();
        let inverse: Vec<f64> = norms
            .iter()
            .map(|n| if *n == 0.0 { 1.0 } else { 1.0 / n })
            .collect();
        for (w, n) in model.weights.iter_mut().zip(&norms) {
            *w *= n;
        }
        f.scale_columns(&inverse);
        *g = f.gram();
    }
}

fn initial_model(
    session: &Session,
    x: &ArrayRef,
    opts: &CpOptions,
    progress: &dyn Progress,
) -> Result<CpModel> {
    let rank = opts.rank;
    let shape = x.shape();
    let rng = CounterRng::new(opts.seed);
    let uniform = |mode: usize, rows: usize, cols: usize, first: usize| -> Vec<f64> {
        (0..rows * cols)
            .map(|e| rng.uniform(mode as u32, (first * rows + e) as u64))
            .collect()
    };
    let mut model = match &opts.init {
        CpInit::Given(model) => {
            // As TensorLy: weights folded into the last factor, no
            // normalisation of a given start.
            let mut model = model.clone();
            if check_factors(shape, &model.factors)? != rank || model.rank() != rank {
                return Err(Error::invalid(format!(
                    "the initial model has rank {} (weights {}), not {rank}",
                    model.factors[0].cols(),
                    model.rank()
                )));
            }
            if model.weights.iter().any(|w| *w != 1.0) {
                let last = model.factors.len() - 1;
                model.factors[last].scale_columns(&model.weights);
                model.weights.fill(1.0);
            }
            return Ok(model);
        }
        CpInit::Random => CpModel {
            weights: vec![1.0; rank],
            factors: shape
                .iter()
                .enumerate()
                .map(|(m, &i)| Matrix::from_vec(i as usize, rank, uniform(m, i as usize, rank, 0)))
                .collect::<Result<_>>()?,
        },
        CpInit::Svd => {
            let mut factors = Vec::with_capacity(shape.len());
            for (mode, &extent) in shape.iter().enumerate() {
                let extent = extent as usize;
                let label = format!("CP-ALS init: leading vectors of mode {mode}");
                let (mut u, s, _) = leading_mode_vectors(
                    session,
                    x,
                    ModeVectors {
                        mode,
                        count: rank,
                        seed: opts.seed,
                    },
                    &NamedProgress::new(progress, &label),
                )?;
                if mode == 0 {
                    u.scale_columns(&s);
                }
                if u.cols() < rank {
                    // TensorLy fills the missing columns with uniform values.
                    let extra = rank - u.cols();
                    let fill = uniform(mode, extent, extra, u.cols());
                    let mut full = Matrix::zeros(extent, rank);
                    for i in 0..extent {
                        let row = &mut full.as_mut_slice()[i * rank..(i + 1) * rank];
                        row[..u.cols()].copy_from_slice(u.row(i));
                        row[u.cols()..].copy_from_slice(&fill[i * extra..(i + 1) * extra]);
                    }
                    u = full;
                }
                factors.push(u);
            }
            CpModel {
                weights: vec![1.0; rank],
                factors,
            }
        }
    };
    if opts.normalize_factors {
        let mut grams: Vec<Matrix> = model.factors.iter().map(Matrix::gram).collect();
        normalize(&mut model, &mut grams);
    }
    Ok(model)
}

/// Progress that names every piece of work with a fixed label.
pub(crate) struct NamedProgress<'a> {
    inner: &'a dyn Progress,
    label: &'a str,
}

impl<'a> NamedProgress<'a> {
    pub(crate) fn new(inner: &'a dyn Progress, label: &'a str) -> Self {
        Self { inner, label }
    }
}

impl Progress for NamedProgress<'_> {
    fn start(&self, _label: &str, total: u64) {
        self.inner.start(self.label, total);
    }
    fn advance(&self, delta: u64) {
        self.inner.advance(delta);
    }
    fn finish(&self) {
        self.inner.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::CvgCriterion;

    #[test]
    fn convergence_criteria_read_as_tensorlys() {
        let (abs, dec) = (CvgCriterion::AbsRecError, CvgCriterion::RecError);
        // A small change either way converges under both.
        assert!(abs.converged(0.5, 0.45, 0.1) && dec.converged(0.5, 0.45, 0.1));
        assert!(abs.converged(0.5, 0.55, 0.1) && dec.converged(0.5, 0.55, 0.1));
        // A large decrease converges under neither.
        assert!(!abs.converged(0.5, 0.2, 0.1) && !dec.converged(0.5, 0.2, 0.1));
        // A large increase: only "rec_error" stops.
        assert!(!abs.converged(0.5, 0.9, 0.1) && dec.converged(0.5, 0.9, 0.1));
        assert_eq!("rec_error".parse::<CvgCriterion>().unwrap(), dec);
        assert_eq!("abs_rec_error".parse::<CvgCriterion>().unwrap(), abs);
        let err = "relative".parse::<CvgCriterion>().unwrap_err().to_string();
        assert!(
            err.contains("'relative'") && err.contains("'rec_error'"),
            "{err}"
        );
    }
}
