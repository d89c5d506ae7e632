//! `Array`: a stored Zarr v3 array or a file read in place, with its
//! layout, attributes, and selections read to and written from NumPy.

use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use tenrso_ooc::io::{ArrayRef, SourceOptions};
use tenrso_ooc::memory::{CachedArray, PolicyKind, ReadCacheOptions};
use tenrso_ooc::store::ZarrArray;
use tenrso_ooc::{ByteSize, DType, Element, Error};

use crate::errors::OrRaise;
use crate::progress;
use crate::selection::{self, AxisSelection};
use crate::session::{PySession, size_arg};

/// A stored array: a Zarr v3 array (readable and writable) or a
/// `.npy`/IPC/Parquet file read in place (read-only).
#[pyclass(name = "Array", module = "tenrso_ooc._native", frozen)]
pub struct PyArray {
    /// What operations read (a `ZarrArray` for a store).
    pub array: ArrayRef,
}

impl PyArray {
    /// A Python `Array` of a Zarr store.
    pub fn from_zarr(zarr: Arc<ZarrArray>) -> Self {
        Self { array: zarr }
    }

    /// The store, when the array is one.
    fn zarr(&self) -> Option<&ZarrArray> {
        self.array.as_any().downcast_ref::<ZarrArray>()
    }

    /// The store opened afresh, for its current attributes (the shared
    /// handle cannot be changed through `&self`).
    fn metadata(&self) -> PyResult<ZarrArray> {
        ZarrArray::open(self.writable()?.path()).or_raise()
    }

    fn writable(&self) -> PyResult<&ZarrArray> {
        self.zarr()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: a file read in place is read-only; import it into a Zarr store to write to it",
                    self.array.path().display()
                ))
            })
            .or_raise()
    }
}

/// Converts `(start, step, count)` triples.
fn axes(selection: Vec<(u64, u64, u64)>) -> Vec<AxisSelection> {
    selection
        .into_iter()
        .map(|(start, step, count)| AxisSelection { start, step, count })
        .collect()
}

/// Reads `selection` into a new NumPy array (the GIL released meanwhile).
fn read_numpy<'py, T: Element + numpy::Element>(
    py: Python<'py>,
    session: &PySession,
    array: &ArrayRef,
    selection: &[AxisSelection],
) -> PyResult<Bound<'py, PyAny>> {
    let session = &session.inner;
    let values = progress::run(py, session, None, |_| {
        // The result, and the chunk decoded on the way (its whole size, even
        // for one element of it).
        let bytes = selection::len(selection).saturating_mul(T::DTYPE.size() as u64);
        let required = bytes.saturating_add(array.chunk_working_set());
        let mut hold = session.pool().reservation("selection read into NumPy");
        hold.try_grow(required).map_err(|_| Error::MemoryLimit {
            remedy: tenrso_ooc::Remedy::SmallerChunks,
            limit: session.memory_limit(),
            required,
            what: format!(
                "reading {} of {} into NumPy (decoding chunks of {})",
                ByteSize(bytes),
                array.path().display(),
                ByteSize(array.chunk_working_set())
            ),
        })?;
        selection::read::<T>(&**array, selection)
    })?;
    let shape: Vec<usize> = selection.iter().map(|s| s.count as usize).collect();
    Ok(PyArray1::from_vec(py, values).reshape(shape)?.into_any())
}

#[pymethods]
impl PyArray {
    /// Opens a Zarr v3 store or a `.npy`/IPC/Parquet file.
    #[staticmethod]
    #[pyo3(signature = (path, columns=None))]
    fn open(path: std::path::PathBuf, columns: Option<Vec<String>>) -> PyResult<Self> {
        let mut options = SourceOptions::default();
        if let Some(columns) = columns {
            options.columns = Some(columns);
        }
        let array = tenrso_ooc::store::open_array(&path, &options).or_raise()?;
        Ok(Self { array })
    }

    /// The array's directory or file.
    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.array.path().to_path_buf()
    }

    /// Extent along each axis.
    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.array.shape().to_vec()
    }

    /// Chunk shape.
    #[getter]
    fn chunks(&self) -> Vec<u64> {
        self.array.chunk_grid().chunk_shape().to_vec()
    }

    /// The element type, as NumPy names it.
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.array.dtype() {
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Bytes of the uncompressed array.
    #[getter]
    fn nbytes(&self) -> u64 {
        self.array.nbytes()
    }

    /// Bytes the array takes on disk.
    fn nbytes_stored(&self) -> PyResult<u64> {
        self.array.bytes_on_disk().or_raise()
    }

    /// Chunks written (for a store; every chunk of a file).
    fn nchunks_initialized(&self) -> PyResult<usize> {
        Ok(self.array.stored_chunk_set().or_raise()?.len() as usize)
    }

    /// Number of chunks.
    #[getter]
    fn nchunks(&self) -> u64 {
        self.array.chunk_grid().num_chunks()
    }

    /// How chunks are stored (codecs, or the file's format).
    fn describe(&self) -> String {
        self.array.describe()
    }

    /// The user attributes of a store, as JSON text (`{}` for a file),
    /// read from its `zarr.json` now: this handle's metadata is the one it
    /// opened with, and attributes change without it.
    fn attributes_json(&self) -> PyResult<String> {
        match self.zarr() {
            Some(_) => Ok(serde_json::Value::Object(self.metadata()?.attributes()).to_string()),
            None => Ok("{}".into()),
        }
    }

    /// Sets attribute `key` to the JSON `value` (stores only).
    fn set_attribute_json(&self, key: String, value: String) -> PyResult<()> {
        let value: serde_json::Value = serde_json::from_str(&value)
            .map_err(|e| Error::invalid(format!("attribute `{key}`: not JSON: {e}")))
            .or_raise()?;
        self.metadata()?.set_attribute(key, value).or_raise()
    }

    /// Removes attribute `key` (stores only); false when there was none.
    fn remove_attribute(&self, key: String) -> PyResult<bool> {
        self.metadata()?.remove_attribute(&key).or_raise()
    }

    /// The same array read through a cache of decoded chunks of at most
    /// `capacity` bytes, dropping chunks by `policy` and loading the
    /// `prefetch` regions predicted next in the background.
    #[pyo3(signature = (capacity, policy, prefetch))]
    fn cached(&self, capacity: &Bound<'_, PyAny>, policy: &str, prefetch: usize) -> PyResult<Self> {
        let options = ReadCacheOptions {
            capacity: size_arg(capacity, "capacity")?,
            policy: crate::ops::parse::<PolicyKind>(policy)?,
            prefetch_depth: prefetch,
        };
        // A cache of a cache reads the array underneath.
        let inner = match self.array.as_any().downcast_ref::<CachedArray>() {
            Some(cached) => cached.inner().clone(),
            None => self.array.clone(),
        };
        Ok(Self {
            array: Arc::new(CachedArray::new(inner, options)),
        })
    }

    /// The counters of the cache (see `cached`), `None` without one.
    fn cache_stats(&self) -> Option<std::collections::BTreeMap<&'static str, u64>> {
        let cached = self.array.as_any().downcast_ref::<CachedArray>()?;
        let s = cached.stats();
        Some(
            [
                ("hits", s.hits),
                ("misses", s.misses),
                ("evictions", s.evictions),
                ("prefetched", s.prefetched),
                ("prefetch_hits", s.prefetch_hits),
                ("predictions", s.predictions),
                ("correct_predictions", s.correct_predictions),
                ("bytes", cached.bytes()),
                ("capacity", cached.options().capacity),
            ]
            .into_iter()
            .collect(),
        )
    }

    /// Starts (`True`) or stops recording the regions read through the
    /// cache; returns those recorded so far as `(start, shape)` pairs.
    fn cache_trace(&self, record: bool) -> PyResult<Vec<(Vec<u64>, Vec<u64>)>> {
        let cached = self
            .array
            .as_any()
            .downcast_ref::<CachedArray>()
            .ok_or_else(|| Error::invalid("this array has no cache: use .cached() first"))
            .or_raise()?;
        let trace = cached.take_trace();
        cached.record_trace(record);
        Ok(trace
            .into_iter()
            .map(|r| (r.start().to_vec(), r.shape().to_vec()))
            .collect())
    }

    /// Reads the selection `[(start, step, count), …]` (one per axis) into
    /// a NumPy array of shape `[count, …]`.
    fn read<'py>(
        &self,
        py: Python<'py>,
        session: &PySession,
        selection: Vec<(u64, u64, u64)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let selection = axes(selection);
        match self.array.dtype() {
            DType::F32 => read_numpy::<f32>(py, session, &self.array, &selection),
            DType::F64 => read_numpy::<f64>(py, session, &self.array, &selection),
        }
    }

    /// Writes `values` (a C-contiguous array of the selection's shape and
    /// the array's dtype) into the selection.
    fn write(
        &self,
        py: Python<'_>,
        session: &PySession,
        selection: Vec<(u64, u64, u64)>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let zarr = self.writable()?;
        let selection = axes(selection);
        match self.array.dtype() {
            DType::F32 => write_numpy::<f32>(py, session, zarr, &selection, values),
            DType::F64 => write_numpy::<f64>(py, session, zarr, &selection, values),
        }
    }
}

fn write_numpy<T: Element + numpy::Element>(
    py: Python<'_>,
    session: &PySession,
    zarr: &ZarrArray,
    selection: &[AxisSelection],
    values: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let values: PyReadonlyArrayDyn<'_, T> = values.extract()?;
    let want: Vec<usize> = selection.iter().map(|s| s.count as usize).collect();
    if values.shape() != want.as_slice() {
        return Err(Error::invalid(format!(
            "values of shape {:?} for a selection of shape {want:?}",
            values.shape()
        )))
        .or_raise();
    }
    let slice = values
        .as_slice()
        .map_err(|_| Error::invalid("values must be C-contiguous"))
        .or_raise()?;
    progress::run(py, &session.inner, None, |_| {
        // A chunk partly selected is read, updated and encoded again.
        let required = zarr.chunk_working_set();
        let mut hold = session
            .inner
            .pool()
            .reservation("selection written from NumPy");
        hold.try_grow(required).map_err(|_| Error::MemoryLimit {
            remedy: tenrso_ooc::Remedy::SmallerChunks,
            limit: session.inner.memory_limit(),
            required,
            what: format!("writing into {} chunk by chunk", zarr.path().display()),
        })?;
        selection::write::<T>(zarr, selection, slice)
    })
}
