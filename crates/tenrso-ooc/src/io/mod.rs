//! File formats outside the Zarr store: `.npy` and raw binary, read and
//! written region by region.

mod dense_file;
mod npy;
mod read_at;

pub use dense_file::{DenseFile, DenseLayout};
pub use npy::{npy_header_bytes, read_npy_header};
pub(crate) use read_at::read_elements_at;
