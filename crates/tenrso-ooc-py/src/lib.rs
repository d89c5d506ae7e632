//! The native module `tenrso_ooc._native`: the engine's sessions, arrays
//! and operations for the Python package `tenrso_ooc` (python/tenrso_ooc),
//! which adds the default session, indexing, NumPy operands and progress
//! bars on top. Built by maturin from the repository's `pyproject.toml`.

mod array;
mod decomp;
mod errors;
mod ops;
mod progress;
mod selection;
mod session;
mod transfer;

use pyo3::prelude::*;

/// Chunk-sized buffers are recycled by the library's buffer pool (Python's
/// own objects use Python's allocator and are unaffected).
#[global_allocator]
static ALLOCATOR: tenrso_ooc::memory::RecyclingAllocator =
    tenrso_ooc::memory::RecyclingAllocator::system();

/// The native half of `tenrso_ooc`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<session::PySession>()?;
    m.add_class::<array::PyArray>()?;
    m.add_function(wrap_pyfunction!(ops::create, m)?)?;
    m.add_function(wrap_pyfunction!(ops::reduce, m)?)?;
    m.add_function(wrap_pyfunction!(ops::einsum, m)?)?;
    m.add_function(wrap_pyfunction!(ops::einsum_path, m)?)?;
    m.add_function(wrap_pyfunction!(ops::einsum_layout, m)?)?;
    m.add_function(wrap_pyfunction!(ops::map, m)?)?;
    m.add_function(wrap_pyfunction!(ops::transpose, m)?)?;
    m.add_function(wrap_pyfunction!(ops::rechunk, m)?)?;
    m.add_function(wrap_pyfunction!(ops::verify, m)?)?;
    m.add_function(wrap_pyfunction!(decomp::parafac, m)?)?;
    m.add_function(wrap_pyfunction!(decomp::tucker, m)?)?;
    m.add_function(wrap_pyfunction!(decomp::reconstruct, m)?)?;
    m.add_function(wrap_pyfunction!(ops::tensordot_subscripts, m)?)?;
    m.add_function(wrap_pyfunction!(transfer::import_file, m)?)?;
    m.add_function(wrap_pyfunction!(transfer::export_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
