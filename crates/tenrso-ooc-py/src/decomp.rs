//! CP (`parafac`) and Tucker decompositions of stored tensors, and the
//! reconstruction of a model into a stored tensor, with TensorLy's
//! parameters; the Python layer turns the results into TensorLy's
//! `CPTensor` / `TuckerTensor`.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{
    PyArray1, PyArrayMethods, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use tenrso_ooc::decomp::{
    CpInit, CpModel, CpOptions, DecompositionRun, Iteration, Matrix, Reconstruct, TuckerInit,
    TuckerModel, TuckerOptions,
};
use tenrso_ooc::store::{ArraySpec, Compression};
use tenrso_ooc::{ChunkGrid, Error};

use crate::array::PyArray;
use crate::errors::OrRaise;
use crate::progress;
use crate::session::PySession;
use tenrso_ooc::exec::{Progress, Session};

/// A factor matrix from NumPy (any float layout, copied).
fn matrix(values: &PyReadonlyArray2<'_, f64>) -> PyResult<Matrix> {
    let shape = values.shape();
    Matrix::from_vec(
        shape[0],
        shape[1],
        values.as_array().iter().copied().collect(),
    )
    .or_raise()
}

/// A factor matrix as a NumPy array.
fn numpy_matrix<'py>(py: Python<'py>, m: &Matrix) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_slice(py, m.as_slice())
        .reshape([m.rows(), m.cols()])?
        .into_any())
}

/// The run as JSON text: every iteration and why it stopped.
fn run_json(run: &DecompositionRun) -> String {
    serde_json::json!({
        "iterations": run.iterations.iter().map(Iteration::to_json).collect::<Vec<_>>(),
        "converged": run.converged,
        "stopped_early": run.stopped_early,
        "norm": run.norm,
        "init_seconds": run.init_seconds,
        "passes_per_iteration": run.passes_per_iteration,
        "resumed_after": run.resumed_after,
    })
    .to_string()
}

/// A model as the Python layer takes it: `(weights, factors)` for CP,
/// `(core, factors)` for Tucker, as NumPy arrays.
trait ToPython {
    fn to_python<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)>;
}

fn numpy_factors<'py>(py: Python<'py>, factors: &[Matrix]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    factors.iter().map(|f| numpy_matrix(py, f)).collect()
}

impl ToPython for CpModel {
    fn to_python<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)> {
        let weights = PyArray1::from_slice(py, &self.weights).into_any();
        Ok((weights, numpy_factors(py, &self.factors)?))
    }
}

impl ToPython for TuckerModel {
    fn to_python<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)> {
        let core = PyArray1::from_slice(py, &self.core)
            .reshape(self.core_shape.clone())?
            .into_any();
        Ok((core, numpy_factors(py, &self.factors)?))
    }
}

/// Calls the Python `callback(first, factors, rec_error, iteration)` after every
/// iteration (and, for CP, once with the starting model), from the
/// engine's thread; a truthy result stops the run, an exception stops it
/// and is raised once the run has ended.
struct IterationCallback<'a> {
    callback: Option<&'a Py<PyAny>>,
    raised: &'a Mutex<Option<PyErr>>,
}

impl IterationCallback<'_> {
    fn call(&self, iteration: &Iteration, model: &impl ToPython) -> ControlFlow<()> {
        let Some(callback) = self.callback else {
            return ControlFlow::Continue(());
        };
        Python::attach(|py| {
            let call = || -> PyResult<bool> {
                let (first, factors) = model.to_python(py)?;
                callback
                    .bind(py)
                    .call1((first, factors, iteration.rec_error, iteration.iteration))?
                    .is_truthy()
            };
            match call() {
                Ok(true) => ControlFlow::Break(()),
                Ok(false) => ControlFlow::Continue(()),
                Err(e) => {
                    *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
    }
}

/// Runs a decomposition through [`progress::run`] (the GIL released,
/// Ctrl-C cancelling), calling the Python `callback` after every
/// iteration; an exception the callback raised is raised once the run has
/// ended.
fn run_decomposition<M: ToPython, R: Send>(
    py: Python<'_>,
    session: &PySession,
    callback: Option<Py<PyAny>>,
    progress_callback: Option<&Bound<'_, PyAny>>,
    call: impl FnOnce(
        &Session,
        &mut dyn FnMut(&Iteration, &M) -> ControlFlow<()>,
        &dyn Progress,
    ) -> tenrso_ooc::Result<R>
    + Send,
) -> PyResult<R> {
    let raised = Mutex::new(None);
    let on_iteration = IterationCallback {
        callback: callback.as_ref(),
        raised: &raised,
    };
    let session = &session.inner;
    let report = progress::run(py, session, progress_callback, |p| {
        call(session, &mut |i, m| on_iteration.call(i, m), p)
    });
    if let Some(e) = raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    report
}

/// CP-ALS: `(weights, factors, run_json)`.
#[pyfunction]
#[pyo3(signature = (session, x, *, rank, n_iter_max, init, init_weights, init_factors, tol, cvg_criterion, seed, normalize_factors, l2_reg, checkpoint, resume, callback, report_initial, progress_callback))]
#[allow(clippy::too_many_arguments)]
pub fn parafac<'py>(
    py: Python<'py>,
    session: &PySession,
    x: &PyArray,
    rank: usize,
    n_iter_max: usize,
    init: &str,
    init_weights: Option<Vec<f64>>,
    init_factors: Option<Vec<PyReadonlyArray2<'py, f64>>>,
    tol: f64,
    cvg_criterion: &str,
    seed: u64,
    normalize_factors: bool,
    l2_reg: f64,
    checkpoint: Option<PathBuf>,
    resume: bool,
    callback: Option<Py<PyAny>>,
    report_initial: bool,
    progress_callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>, String)> {
    let init = match (init, init_factors) {
        ("svd", None) => CpInit::Svd,
        ("random", None) => CpInit::Random,
        ("given", Some(factors)) => {
            let factors = factors.iter().map(matrix).collect::<PyResult<Vec<_>>>()?;
            let weights = init_weights.unwrap_or_else(|| vec![1.0; rank]);
            CpInit::Given(CpModel { weights, factors })
        }
        (other, _) => {
            return Err(Error::invalid(format!(
                "init='{other}': expected 'svd', 'random' or a CPTensor"
            )))
            .or_raise();
        }
    };
    let mut options = CpOptions::new(rank)
        .with_n_iter_max(n_iter_max)
        .with_init(init)
        .with_tol(tol)
        .with_cvg_criterion(crate::ops::parse(cvg_criterion)?)
        .with_seed(seed)
        .with_normalize_factors(normalize_factors)
        .with_l2_reg(l2_reg)
        .with_resume(resume)
        .with_report_initial(report_initial);
    if let Some(dir) = checkpoint {
        options = options.with_checkpoint(dir);
    }
    let array = &x.array;
    let report = run_decomposition(
        py,
        session,
        callback,
        progress_callback,
        |s, on_iteration, p| tenrso_ooc::decomp::cp_als(s, array, &options, on_iteration, p),
    )?;
    let (weights, factors) = report.model.to_python(py)?;
    Ok((weights, factors, run_json(&report.run)))
}

/// Tucker by HOOI: `(core, factors, run_json)`.
#[pyfunction]
#[pyo3(signature = (session, x, *, ranks, n_iter_max, init, init_core, init_factors, tol, seed, checkpoint, resume, callback, progress_callback))]
#[allow(clippy::too_many_arguments)]
pub fn tucker<'py>(
    py: Python<'py>,
    session: &PySession,
    x: &PyArray,
    ranks: Vec<usize>,
    n_iter_max: usize,
    init: &str,
    init_core: Option<PyReadonlyArrayDyn<'py, f64>>,
    init_factors: Option<Vec<PyReadonlyArray2<'py, f64>>>,
    tol: f64,
    seed: u64,
    checkpoint: Option<PathBuf>,
    resume: bool,
    callback: Option<Py<PyAny>>,
    progress_callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>, String)> {
    let init = match (init, init_core, init_factors) {
        ("svd", None, None) => TuckerInit::Svd,
        ("random", None, None) => TuckerInit::Random,
        ("given", Some(core), Some(factors)) => TuckerInit::Given(TuckerModel {
            core_shape: core.shape().to_vec(),
            core: core.as_array().iter().copied().collect(),
            factors: factors.iter().map(matrix).collect::<PyResult<Vec<_>>>()?,
        }),
        ("given", None, Some(factors)) => {
            TuckerInit::Factors(factors.iter().map(matrix).collect::<PyResult<Vec<_>>>()?)
        }
        (other, _, _) => {
            return Err(Error::invalid(format!(
                "init='{other}': expected 'svd', 'random' or a TuckerTensor"
            )))
            .or_raise();
        }
    };
    let mut options = TuckerOptions::new(ranks)
        .with_n_iter_max(n_iter_max)
        .with_init(init)
        .with_tol(tol)
        .with_seed(seed)
        .with_resume(resume);
    if let Some(dir) = checkpoint {
        options = options.with_checkpoint(dir);
    }
    let array = &x.array;
    let report = run_decomposition(
        py,
        session,
        callback,
        progress_callback,
        |s, on_iteration, p| tenrso_ooc::decomp::tucker(s, array, &options, on_iteration, p),
    )?;
    let (core, factors) = report.model.to_python(py)?;
    Ok((core, factors, run_json(&report.run)))
}

/// Writes the full tensor of a CP model (`core=None`, `weights` given) or
/// a Tucker model (`core` given) into a new store at `out`.
#[pyfunction]
#[pyo3(signature = (session, weights, core, factors, out, chunks, dtype, compression, progress_callback))]
#[allow(clippy::too_many_arguments)]
pub fn reconstruct<'py>(
    py: Python<'py>,
    session: &PySession,
    weights: Option<Vec<f64>>,
    core: Option<PyReadonlyArrayDyn<'py, f64>>,
    factors: Vec<PyReadonlyArray2<'py, f64>>,
    out: PathBuf,
    chunks: Option<Vec<u64>>,
    dtype: &str,
    compression: &str,
    progress_callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyArray> {
    let factors = factors.iter().map(matrix).collect::<PyResult<Vec<_>>>()?;
    let shape: Vec<u64> = factors.iter().map(|f| f.rows() as u64).collect();
    let dtype = crate::ops::parse::<tenrso_ooc::DType>(dtype)?;
    let chunks = chunks.unwrap_or_else(|| {
        let target = session.inner.options().default_chunk_bytes();
        ChunkGrid::auto_chunk_shape(&shape, dtype.size() as u64, target)
    });
    let compression = crate::ops::parse::<Compression>(compression)?;
    let spec = ArraySpec::new(shape, chunks, dtype).with_compression(compression);
    let request = match core {
        Some(core) => Reconstruct::tucker(
            &TuckerModel {
                core_shape: core.shape().to_vec(),
                core: core.as_array().iter().copied().collect(),
                factors,
            },
            &out,
            spec,
        ),
        None => {
            let weights =
                weights.unwrap_or_else(|| vec![1.0; factors.first().map_or(0, Matrix::cols)]);
            Reconstruct::cp(&CpModel { weights, factors }, &out, spec)
        }
    };
    let array = progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    Ok(PyArray::from_zarr(array))
}
