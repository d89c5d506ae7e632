//! `Session`: one memory pool, spill area and thread count shared by the
//! operations run through it.

use std::str::FromStr;
use std::sync::Arc;

use pyo3::prelude::*;
use tenrso_ooc::ByteSize;
use tenrso_ooc::exec::{ExecOptions, Session};
use tenrso_ooc::memory::{SpillCodec, SpillDirSpec, SpillMigration};
use tenrso_ooc::store::Durability;

use crate::errors::OrRaise;

/// A size given as bytes (`int`) or as the CLI's strings (`"4GiB"`).
pub fn size_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    if let Ok(bytes) = value.extract::<u64>() {
        return Ok(bytes);
    }
    match value.extract::<String>() {
        Ok(text) => ByteSize::from_str(&text)
            .map(|s| s.0)
            .map_err(|e| tenrso_ooc::Error::invalid(format!("{name}=: {e}")))
            .or_raise(),
        Err(_) => Err(tenrso_ooc::Error::invalid(format!(
            "{name}= takes a number of bytes or a size such as '4GiB'"
        )))
        .or_raise(),
    }
}

/// The engine's session, shared by Python objects.
#[pyclass(name = "Session", module = "tenrso_ooc._native", frozen)]
pub struct PySession {
    pub inner: Arc<Session>,
}

#[pymethods]
impl PySession {
    #[new]
    #[pyo3(signature = (memory_limit=None, threads=None, spill_dirs=None, spill_codec=None, spill_migration=None, durability=None, readers=None))]
    fn new(
        memory_limit: Option<&Bound<'_, PyAny>>,
        threads: Option<usize>,
        spill_dirs: Option<Vec<String>>,
        spill_codec: Option<String>,
        spill_migration: Option<String>,
        durability: Option<String>,
        readers: Option<usize>,
    ) -> PyResult<Self> {
        let mut options = ExecOptions::default();
        if let Some(limit) = memory_limit {
            options = options.with_memory_limit(size_arg(limit, "memory_limit")?);
        }
        if let Some(threads) = threads {
            options = options.with_threads(threads);
        }
        if let Some(dirs) = spill_dirs {
            let specs = dirs
                .iter()
                .map(|d| SpillDirSpec::from_str(d))
                .collect::<tenrso_ooc::Result<Vec<_>>>()
                .or_raise()?;
            options = options.with_spill_dirs(specs);
        }
        if let Some(codec) = spill_codec {
            options = options.with_spill_codec(SpillCodec::from_str(&codec).or_raise()?);
        }
        if let Some(migration) = spill_migration {
            options =
                options.with_spill_migration(SpillMigration::from_str(&migration).or_raise()?);
        }
        if let Some(readers) = readers {
            options = options.with_readers(readers);
        }
        if let Some(durability) = durability {
            options = options.with_durability(Durability::from_str(&durability).or_raise()?);
        }
        Ok(Self {
            inner: Arc::new(Session::new(options)),
        })
    }

    /// A session with these options but another memory limit (its own pool).
    fn with_memory_limit(&self, memory_limit: &Bound<'_, PyAny>) -> PyResult<Self> {
        let options = self
            .inner
            .options()
            .clone()
            .with_memory_limit(size_arg(memory_limit, "memory_limit")?);
        Ok(Self {
            inner: Arc::new(Session::new(options)),
        })
    }

    /// The memory limit in bytes.
    #[getter]
    fn memory_limit(&self) -> u64 {
        self.inner.memory_limit()
    }

    /// Worker threads.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// The most bytes the pool has held at once.
    #[getter]
    fn pool_peak(&self) -> u64 {
        self.inner.pool().peak()
    }

    /// Stops the runs in flight in this session (they raise
    /// `CancelledError` within about one task); later runs proceed.
    fn cancel(&self) {
        self.inner.cancel_token().cancel();
    }

    fn __repr__(&self) -> String {
        format!("Session({})", self.inner.options())
    }
}
