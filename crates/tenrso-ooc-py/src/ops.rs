//! The operations on stored arrays, as module functions taking the
//! session first (the Python layer supplies the default one), run with
//! the GIL released and progress reported to an optional callable.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use pyo3::prelude::*;
use tenrso_ooc::ops::{
    Einsum, Expr, Fill, Generate, Map, OutputOptions, Rechunk, Reduce, ReduceOp, Transpose, Verify,
};
use tenrso_ooc::plan::{EinsumSpec, PathStrategy};
use tenrso_ooc::store::{ArraySpec, CodecChoice, ZarrArray};
use tenrso_ooc::{ChunkGrid, DType, Error};

use crate::array::PyArray;
use crate::errors::OrRaise;
use crate::progress;
use crate::session::PySession;

/// The result of an operation: a scalar or a stored array.
#[derive(IntoPyObject)]
pub enum Output {
    /// A scalar result.
    Value(f64),
    /// An array written to `out`.
    Array(PyArray),
}

pub fn open_output(path: &std::path::Path) -> PyResult<PyArray> {
    Ok(PyArray::from_zarr(Arc::new(
        ZarrArray::open(path).or_raise()?,
    )))
}

/// The scalar of a run, else the array it wrote at `out`.
fn scalar_or_array(value: Option<f64>, out: Option<PathBuf>, hint: &str) -> PyResult<Output> {
    match (value, out) {
        (Some(v), _) => Ok(Output::Value(v)),
        (None, Some(out)) => Ok(Output::Array(open_output(&out)?)),
        (None, None) => Err(Error::invalid(hint.to_string())).or_raise(),
    }
}

/// `text` parsed as the library parses it (dtypes, codecs, fills, …).
pub fn parse<T: FromStr<Err = Error>>(text: &str) -> PyResult<T> {
    T::from_str(text).or_raise()
}

/// Creates (and fills) a Zarr v3 array; `chunks=None` picks chunks of
/// the session's default chunk size.
#[pyfunction]
#[pyo3(signature = (session, path, shape, chunks, dtype, compression, fill, seed, shards, progress_callback))]
#[allow(clippy::too_many_arguments)]
pub fn create(
    py: Python<'_>,
    session: &PySession,
    path: PathBuf,
    shape: Vec<u64>,
    chunks: Option<Vec<u64>>,
    dtype: &str,
    compression: &str,
    fill: &str,
    seed: u64,
    shards: Option<Vec<u64>>,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let dtype = parse::<DType>(dtype)?;
    let chunks = chunks.unwrap_or_else(|| {
        let target = session.inner.options().default_chunk_bytes();
        ChunkGrid::auto_chunk_shape(&shape, dtype.size() as u64, target)
    });
    let codec = parse::<CodecChoice>(compression)?;
    let mut spec = ArraySpec::new(shape, chunks, dtype);
    if let Some(shards) = shards {
        spec = spec.with_shards(shards);
    }
    let fill = parse::<Fill>(fill)?;
    if let (CodecChoice::Auto(_), Fill::Zeros) = (codec, fill) {
        return Err(Error::invalid(
            "compression='auto' measures the codecs on the values written, and fill='zeros' writes none: name a codec, or import or fill the data with compression='auto'",
        ))
        .or_raise();
    }
    if let CodecChoice::Fixed(compression) = codec {
        spec = spec.with_compression(compression);
    }
    if fill == Fill::Zeros {
        // As zarr-python does: no chunk written, every chunk reads as the
        // fill value (0) until assigned.
        let array = py.detach(|| ZarrArray::create(&path, &spec)).or_raise()?;
        return Ok(PyArray::from_zarr(Arc::new(array)));
    }
    let request = Generate::new(path, spec, fill)
        .with_seed(seed)
        .with_codec(codec);
    let report =
        progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    Ok(PyArray::from_zarr(report.array))
}

/// Reduces `x` over `axes` (all when `None`): a float, or an array at `out`.
#[pyfunction]
#[pyo3(signature = (session, op, x, axes, out, progress_callback))]
pub fn reduce(
    py: Python<'_>,
    session: &PySession,
    op: &str,
    x: &PyArray,
    axes: Option<Vec<usize>>,
    out: Option<PathBuf>,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<Output> {
    let mut request = Reduce::new(parse::<ReduceOp>(op)?, &x.array);
    if let Some(axes) = axes {
        request = request.with_axes(axes);
    }
    if let Some(out) = &out {
        request = request.with_out(out);
    }
    let report =
        progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    scalar_or_array(
        report.value,
        out,
        "this reduction has an array result: give out=",
    )
}

fn einsum_request(
    subscripts: &str,
    operands: &[PyRef<'_, PyArray>],
    optimize: &str,
) -> PyResult<Einsum> {
    let strategy = parse::<PathStrategy>(optimize)
        .map_err(|_| {
            Error::invalid(format!(
                "optimize='{optimize}': expected 'auto', 'optimal', 'greedy' or 'sequential'"
            ))
        })
        .or_raise()?;
    Ok(Einsum::new(subscripts, operands.iter().map(|a| a.array.clone())).with_path(strategy))
}

/// Evaluates an einsum over stored operands: a float, or an array at `out`.
#[pyfunction]
#[pyo3(signature = (session, subscripts, operands, out, optimize, progress_callback))]
pub fn einsum(
    py: Python<'_>,
    session: &PySession,
    subscripts: &str,
    operands: Vec<PyRef<'_, PyArray>>,
    out: Option<PathBuf>,
    optimize: &str,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<Output> {
    let mut request = einsum_request(subscripts, &operands, optimize)?;
    if let Some(out) = &out {
        request = request.with_out(out);
    }
    let report =
        progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    scalar_or_array(
        report.value,
        out,
        "this einsum has an array result: give out=",
    )
}

/// How an einsum lays out: the shape of its result (empty for a scalar),
/// and a chunk shape for every operand — its own for stored operands
/// (`chunks[k]` given), and for in-memory ones (`None`) the session's
/// default chunking with every axis that shares an index with a stored
/// operand chunked as that operand is (the smallest such chunk), so that
/// tiles line up instead of spanning the whole axis. Bad subscripts raise.
#[pyfunction]
pub fn einsum_layout(
    session: &PySession,
    subscripts: &str,
    shapes: Vec<Vec<u64>>,
    chunks: Vec<Option<Vec<u64>>>,
    itemsize: u64,
) -> PyResult<(Vec<u64>, Vec<Vec<u64>>)> {
    let views: Vec<&[u64]> = shapes.iter().map(Vec::as_slice).collect();
    let problem = EinsumSpec::parse(subscripts)
        .and_then(|spec| spec.bind(&views))
        .or_raise()?;
    let mut stored_extent = std::collections::BTreeMap::new();
    for (labels, chunks) in problem.operands.iter().zip(&chunks) {
        for (label, &extent) in labels.iter().zip(chunks.iter().flatten()) {
            if let Some(label) = label {
                let e = stored_extent.entry(*label).or_insert(extent);
                *e = (*e).min(extent);
            }
        }
    }
    let target = session.inner.options().default_chunk_bytes();
    let layout = shapes
        .iter()
        .zip(&chunks)
        .zip(&problem.operands)
        .map(|((shape, chunks), labels)| match chunks {
            Some(chunks) => chunks.clone(),
            None => {
                let mut auto = ChunkGrid::auto_chunk_shape(shape, itemsize, target);
                for ((c, &n), label) in auto.iter_mut().zip(shape).zip(labels) {
                    if let Some(&extent) = label.as_ref().and_then(|l| stored_extent.get(l)) {
                        *c = extent.clamp(1, n.max(1));
                    }
                }
                auto
            }
        })
        .collect();
    Ok((problem.output_shape(), layout))
}

/// The plan of an einsum as JSON text: path, tiles, flops, bytes, memory
/// (`out`: where an array result would go; nothing is written).
#[pyfunction]
#[pyo3(signature = (session, subscripts, operands, optimize, out))]
pub fn einsum_path(
    session: &PySession,
    subscripts: &str,
    operands: Vec<PyRef<'_, PyArray>>,
    optimize: &str,
    out: Option<PathBuf>,
) -> PyResult<String> {
    let mut request = einsum_request(subscripts, &operands, optimize)?;
    if let Some(out) = &out {
        request = request.with_out(out);
    }
    let planned = request.plan(&session.inner).or_raise()?;
    let plan = planned.explain();
    let mut json = plan.to_json();
    json["output_shape"] = serde_json::json!(plan.output_shape);
    json["text"] = serde_json::json!(plan.to_string());
    Ok(json.to_string())
}

/// The einsum subscripts of `numpy.tensordot(a, b, axes)` for operands of
/// `na` and `nb` axes.
#[pyfunction]
pub fn tensordot_subscripts(
    na: usize,
    nb: usize,
    axes: (Vec<usize>, Vec<usize>),
) -> PyResult<String> {
    tenrso_ooc::ops::tensordot_subscripts(na, nb, (&axes.0, &axes.1)).or_raise()
}

/// Evaluates `expr` (in `x` and `y`) elementwise into a new array at `out`.
#[pyfunction]
#[pyo3(signature = (session, expr, x, y, out, progress_callback))]
pub fn map(
    py: Python<'_>,
    session: &PySession,
    expr: &str,
    x: &PyArray,
    y: Option<PyRef<'_, PyArray>>,
    out: PathBuf,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let mut request = Map::new(Expr::parse(expr).or_raise()?, &x.array, &out);
    if let Some(y) = &y {
        request = request.with_y(&y.array);
    }
    progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    open_output(&out)
}

/// Permutes the axes of `x` into a new array at `out` (chunked as
/// `chunks`, default: the permuted chunks of `x`).
#[pyfunction]
#[pyo3(signature = (session, x, axes, out, chunks, progress_callback))]
pub fn transpose(
    py: Python<'_>,
    session: &PySession,
    x: &PyArray,
    axes: Vec<usize>,
    out: PathBuf,
    chunks: Option<Vec<u64>>,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let mut options = OutputOptions::default();
    if let Some(chunks) = chunks {
        options = options.with_chunk_shape(chunks);
    }
    let request = Transpose::new(&x.array, axes, &out).with_output_options(options);
    progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    open_output(&out)
}

/// Copies `x` into a new array at `out` with another chunk shape.
#[pyfunction]
#[pyo3(signature = (session, x, chunks, out, progress_callback))]
pub fn rechunk(
    py: Python<'_>,
    session: &PySession,
    x: &PyArray,
    chunks: Vec<u64>,
    out: PathBuf,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let request = Rechunk::new(&x.array, chunks, &out);
    progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    open_output(&out)
}

/// Checks every chunk of `x`; the report as JSON text.
#[pyfunction]
#[pyo3(signature = (session, x, progress_callback))]
pub fn verify(
    py: Python<'_>,
    session: &PySession,
    x: &PyArray,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let request = Verify::new(&x.array);
    let report =
        progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    let bad: Vec<serde_json::Value> = report
        .bad_chunks
        .iter()
        .map(|b| serde_json::json!({"chunk": b.chunk, "key": b.key, "reason": b.reason}))
        .collect();
    Ok(serde_json::json!({
        "ok": report.is_ok(),
        "chunks_total": report.chunks_total,
        "chunks_stored": report.chunks_stored,
        "bytes_checked": report.bytes_checked,
        "has_checksum": report.has_checksum,
        "bad_chunks": bad,
    })
    .to_string())
}
