//! Chunked on-disk arrays in Zarr v3 directory stores.
//!
//! [`ZarrArray`] creates and opens arrays, reads and writes chunks and regions;
//! [`open_array`] opens any array an operation reads (a store or a file);
//! [`ArraySpec`] and [`Compression`] describe an array to create;
//! [`check_output_not_input`] keeps outputs off inputs;
//! [`Durability`] says how chunk writes reach the disk (synced per chunk,
//! in batches by a background committer, or not at all);
//! [`AtomicFsStore`] makes every write atomic, through [`AtomicFile`], the
//! library's one way of putting a file in place (also used by exports,
//! decomposition outputs and checkpoints).

pub(crate) mod array_spec;
mod atomic_fs_store;
mod atomic_write;
pub(crate) mod batch_commit;
mod checksum;
mod codec_selection;
mod compression;
mod durability;
mod open_array;
mod output_path;
mod uncached_write;
pub(crate) mod zarr_array;
mod zarr_metadata;

pub use array_spec::ArraySpec;
pub use atomic_fs_store::AtomicFsStore;
pub use atomic_write::{AtomicFile, write_atomically};
pub(crate) use atomic_write::{parent_dir, sync_dir};
pub use checksum::{crc32c_append, crc32c_kernel};
pub use codec_selection::{
    CODEC_CANDIDATES, CodecChoice, CodecDecision, CodecGoal, CodecMeasurement, StorageBandwidth,
    choose_codec, recorded_codec_choice, sample_regions, select_codec, storage_bandwidth,
};
pub use compression::Compression;
pub use durability::Durability;
pub use open_array::open_array;
pub use output_path::check_output_not_input;
pub use uncached_write::{
    NO_UNCACHED_WRITES_VAR, UNCACHED_WRITE_MIN_BYTES, uncached_writes_enabled,
};
pub use zarr_array::ZarrArray;
