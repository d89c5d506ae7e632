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

/// The `tenrso_ooc.errors` class for `e` and the attributes it carries.
fn class_of(e: &Error) -> (&'static str, Vec<(&'static str, serde_json::Value)>) {
    use serde_json::json;
    match e {
        Error::Corrupt {
            array, chunk, key, ..
        } => (
            "CorruptChunkError",
            vec![
                ("array", json!(array.display().to_string())),
                ("chunk", json!(chunk)),
                ("key", json!(key)),
            ],
        ),
        Error::MemoryLimit {
            limit, required, ..
        } => (
            "MemoryLimitError",
            vec![("limit", json!(limit)), ("required", json!(required))],
        ),
        Error::MemoryExhausted {
            limit, requested, ..
        } => (
            "MemoryLimitError",
            vec![("limit", json!(limit)), ("required", json!(requested))],
        ),
        Error::SpillFull { requested, .. } => {
            ("SpillFullError", vec![("requested", json!(requested))])
        }
        Error::AlreadyExists { path } => (
            "ArrayExistsError",
            vec![("path", json!(path.display().to_string()))],
        ),
        Error::NotAnArray { path, .. } if !path.exists() => (
            "ArrayNotFoundError",
            vec![("path", json!(path.display().to_string()))],
        ),
        Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => (
            "ArrayNotFoundError",
            vec![("path", json!(path.display().to_string()))],
        ),
        Error::Io { path, .. } => (
            "StorageError",
            vec![("path", json!(path.display().to_string()))],
        ),
        Error::DtypeMismatch { .. } => ("DTypeError", vec![]),
        Error::ChunkOutOfBounds { .. } => ("OutOfBoundsError", vec![]),
        Error::InvalidArgument(_) => ("InvalidArgumentError", vec![]),
        Error::Cancelled => ("CancelledError", vec![]),
        _ => ("TenrsoError", vec![]),
    }
}

/// `e` as an instance of its `tenrso_ooc.errors` class.
pub fn to_python(e: Error) -> PyErr {
    Python::attach(|py| {
        let (class, attributes) = class_of(&e);
        let build = || -> PyResult<PyErr> {
            let module = py.import("tenrso_ooc.errors")?;
            let kwargs = PyDict::new(py);
            let json = py.import("json")?;
            for (name, value) in attributes {
                kwargs.set_item(name, json.call_method1("loads", (value.to_string(),))?)?;
            }
            let exc = module
                .getattr(class)?
                .call((python_message(&e),), Some(&kwargs))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|err| err)
    })
}
