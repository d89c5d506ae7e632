//! File formats outside the Zarr store: `.npy` and raw binary, Arrow IPC and
//! Parquet — imported, exported, or read in place as arrays; and
//! [`ReadableArray`], the trait every array an operation reads implements.

mod arrow_decode;
mod arrow_encode;
mod arrow_layout;
mod columnar_writer;
mod decode_guard;
mod dense_file;
mod dense_source;
mod ipc_source;
mod npy;
mod npy_values;
mod parquet_source;
mod read_at;
mod readable_array;
mod row_slabs;
mod source_file;
mod writable_array;

pub use arrow_layout::FIXED_SHAPE_TENSOR;
pub(crate) use columnar_writer::ColumnarWriter;
pub use columnar_writer::{ColumnarCompression, ColumnarOptions};
pub(crate) use decode_guard::guarded;
pub use dense_file::{DenseFile, DenseLayout};
pub use dense_source::DenseSource;
pub use ipc_source::IpcSource;
pub use npy::{npy_header_bytes, read_npy_header};
pub use npy_values::{encode_npy_values, read_npy_values};
pub use parquet_source::ParquetSource;
pub use read_at::{MAP_MIN_BYTES, NO_CHUNK_MAPS_VAR, chunk_maps_enabled};
pub(crate) use read_at::{map_elements_at, read_elements_at};
pub(crate) use readable_array::check_region_into;
pub(crate) use readable_array::chunk_row_bytes;
pub use readable_array::{ArrayRef, IntoArrayRef, ReadableArray};
pub use source_file::{SourceFormat, SourceOptions, open_source};
pub use writable_array::WritableArray;
