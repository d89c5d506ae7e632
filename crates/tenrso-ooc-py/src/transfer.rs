//! Import into stores from `.npy`, raw, Arrow IPC and Parquet files, and
//! export of any array to them, streamed chunk by chunk.

use std::path::PathBuf;
use std::str::FromStr;

use pyo3::prelude::*;
use tenrso_ooc::DType;
use tenrso_ooc::io::{ColumnarCompression, ColumnarOptions};
use tenrso_ooc::ops::{Export, Import, ImportOptions};
use tenrso_ooc::store::CodecChoice;

use crate::array::PyArray;
use crate::errors::OrRaise;
use crate::ops::{open_output, parse};
use crate::progress;
use crate::session::PySession;

/// Imports the file `src` into a new store at `dst`.
#[pyfunction]
#[pyo3(signature = (session, src, dst, chunks, compression, shards, raw_shape, raw_dtype, columns, resume, progress_callback))]
#[allow(clippy::too_many_arguments)]
pub fn import_file(
    py: Python<'_>,
    session: &PySession,
    src: PathBuf,
    dst: PathBuf,
    chunks: Option<Vec<u64>>,
    compression: &str,
    shards: Option<Vec<u64>>,
    raw_shape: Option<Vec<u64>>,
    raw_dtype: Option<String>,
    columns: Option<Vec<String>>,
    resume: bool,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let mut options = ImportOptions::default()
        .with_codec(parse::<CodecChoice>(compression)?)
        .with_resume(resume);
    if let Some(chunks) = chunks {
        options = options.with_chunk_shape(chunks);
    }
    if let Some(shards) = shards {
        options = options.with_shard_shape(shards);
    }
    if let Some(shape) = raw_shape {
        let dtype = parse::<DType>(raw_dtype.as_deref().unwrap_or("float64"))?;
        options = options.with_raw(shape, dtype);
    }
    if let Some(columns) = columns {
        options = options.with_columns(columns);
    }
    let request = Import::new(&src, &dst).with_options(options);
    progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    open_output(&dst)
}

/// Exports `x` to the file `dst` (`.npy`, `.arrow`/`.ipc`, `.parquet`, or
/// raw), with the columnar options of Arrow and Parquet files.
#[pyfunction]
#[pyo3(signature = (session, x, dst, compression, row_group_rows, columns, progress_callback))]
#[allow(clippy::too_many_arguments)]
pub fn export_file(
    py: Python<'_>,
    session: &PySession,
    x: &PyArray,
    dst: PathBuf,
    compression: Option<String>,
    row_group_rows: Option<u64>,
    columns: Option<Vec<String>>,
    progress_callback: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let compression = compression
        .map(|c| ColumnarCompression::from_str(&c))
        .transpose()
        .or_raise()?;
    let columnar = ColumnarOptions::default()
        .with_compression(compression)
        .with_row_group_rows(row_group_rows)
        .with_columns(columns);
    let request = Export::new(&x.array, &dst).with_columnar(columnar);
    progress::plan_and_run(py, &session.inner, progress_callback, |s| request.plan(s))?;
    Ok(())
}
