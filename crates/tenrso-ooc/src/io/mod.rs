//! File formats outside the Zarr store: `.npy` and raw binary, Arrow IPC and
//! Parquet — imported, exported, or read in place as chunked sources
//! ([`ChunkSource`]).

mod arrow_decode;
mod arrow_encode;
mod arrow_layout;
mod chunk_source;
mod columnar_writer;
mod decode_guard;
mod dense_file;
mod ipc_source;
mod npy;
mod npy_values;
mod parquet_source;
mod read_at;
mod row_slabs;

pub use arrow_layout::FIXED_SHAPE_TENSOR;
pub use chunk_source::{ChunkSource, SourceFormat, SourceOptions, open_source};
pub(crate) use columnar_writer::ColumnarWriter;
pub use columnar_writer::{ColumnarCompression, ColumnarOptions};
pub(crate) use decode_guard::guarded;
pub use dense_file::{DenseFile, DenseLayout};
pub use ipc_source::IpcSource;
pub use npy::{npy_header_bytes, read_npy_header};
pub use npy_values::{encode_npy_values, read_npy_values};
pub use parquet_source::ParquetSource;
pub(crate) use read_at::read_elements_at;
