//! Engine errors as Python exceptions: the classes of
//! `tenrso_ooc.errors`, with the fields that name what is at fault and
//! messages in Python's vocabulary (`memory_limit=`, not `ExecOptions`).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tenrso_ooc::Error;

/// Converts a library result into a Python one.
pub trait OrRaise<T> {
    /// The value, or the error raised as its `tenrso_ooc.errors` class.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for tenrso_ooc::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_python)
    }
}

/// The message of `e` with the Rust names of settings replaced by the
/// Python keyword arguments that set them.
fn python_message(e: &Error) -> String {
    e.to_string()
        .replace("ExecOptions::memory_limit", "memory_limit=")
        .replace("ExecOptions::spill_dirs", "spill_dirs=")
        .replace("ExecOptions::threads", "threads=")
}

/// The `tenrso_ooc.errors` class for `e`, its attributes set in `fields`.
fn class_of(e: &Error, fields: &Bound<'_, PyDict>) -> PyResult<&'static str> {
    let path = |p: &std::path::Path| p.display().to_string();
    Ok(match e {
        Error::Corrupt {
            array, chunk, key, ..
        } => {
            fields.set_item("array", path(array))?;
            fields.set_item("chunk", chunk)?;
            fields.set_item("key", key)?;
            "CorruptChunkError"
        }
        Error::MemoryLimit {
            limit, required, ..
        }
        | Error::MemoryExhausted {
            limit,
            requested: required,
            ..
        } => {
            fields.set_item("limit", limit)?;
            fields.set_item("required", required)?;
            "MemoryLimitError"
        }
        Error::SpillFull { requested, .. } => {
            fields.set_item("requested", requested)?;
            "SpillFullError"
        }
        Error::TierFull { bytes, .. } => {
            fields.set_item("requested", bytes)?;
            "SpillFullError"
        }
        Error::AlreadyExists { path: p } => {
            fields.set_item("path", path(p))?;
            "ArrayExistsError"
        }
        Error::NotAnArray { path: p, .. } if !p.exists() => {
            fields.set_item("path", path(p))?;
            "ArrayNotFoundError"
        }
        Error::Io { path: p, source } => {
            fields.set_item("path", path(p))?;
            if source.kind() == std::io::ErrorKind::NotFound {
                "ArrayNotFoundError"
            } else {
                "StorageError"
            }
        }
        Error::DtypeMismatch { .. } => "DTypeError",
        Error::ChunkOutOfBounds { .. } => "OutOfBoundsError",
        Error::InvalidArgument(_) => "InvalidArgumentError",
        Error::Cancelled => "CancelledError",
        _ => "TenrsoError",
    })
}

/// `e` as an instance of its `tenrso_ooc.errors` class.
pub fn to_python(e: Error) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let fields = PyDict::new(py);
            let class = class_of(&e, &fields)?;
            let exc = py
                .import("tenrso_ooc.errors")?
                .getattr(class)?
                .call((python_message(&e),), Some(&fields))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|err| err)
    })
}
